"""SIGKILL in the middle of an ingest, a DEST, an upload and an async job, then a
restart: nothing half-written is visible, earlier versions are intact, the interrupted
job is in ERROR, and what the dead process left in tmp/ is removed at start-up."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from lxml import etree
from storage_helpers import add_user, client, count, csv_rows, sync, taphouse

from servers import ServerProcess

pytestmark = pytest.mark.slow

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
# 3000 x 1500 = 4.5M rows with a HEALPix index: seconds to write.
BIG = ("SELECT a.id AS id, b.id AS id2, a.ra AS ra, a.dec AS dec FROM survey.stars AS a"
       " JOIN survey.stars AS b ON MOD(a.id, 2) = MOD(b.id, 2)")


def _prepare(data: Path, work: Path) -> None:
    (work / "stars.csv").write_text(csv_rows(3000))
    taphouse(data, "ingest", str(work / "stars.csv"), "-d", "survey", "-t", "stars", "-q")
    add_user(data, "ada")


def _writing(data: Path, pattern: str = "tmp/a-*/w-*.duckdb", timeout: float = 60) -> None:
    """Wait until a version is being written in some process's tmp/ area, and growing."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        files = list(data.glob(pattern))
        if files and any(f.exists() and f.stat().st_size > 0 for f in files):
            time.sleep(0.2)
            if list(data.glob(pattern)):
                return
        time.sleep(0.01)
    raise AssertionError(f"no write in progress ({pattern})")


def _table_files(data: Path) -> set[str]:
    return {p.relative_to(data).as_posix() for p in (data / "tables").rglob("*")
            if p.is_file() and p.name != ".gc.lock"}


def _only_own_area(data: Path, server: ServerProcess) -> None:
    """tmp/ holds the running server's area, empty of writes, and nothing else."""
    entries = list((data / "tmp").iterdir())
    assert [e.name.split("-")[1] for e in entries] == [str(server.proc.pid)], entries
    assert list((data / "tmp").rglob("w-*")) == []


def _in_background(fn) -> threading.Thread:
    def run() -> None:
        try:
            fn()
        except httpx.HTTPError:
            pass  # the server was killed under this request
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_kill_during_ingest(tmp_path):
    data = tmp_path / "data"
    _prepare(data, tmp_path)
    (tmp_path / "big.csv").write_text(csv_rows(2_000_000, seed=5))
    before = _table_files(data)
    proc = subprocess.Popen([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data),
                             "ingest", str(tmp_path / "big.csv"), "-d", "survey", "-t",
                             "stars", "-q", "--replace"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _writing(data, "tmp/a-*/ingest-*/*", timeout=120)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list((data / "tmp").iterdir())  # the dead ingest's area is still there
    assert _table_files(data) == before
    server = ServerProcess(data).start()
    try:
        _only_own_area(data, server)
        with client(server.url) as c:
            assert count(c, "survey.stars") == 3000
    finally:
        server.stop()
    # The table can be ingested again.
    (tmp_path / "small.csv").write_text(csv_rows(10))
    taphouse(data, "ingest", str(tmp_path / "small.csv"), "-d", "survey", "-t", "stars", "-q")
    assert "survey.stars\t10 rows" in taphouse(data, "tables", "survey").stdout


def test_kill_during_partitioned_ingest(tmp_path):
    """SIGKILL while the HATS partitions are written: no version directory appears in
    tables/, the table keeps its version, start-up removes the dead area, and the table
    can be ingested partitioned again."""
    data = tmp_path / "data"
    _prepare(data, tmp_path)
    (tmp_path / "big.csv").write_text(csv_rows(2_000_000, seed=5))
    before = _table_files(data)
    proc = subprocess.Popen([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data),
                             "ingest", str(tmp_path / "big.csv"), "-d", "survey", "-t",
                             "stars", "-q", "--replace", "--partitioned", "--partition-rows",
                             "20000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _writing(data, "tmp/a-*/hats-*/version.hats/catalog/dataset/*/*/*.parquet",
                 timeout=240)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _table_files(data) == before
    assert not list((data / "tables").rglob("*.hats"))
    server = ServerProcess(data).start()
    try:
        _only_own_area(data, server)
        with client(server.url) as c:
            assert count(c, "survey.stars") == 3000
    finally:
        server.stop()
    (tmp_path / "small.csv").write_text(csv_rows(500))
    taphouse(data, "ingest", str(tmp_path / "small.csv"), "-d", "survey", "-t", "stars",
             "-q", "--partitioned", "--partition-rows", "100")
    assert "survey.stars\t500 rows" in taphouse(data, "tables", "survey").stdout
    assert len(list((data / "tables").rglob("*.hats"))) == 1


@pytest.mark.parametrize("how", ["dest", "upload", "async"])
def test_kill_during_a_server_write(tmp_path, how):
    data = tmp_path / "data"
    _prepare(data, tmp_path)
    server = ServerProcess(data).start()
    job = None
    try:
        with client(server.url, "ada") as c:
            r = sync(c, "SELECT TOP 5 * FROM survey.stars", DEST="mydb.t")
            assert r.status_code == 200, r.text
        before = _table_files(data)
        c = client(server.url, "ada")
        if how == "dest":
            _in_background(lambda: sync(c, BIG, DEST="mydb.t", DEST_MODE="replace",
                                        MAXREC="1"))
        elif how == "upload":
            body = csv_rows(1_500_000).encode()
            _in_background(lambda: c.put("/api/usertables/t?format=csv&mode=replace",
                                         content=body))
        else:
            r = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": BIG, "PHASE": "RUN",
                                           "MAXREC": "10000000"})
            assert r.status_code == 303, r.text
            job = r.headers["location"].rsplit("/", 1)[1]
        _writing(data)
        server.kill()
        c.close()
        assert _table_files(data) == before
        server.start()
        _only_own_area(data, server)
        assert _table_files(data) == before
        with client(server.url, "ada") as c:
            assert count(c, "mydb.t") == 5  # the earlier version, whole
            assert count(c, "survey.stars") == 3000
            names = {t["name"] for t in c.get("/api/usertables").json()}
            assert names == {"t"}  # no job_<id> table, no half upload
            if job is not None:
                doc = etree.fromstring(c.get(f"/tap/async/{job}").content)
                assert doc.findtext("uws:phase", namespaces=NS) == "ERROR"
                assert "restarted" in c.get(f"/tap/async/{job}/error").text
                assert not list((data / "jobs" / job).glob("*result*"))
            # Nothing is stuck: the table can be written again.
            r = sync(c, "SELECT TOP 3 * FROM survey.stars", DEST="mydb.t", DEST_MODE="replace")
            assert r.status_code == 200, r.text
            assert count(c, "mydb.t") == 3
    finally:
        server.stop()
