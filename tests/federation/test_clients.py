"""The issue's query through the clients astronomers use: pyvo (sync and async), STILTS
``tapquery`` and the taphouse client, each answered like the same crossmatch computed
locally, and each shipping only the row key and the positions to the remote (what the
remote received is read from its own audit log; the answer's INFOs and EXPLAIN say the
same)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import httpx
import pyvo
import requests
from federation_helpers import PASSWORD, XMATCH, audit_queries

import taphouse

QUERY = XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600.") + " ORDER BY mine, theirs"
LOCAL = XMATCH.format(remote="hipparcos.hip2", radius="1/3600.") + " ORDER BY mine, theirs"
#: What the remote runs for each block: the key and the positions of the block, nothing
#: else of the user's table; its own columns the answer needs.
SENT = ("SELECT t.taphouse_key, r.hpmag, r.hip FROM TAP_UPLOAD.taphouse_block AS t JOIN"
        ' hipparcos.hip2 AS r ON 1 = CONTAINS(POINT(t.ra, t."dec"), CIRCLE(r.ra, r."dec",'
        " 1 / 3600.))")


def uploads(far: Any) -> list[str]:
    """The upload queries the remote received, newest first."""
    return [q for q in audit_queries(far, 100_000) if "TAP_UPLOAD" in q]


def assert_shipped(far: Any, before: int) -> None:
    received = uploads(far)
    assert len(received) > before, "nothing was uploaded to the remote"
    assert set(received[:len(received) - before]) == {SENT}


def _service(here: Any) -> pyvo.dal.TAPService:
    session = requests.Session()
    session.auth = ("alice", PASSWORD)
    return pyvo.dal.TAPService(here.tap, session=session)


def test_pyvo_sync_and_async(here: Any, far: Any) -> None:
    service = _service(here)
    want = service.run_sync(LOCAL).to_table()
    before = len(uploads(far))
    result = service.run_sync(QUERY)
    got = result.to_table()
    assert len(got) == len(want) >= 300
    assert list(got["mine"]) == list(want["mine"]) and list(got["theirs"]) == list(want["theirs"])
    infos = {i.name: i.value for i in result.votable.resources[0].infos}
    assert infos["FEDERATION"] == "upload" and infos["UPLOAD_ROWS"] == "300", infos
    assert_shipped(far, before)
    before = len(uploads(far))
    job = service.run_async(QUERY)
    assert list(job.to_table()["theirs"]) == list(want["theirs"])
    assert_shipped(far, before)


def test_stilts_tapquery(here: Any, far: Any) -> None:
    exe = shutil.which("stilts")
    assert exe, "stilts is not installed (Debian package 'stilts'); scripts/test.sh does it"
    # The stilts launcher splits its arguments on blanks: a password without any.
    accounts = here.platform.authenticator.accounts
    auth = ("carol", "carol-password-42")
    if accounts.user("carol") is None:
        accounts.add_user(*auth)
        r = httpx.post(here.tap + "/sync", auth=auth, timeout=300,
                       data={"LANG": "ADQL", "DEST": "mydb.targets", "QUERY":
                             "SELECT hip, ra, dec FROM hipparcos.hip2 WHERE hip < 200"})
        assert r.status_code == 200, r.text
    local = httpx.post(here.tap + "/sync", auth=auth, timeout=300, data={
        "LANG": "ADQL", "QUERY": LOCAL, "RESPONSEFORMAT": "csv"})
    assert local.status_code == 200, local.text
    want = [line.split(",")[:2] for line in local.text.strip().splitlines()[1:]]
    before = len(uploads(far))
    base = here.url + "/tap/auth"  # login endpoint: STILTS sends credentials when asked
    proc = subprocess.run([exe, f"-Dstar.basicauth.user={auth[0]}",
                           f"-Dstar.basicauth.password={auth[1]}", "tapquery",
                           f"tapurl={base}", f"adql={QUERY}", "sync=true", "ofmt=csv"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "mine,theirs,hpmag"
    assert [line.split(",")[:2] for line in lines[1:]] == want and len(want) > 150
    assert_shipped(far, before)


def test_taphouse_client(here: Any, far: Any, tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    client = taphouse.connect(here.url, interactive=False, progress=False)
    client.login("alice", PASSWORD)
    try:
        remote, _local = client.explain(QUERY)["parts"]
        assert remote["strategy"] == "upload" and remote["remote_adql"] == SENT
        assert remote["uploaded_columns"] == ["taphouse_key", "ra", "dec"]
        before = len(uploads(far))
        got = client.query(QUERY)
        want = client.query(LOCAL)
        assert list(got["mine"]) == list(want["mine"]) and len(got) >= 300
        assert list(got["theirs"]) == list(want["theirs"])
        assert got["hpmag"].unit == want["hpmag"].unit
        assert_shipped(far, before)
    finally:
        client.close()
