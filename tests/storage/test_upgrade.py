"""A data directory made by the previous release (commit 68f3c0c, taphouse 0.1.0) opens
with this code: refused by commands that do not upgrade, upgraded by the server after a
backup of its metadata, and then every table, account and permission is as it was.

The store is a committed archive made once by ``make_release_store.py`` with that
release's code (see there why and how): a test that rebuilt it from git history would
need the history (shallow clones have none) and the old code's dependencies, and would
drift with them; the archive is the store as operators have it on disk, and it also
catches a DuckDB upgrade that cannot read their version files.
"""

from __future__ import annotations

import re
import sqlite3
import stat
import tarfile
from pathlib import Path

import httpx
from storage_helpers import count, sync, taphouse

from accounts import PASSWORD  # the archive's account has it (make_release_store.py)
from servers import ServerProcess

ARCHIVE = Path(__file__).parent / "data" / "store-68f3c0c.tar.gz"


def _unpack(tmp_path: Path) -> Path:
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "store"


def test_previous_release_store_opens_and_upgrades(tmp_path):
    data = _unpack(tmp_path)
    files_before = sorted(p.relative_to(data).as_posix()
                          for p in (data / "tables").rglob("*.duckdb"))
    assert len(files_before) == 5  # 4 tables + 1 replaced version awaiting deletion
    # Commands that do not upgrade refuse, and change nothing.
    proc = taphouse(data, "tables", "survey", check=False)
    assert proc.returncode == 2 and "needs upgrading" in proc.stderr, proc.stderr
    assert not (data / "backups").exists()
    server = ServerProcess(data, env={"TAPHOUSE_MAINTENANCE_GRACE": "0",
                                      "TAPHOUSE_VERSION_RETENTION": "0",
                                      "TAPHOUSE_MAINTENANCE_INTERVAL": "0.2"}).start()
    try:
        log = server.log_text()
        assert "upgrading the metadata" in log and re.search(r"catalogue 1 -> \d", log)
        assert "readable by other accounts" in log  # 0755/0644 then
        with httpx.Client(base_url=server.url, timeout=60) as anon:
            assert count(anon, "survey.stars") == 300  # the second ingest
            assert count(anon, "survey.galaxies") == 200  # ingested by an absolute path
            r = sync(anon, "SELECT * FROM secret.plans")
            assert r.status_code == 400 and "secret" in r.text  # restricted: unknown here
        with httpx.Client(base_url=server.url, auth=("ada", PASSWORD), timeout=60) as ada:
            assert count(ada, "secret.plans") == 2
            assert count(ada, "mydb.mine") == 2
            r = ada.post("/auth/token", data={"username": "ada", "password": PASSWORD})
            assert r.status_code == 200, r.text
        # Maintenance ran (every 0.2 s, no grace): only the replaced version went.
        import time

        deadline = time.time() + 30
        while time.time() < deadline and len(list((data / "tables").rglob("*.duckdb"))) > 4:
            time.sleep(0.2)
        files_after = sorted(p.relative_to(data).as_posix()
                             for p in (data / "tables").rglob("*.duckdb"))
        assert len(files_after) == 4 and set(files_after) < set(files_before)
        with httpx.Client(base_url=server.url, timeout=60) as anon:
            assert count(anon, "survey.stars") == 300
            assert count(anon, "survey.galaxies") == 200
    finally:
        server.stop()
    # The metadata from before is kept, as it was.
    copies = list((data / "backups").glob("*.sqlite"))
    assert len(copies) == 1
    con = sqlite3.connect(copies[0])
    assert dict(con.execute("SELECT component, version FROM schema_version")) == {
        "auth": 1, "catalogue": 1, "jobs": 1, "userspace": 1}
    con.close()
    # Private now: files 0600, directories 0700 (the group may only traverse them).
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & (0o067 if path.is_dir() else 0o077) == 0, (path, oct(mode))
    # And the CLI is happy with it again.
    assert "survey.stars\t300 rows" in taphouse(data, "tables", "survey").stdout
