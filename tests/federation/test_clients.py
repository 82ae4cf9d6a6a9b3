"""The issue's query through the clients astronomers use: pyvo (sync and async), STILTS
``tapquery`` and the taphouse client, all answered like the same crossmatch computed
locally."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pyvo
import requests
from federation_helpers import PASSWORD, XMATCH, sync

import taphouse

QUERY = XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600.") + " ORDER BY mine, theirs"
LOCAL = XMATCH.format(remote="hipparcos.hip2", radius="1/3600.") + " ORDER BY mine, theirs"


def _service(here: Any) -> pyvo.dal.TAPService:
    session = requests.Session()
    session.auth = ("alice", PASSWORD)
    return pyvo.dal.TAPService(here.tap, session=session)


def test_pyvo_sync_and_async(here: Any) -> None:
    service = _service(here)
    want = service.run_sync(LOCAL).to_table()
    got = service.run_sync(QUERY).to_table()
    assert len(got) == len(want) >= 300
    assert list(got["mine"]) == list(want["mine"]) and list(got["theirs"]) == list(want["theirs"])
    job = service.run_async(QUERY)
    assert list(job.to_table()["theirs"]) == list(want["theirs"])


def test_stilts_tapquery(here: Any) -> None:
    exe = shutil.which("stilts")
    assert exe, "stilts is not installed (Debian package 'stilts'); scripts/test.sh does it"
    # The stilts launcher splits its arguments on blanks: a password without any.
    accounts = here.platform.authenticator.accounts
    if accounts.user("carol") is None:
        accounts.add_user("carol", "carol-password-42")
        r = sync(here, None, "SELECT 1")  # (warm)
        import httpx

        r = httpx.post(here.tap + "/sync", auth=("carol", "carol-password-42"), timeout=300,
                       data={"LANG": "ADQL", "DEST": "mydb.targets", "QUERY":
                             "SELECT hip, ra, dec FROM hipparcos.hip2 WHERE hip < 200"})
        assert r.status_code == 200, r.text
    query = QUERY.replace("mydb.targets", "mydb.targets")
    base = here.url + "/tap/auth"  # login endpoint: STILTS sends credentials when asked
    proc = subprocess.run([exe, "-Dstar.basicauth.user=carol",
                           "-Dstar.basicauth.password=carol-password-42", "tapquery",
                           f"tapurl={base}", f"adql={query}", "sync=true", "ofmt=csv"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "mine,theirs,hpmag"
    assert [tuple(line.split(",")[:2]) for line in lines[1:]] == [
        (str(h), str(h)) for h in range(1, 200)
        if any(line.startswith(f"{h},") for line in lines[1:])] and len(lines) > 150


def test_taphouse_client(here: Any, tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    client = taphouse.connect(here.url, interactive=False, progress=False)
    client.login("alice", PASSWORD)
    try:
        got = client.query(QUERY)
        want = client.query(LOCAL)
        assert list(got["theirs"]) == list(want["theirs"]) and len(got) >= 300
        assert got["hpmag"].unit == want["hpmag"].unit
    finally:
        client.close()
