"""A user's table joined with a remote taphouse's table: the local side's key and
position columns are uploaded in blocks sized to the remote's limits; what was shipped
is asserted from the remote's own audit log, and the answer against the same crossmatch
computed locally."""

from __future__ import annotations

import io
import re

from astropy.io.votable import parse_single_table
from federation_helpers import XMATCH, audit_queries, infos_of, sync


def rows(response) -> list[tuple]:  # noqa: ANN001
    table = parse_single_table(io.BytesIO(response.content)).to_table()
    return sorted(tuple(r) for r in table.as_array().tolist())


def test_crossmatch_uploads_key_and_positions_in_blocks(here, far) -> None:  # noqa: ANN001
    query = XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600.")
    r = sync(here, "alice", query)
    assert r.status_code == 200, r.text
    local = sync(here, "alice", XMATCH.format(remote="hipparcos.hip2", radius="1/3600."))
    assert local.status_code == 200
    got, want = rows(r), rows(local)
    assert len(want) >= 300 and got == want
    assert b'name="FEDERATION" value="upload"' in r.content
    received = [q for q in audit_queries(far) if "TAP_UPLOAD" in q]
    assert received, audit_queries(far)[:3]
    # Only the key and the positions went up; the crossmatch ran there.
    assert received[0] == (
        "SELECT t.taphouse_key, r.hpmag, r.hip FROM TAP_UPLOAD.taphouse_block AS t JOIN"
        ' hipparcos.hip2 AS r ON 1 = CONTAINS(POINT(t.ra, t."dec"), CIRCLE(r.ra, r."dec",'
        " 1 / 3600.))")
    infos = dict(re.findall(rb'<INFO name="(\w+)" value="([^"]*)"', r.content))
    assert infos[b"UPLOAD_ROWS"] == b"300"
    # 4000 bytes per upload at most: 300 rows of three columns need several blocks.
    blocks = int(infos[b"UPLOAD_BLOCKS"])
    assert blocks >= 3 and len(received) >= blocks
    assert int(infos[b"BYTES_SENT"]) > 300 * 24


def test_an_overflowing_block_is_halved_never_joined_short(here, far) -> None:  # noqa: ANN001
    # 1 degree: each target matches ~10 stars; a block of a few dozen targets asks for
    # more than the remote's MAXREC hard limit (200): it must be halved and resent.
    query = XMATCH.format(remote="far.hipparcos.hip2", radius="1") + " WHERE t.hip < 3000"
    r = sync(here, "alice", query)
    assert r.status_code == 200, r.text
    infos = infos_of(r)
    assert int(infos["UPLOAD_HALVINGS"]) >= 1
    assert "OVERFLOW" not in r.text
    local = sync(here, "alice", query.replace("far.hipparcos.hip2", "hipparcos.hip2"))
    got, want = rows(r), rows(local)
    assert len(want) > 200 and got == want
    # The local term went to the local side: only rows with hip < 3000 were shipped.
    n = sync(here, "alice", "SELECT COUNT(*) AS n FROM mydb.targets WHERE hip < 3000")
    assert infos["UPLOAD_ROWS"] == str(rows(n)[0][0])


def test_a_single_row_overflowing_fails_naming_the_limit(here, far) -> None:  # noqa: ANN001
    query = XMATCH.format(remote="far.hipparcos.hip2", radius="10") + " WHERE t.hip < 3000"
    r = sync(here, "alice", query)
    assert r.status_code == 400
    assert "MAXREC 200" in r.text and "for a single row of" in r.text, r.text


def test_remote_terms_and_columns_are_pushed(here, far) -> None:  # noqa: ANN001
    query = ("SELECT t.hip, r.plx FROM mydb.targets AS t, far.hipparcos.hip2 AS r"
             " WHERE 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, 1/3600.))"
             " AND r.hpmag < 8 AND t.hip > 100 ORDER BY t.hip")
    r = sync(here, "alice", query)
    assert r.status_code == 200, r.text
    sent = [q for q in audit_queries(far) if "TAP_UPLOAD" in q][0]
    assert sent.endswith("WHERE r.hpmag < 8") and "t.hip" not in sent
    assert sent.startswith("SELECT t.taphouse_key, r.plx FROM")
    local = sync(here, "alice", query.replace("far.hipparcos.hip2", "hipparcos.hip2"))
    assert rows(r) == rows(local) and len(rows(local)) > 10


def test_explain_shows_both_parts_with_sizes(here) -> None:  # noqa: ANN001
    import httpx
    from federation_helpers import PASSWORD

    query = XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600.")
    r = httpx.post(here.url + "/api/explain", timeout=60, auth=("alice", PASSWORD),
                   headers={"X-Taphouse": "tests"}, json={"query": query})
    assert r.status_code == 200, r.text
    remote, local = r.json()["parts"]
    assert remote["strategy"] == "upload"
    assert remote["uploaded_columns"] == ["taphouse_key", "ra", "dec"]
    assert remote["remote_adql"].startswith("SELECT t.taphouse_key")
    assert remote["estimates"]["local_rows"] == 300
    # the remote's count, from its VOSI tableset (before: taphouse listed no nrows)
    assert remote["estimates"]["remote_rows"] == 117955
    assert remote["estimates"]["upload_blocks"] >= 1
    assert local["runs_on"] == "local" and "TAP_UPLOAD.taphouse_remote" in local["adql"]
    assert local["reads_first"].startswith("SELECT t.ra, t.\"dec\", t.hip FROM mydb.targets")


def test_the_answers_of_all_blocks_together_are_capped(here, far) -> None:  # noqa: ANN001
    import dataclasses

    service = here.platform.query_service
    settings = service.settings
    # Each block's answer fits in 6 kB; the 1-degree join's answers together do not.
    service.settings = dataclasses.replace(settings, remote_max_bytes=6000)
    try:
        r = sync(here, "alice", XMATCH.format(remote="far.hipparcos.hip2", radius="1"))
    finally:
        service.settings = settings
    assert r.status_code == 400
    assert "sent more than 6000 bytes in all for this join" in r.text, r.text


def test_the_requests_of_one_join_are_capped(here, far) -> None:  # noqa: ANN001
    import dataclasses

    service = here.platform.query_service
    settings = service.settings
    service.settings = dataclasses.replace(settings, federation_max_requests=2)
    before = sum("TAP_UPLOAD" in q for q in audit_queries(far, 500))
    try:
        r = sync(here, "alice", XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600."))
    finally:
        service.settings = settings
    assert r.status_code == 400
    assert "the join needs more than 2 requests to remote 'far'" in r.text, r.text
    assert sum("TAP_UPLOAD" in q for q in audit_queries(far, 500)) == before + 2
