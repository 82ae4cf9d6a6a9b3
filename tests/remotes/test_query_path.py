"""Queries naming REMOTE.schema.table through the platform's own TAP service, with pyvo
as the caller: pushed down whole to the remote (a second real taphouse)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
import pyvo
from remote_helpers import LOOPBACK, REMOTE_MAXREC_HARD

CONE = ("SELECT TOP 10 * FROM far.hipparcos.hip2 WHERE"
        " 1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 2))")

#: The ADQL the remote receives for CONE: generated from the tree, the remote's names.
CONE_SENT = ("SELECT TOP 10 * FROM hipparcos.hip2 WHERE 1 = CONTAINS(POINT('ICRS', ra, dec),"
             " CIRCLE('ICRS', 56.75, 24.12, 2))")


@pytest.fixture
def platform(start_server, remote_server) -> Any:  # noqa: ANN001
    server = start_server(outbound_allow=LOOPBACK)
    server.platform.remotes.add("far", remote_server.tap)
    return server


def received(remote_server: Any) -> str:
    entries = remote_server.platform.authenticator.audit_log.entries(event="query", limit=5)
    return next(e["detail"] for e in entries if "TAP_SCHEMA" not in (e["detail"] or ""))


def test_pyvo_cone_on_a_remote_table(platform, remote_server) -> None:  # noqa: ANN001
    service = pyvo.dal.TAPService(platform.tap)
    result = service.run_sync(CONE)
    assert len(result) == 10 and "hip" in result.fieldnames
    assert received(remote_server) == CONE_SENT
    job = service.run_async("SELECT COUNT(*) AS n FROM far.hipparcos.hip2 WHERE hpmag < 5")
    assert job[0]["n"] > 100
    assert received(remote_server) == ("SELECT COUNT(*) AS n FROM hipparcos.hip2 WHERE"
                                       " hpmag < 5")


def test_provenance_and_overflow_in_the_answer(platform) -> None:  # noqa: ANN001
    r = httpx.post(platform.tap + "/sync", timeout=120, data={
        "LANG": "ADQL", "QUERY": "SELECT hip FROM far.hipparcos.hip2",
        "RESPONSEFORMAT": "votable/td", "MAXREC": "1000"})
    assert r.status_code == 200, r.text
    assert r.content.count(b"<TR>") == REMOTE_MAXREC_HARD
    assert re.search(rb'<INFO name="QUERY_STATUS" value="OVERFLOW"', r.content)
    assert b'<INFO name="REMOTE" value="far"' in r.content
    assert b'name="REMOTE_QUERY" value="SELECT hip FROM hipparcos.hip2"' in r.content


@pytest.mark.parametrize(("adql", "message"), [
    # Joined with a local table: a federated join ([federation]); this one would pull
    # the whole remote table, more than the remote returns.
    ("SELECT * FROM far.hipparcos.hip2 AS a JOIN tap_schema.tables AS b ON 1=1",
     "the remote side is too large"),
    ("SELECT * FROM nosuch.hipparcos.hip2", "'nosuch' is not a remote service"),
    ("SELECT nope FROM far.hipparcos.hip2", "remote 'far' reported an error"),
])
def test_refusals_are_tap_errors(platform, adql: str, message: str) -> None:  # noqa: ANN001
    r = httpx.post(platform.tap + "/sync", timeout=120, data={"LANG": "ADQL", "QUERY": adql})
    assert r.status_code == 400
    assert message in r.text, r.text


def test_taphouse_client_queries_a_remote_table(platform, remote_server) -> None:  # noqa: ANN001
    import taphouse

    client = taphouse.connect(platform.url, interactive=False, progress=False)
    table = client.query(CONE)  # the issue's own query, as written
    assert len(table) == 10 and "hip" in table.colnames
    assert received(remote_server) == CONE_SENT
    table = client.query(CONE.replace("TOP 10 *", "TOP 5 hip, ra, dec") + " ORDER BY hip")
    assert len(table) == 5 and list(table.colnames) == ["hip", "ra", "dec"]
    assert str(table["ra"].unit) == "deg"
    assert received(remote_server).endswith("ORDER BY hip")
    # client.explain: what would run where, nothing run.
    before = received(remote_server)
    plan = client.explain(CONE, maxrec=5)
    (part,) = plan["parts"]
    assert part["runs_on"] == f"remote far ({remote_server.tap})"
    assert part["remote_adql"].startswith("SELECT TOP 10 * FROM hipparcos.hip2 WHERE 1 =")
    assert part["maxrec"] == 5 and part["tables"] == ["far.hipparcos.hip2"]
    assert received(remote_server) == before
    assert client.explain("SELECT TOP 1 * FROM tap_schema.schemas")["parts"][0][
        "runs_on"] == "local"
    from taphouse.client.errors import ClientError

    with pytest.raises(ClientError, match="has no table hipparcos.nope"):
        client.explain("SELECT * FROM far.hipparcos.nope")


def test_stilts_queries_a_remote_table(platform, remote_server) -> None:  # noqa: ANN001
    import shutil
    import subprocess

    exe = shutil.which("stilts")
    assert exe, "stilts is not installed (Debian package 'stilts'); scripts/test.sh does it"
    proc = subprocess.run([exe, "tapquery", f"tapurl={platform.tap}", f"adql={CONE}",
                           "sync=true", "ofmt=csv"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("hip,") and len(lines) == 11
    assert received(remote_server) == CONE_SENT


def test_explain_shows_the_exact_remote_adql(platform) -> None:  # noqa: ANN001
    r = httpx.post(platform.url + "/api/explain", timeout=60, json={"query": CONE})
    assert r.status_code == 200, r.text
    (part,) = r.json()["parts"]
    assert part["runs_on"].startswith("remote far (http://127.0.0.1:")
    assert part["remote_adql"].startswith("SELECT TOP 10 * FROM hipparcos.hip2 WHERE 1 =")
    assert part["maxrec"] == 10 and part["tables"] == ["far.hipparcos.hip2"]
    local = httpx.post(platform.url + "/api/explain", timeout=60,
                       json={"query": "SELECT TOP 1 * FROM tap_schema.tables"}).json()
    assert local["parts"][0]["runs_on"] == "local" and local["parts"][0]["sql"]
    bad = httpx.post(platform.url + "/api/explain", timeout=60,
                     json={"query": "SELECT * FROM far.hipparcos.nope"})
    assert bad.status_code == 400 and "has no table hipparcos.nope" in bad.json()["error"]


def test_dest_stores_a_remote_answer_with_its_provenance(platform, remote_server  # noqa: ANN001
                                                         ) -> None:
    platform.platform.authenticator.accounts.add_user("alice", "correct-horse-battery")
    with httpx.Client(base_url=platform.url, timeout=120, auth=("alice", "correct-horse-battery"),
                      headers={"X-Taphouse": "tests"}) as alice:
        r = alice.post("/tap/sync", data={"LANG": "ADQL", "QUERY": CONE, "DEST": "mydb.copy",
                                          "MAXREC": "3", "FORMAT": "votable"})
        assert r.status_code == 200, r.text
        assert 'name="DEST_ROWS" value="10"' in r.text and 'name="REMOTE" value="far"' in r.text
        assert 'value="OVERFLOW"' in r.text  # the response itself: MAXREC rows
        # All 10 rows stored (the remote was asked for them all, not for MAXREC=3) ...
        r = alice.post("/tap/sync", data={"LANG": "ADQL", "FORMAT": "csv", "QUERY":
                                          "SELECT COUNT(*) AS n, MIN(ra) AS r FROM mydb.copy"})
        assert r.text.splitlines()[1].startswith("10,"), r.text
        # ... with their units, and where they came from.
        table = platform.platform.catalogue.table("user_alice", "copy")
        assert next(c for c in table.columns if c.name == "ra").unit == "deg"
        prov = table.extra["provenance"]
        assert prov["remote"]["name"] == "far" and prov["remote"]["url"] == remote_server.tap
        assert prov["remote"]["adql"] == received(remote_server)
        assert prov["remote"]["adql"].startswith("SELECT TOP 10 * FROM hipparcos.hip2")
        assert "remote TAP service far" in table.description
        # Appending the same query adds 10 more (DEST_MODE as for local queries).
        r = alice.post("/tap/sync", data={"LANG": "ADQL", "QUERY": CONE, "DEST": "mydb.copy",
                                          "DEST_MODE": "append"})
        assert r.status_code == 200 and platform.platform.catalogue.table(
            "user_alice", "copy").nrows == 20
        # An answer the remote truncates (its hard limit is 200 rows) is never stored.
        r = alice.post("/tap/sync", data={"LANG": "ADQL", "DEST": "mydb.partial",
                                          "QUERY": "SELECT hip FROM far.hipparcos.hip2"})
        assert r.status_code == 400 and "truncated" in r.text and "nothing was stored" in r.text
        assert platform.platform.catalogue.table("user_alice", "partial") is None
        # An async job stores it too.
        r = alice.post("/tap/async", data={"LANG": "ADQL", "QUERY": CONE, "PHASE": "RUN",
                                           "DEST": "mydb.viajob"})
        assert r.status_code == 303
        job = r.headers["location"]
        for _ in range(300):
            if alice.get(job + "/phase").text.strip() in ("COMPLETED", "ERROR"):
                break
            time.sleep(0.2)
        assert alice.get(job + "/phase").text.strip() == "COMPLETED", alice.get(job).text
        assert platform.platform.catalogue.table("user_alice", "viajob").nrows == 10
    # Anonymous callers have no user space.
    r = httpx.post(platform.url + "/tap/sync", timeout=60,
                   data={"LANG": "ADQL", "QUERY": CONE, "DEST": "mydb.copy"})
    assert r.status_code in (400, 401) and "log in" in r.text


def test_upload_and_hidden_remotes_are_refused(platform, remote_server) -> None:  # noqa: ANN001
    auth = platform.platform.authenticator
    auth.accounts.add_user("alice", "correct-horse-battery")
    platform.platform.remotes.add("vault", remote_server.tap, groups=("survey",))
    with httpx.Client(base_url=platform.url, timeout=120, auth=("alice", "correct-horse-battery"),
                      headers={"X-Taphouse": "tests"}) as alice:
        r = alice.post("/tap/sync", data={"LANG": "ADQL", "UPLOAD": "t,param:t",
                                          "QUERY": "SELECT * FROM far.hipparcos.hip2"},
                       files={"t": ("t.csv", b"a\n1\n", "text/csv")})
        assert r.status_code == 400 and "TAP_UPLOAD tables cannot be joined" in r.text
        # A remote restricted to a group she is not in does not exist for her.
        r = alice.post("/tap/sync", data={"LANG": "ADQL",
                                          "QUERY": "SELECT TOP 1 * FROM vault.hipparcos.hip2"})
        assert r.status_code == 400 and "'vault' is not a remote service you can" in r.text
