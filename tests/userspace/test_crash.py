"""A server killed (SIGKILL) in the middle of a DEST write leaves the old table or the
new one, never a broken one; the next write works."""

from __future__ import annotations

import threading
import time

import httpx
from userspace_helpers import csv_table, sync, table_of

from accounts import PASSWORD
from servers import ServerProcess


def _make_user(data_dir, name: str) -> None:
    from taphouse.auth.authenticator import Authenticator
    from taphouse.metadata import MetadataDB
    from taphouse.settings import Settings

    settings = Settings(data_dir=data_dir)
    meta = MetadataDB(settings.meta_path)
    Authenticator(meta, settings).accounts.add_user(name, PASSWORD)
    meta.close()


def test_kill_during_dest_write(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _make_user(data, "crash")
    server = ServerProcess(data).start()
    try:
        c = httpx.Client(base_url=server.url, auth=("crash", PASSWORD), timeout=120,
                         headers={"X-Taphouse": "tests"})
        assert c.put("/api/usertables/src?format=csv", content=csv_table(4000)).status_code == 201
        old = sync(c, "SELECT TOP 5 id, ra, dec FROM mydb.src ORDER BY id", DEST="mydb.t")
        assert old.status_code == 200
        # ~8 million rows with a HEALPix index to compute: takes seconds to write.
        big = ("SELECT a.id AS id, b.id AS id2, a.ra AS ra, a.dec AS dec FROM mydb.src AS a"
               " JOIN mydb.src AS b ON MOD(a.id, 2) = MOD(b.id, 2)")
        thread = threading.Thread(
            target=lambda: _ignore(lambda: sync(c, big, DEST="mydb.t", DEST_MODE="replace",
                                                MAXREC="1")), daemon=True)
        thread.start()
        # Versions are written in the server's tmp/ area and moved in when complete.
        deadline = time.time() + 60
        while time.time() < deadline and not list(data.glob("tmp/a-*/w-*.duckdb")):
            time.sleep(0.02)
        assert list(data.glob("tmp/a-*/w-*.duckdb")), "the write never started"
        time.sleep(0.3)
        server.kill()
        thread.join(timeout=30)
        c.close()
        server.start()
        c = httpx.Client(base_url=server.url, auth=("crash", PASSWORD), timeout=120,
                         headers={"X-Taphouse": "tests"})
        meta = c.get("/api/usertables/t").json()
        counted = int(table_of(sync(c, "SELECT COUNT(*) AS n FROM mydb.t"))["n"][0])
        assert counted == meta["nrows"]
        assert counted in (5, 4000 * 2000)
        # Nothing is stuck: the table can be written again.
        again = sync(c, "SELECT TOP 3 id, ra, dec FROM mydb.src", DEST="mydb.t",
                     DEST_MODE="replace")
        assert again.status_code == 200, again.text
        assert int(table_of(sync(c, "SELECT COUNT(*) AS n FROM mydb.t"))["n"][0]) == 3
        c.close()
    finally:
        server.stop()


def _ignore(fn) -> None:
    try:
        fn()
    except httpx.HTTPError:
        pass  # the server was killed under this request
