"""A user's table joined with a remote taphouse's table: the local side's key and
position columns are uploaded in blocks sized to the remote's limits; what was shipped
is asserted from the remote's own audit log, and the answer against the same crossmatch
computed locally."""

from __future__ import annotations

import io
import re

from astropy.io.votable import parse_single_table
from federation_helpers import XMATCH, audit_queries, sync


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
