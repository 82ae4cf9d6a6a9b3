"""``taphouse`` commands run by an operator on the data directory of a running server:
the server's metadata database keeps its write-ahead log, its new SQLite connections
open, and its async jobs finish (no ``disk I/O error``, no 500).

SQLite's locks are POSIX record locks, per process: a process that ``open()``s and
closes its own server's ``meta.sqlite`` drops them, and the next command's last
connection then deletes the -wal/-shm under the server. Tests read a live store's raw
bytes with :func:`servers.raw_store_bytes` (another process) for that reason; the first
test here fails with a plain ``read_bytes()`` in its place.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from storage_helpers import add_user, client, count, csv_rows, taphouse

from servers import ServerProcess, raw_store_bytes, start_live

pytestmark = pytest.mark.slow
# 2000 x 1000 rows: long enough that a command runs while the job executes.
SLOW = ("SELECT COUNT(*) AS n FROM survey.stars AS a JOIN survey.stars AS b"
        " ON MOD(a.id, 2) = MOD(b.id, 2)")


def _prepare(data: Path, work: Path) -> None:
    (work / "stars.csv").write_text(csv_rows(2000))
    taphouse(data, "ingest", str(work / "stars.csv"), "-d", "survey", "-t", "stars", "-q")
    add_user(data, "ada")


def _async(c, query: str, wait: bool = True) -> str:
    r = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN"})
    assert r.status_code == 303, r.text
    job = r.headers["location"].rsplit("/", 1)[1]
    if wait:
        assert _phase(c, job) == "COMPLETED", c.get(f"/tap/async/{job}/error").text
    return job


def _phase(c, job: str, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = c.get(f"/tap/async/{job}/phase")
        assert r.status_code == 200, r.text
        if r.text in {"COMPLETED", "ERROR", "ABORTED"}:
            return r.text
        time.sleep(0.05)
    raise AssertionError(f"job {job} still {r.text}")


def _in_new_thread(fn):
    """``fn()`` in a fresh thread (so a new thread-local SQLite connection): its result,
    or the exception it raised."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(_call(fn)))
    t.start()
    t.join(60)
    return out[0]


def _call(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001  (returned to the test, which asserts on it)
        return exc


def test_commands_beside_a_server_in_this_process(tmp_path):
    data = tmp_path / "data"
    _prepare(data, tmp_path)
    server = start_live(data)
    try:
        meta = server.platform.meta
        wal = data / "meta.sqlite-wal"
        with client(server.url, "ada") as c:
            _async(c, "SELECT TOP 3 * FROM survey.stars")
            assert wal.exists()
            # what the PostgreSQL tests do: look for a secret in the raw store
            assert b"survey" in raw_store_bytes(data)
            for command in (("databases",), ("tables", "survey"), ("databases",)):
                taphouse(data, *command)
                assert wal.exists(), f"taphouse {command[0]} deleted the server's -wal"
                got = _in_new_thread(lambda: meta.query_one(
                    "SELECT COUNT(*) FROM schema_version")[0])
                assert isinstance(got, int) and got > 0, got
                _async(c, "SELECT TOP 3 * FROM survey.stars")
            # a command that writes, then the server writes and reads it
            add_user(data, "bob")
            with client(server.url, "bob") as b:
                assert count(b, "survey.stars") == 2000
            assert count(c, "survey.stars") == 2000
    finally:
        server.stop()


def test_commands_beside_a_server_process_and_a_running_job(tmp_path):
    data = tmp_path / "data"
    _prepare(data, tmp_path)
    server = ServerProcess(data).start()
    try:
        with client(server.url, "ada") as c:
            _async(c, "SELECT TOP 3 * FROM survey.stars")
            taphouse(data, "databases")
            taphouse(data, "tables", "survey")
            _async(c, "SELECT TOP 3 * FROM survey.stars")
            # commands while a job runs, and a write by the command line
            job = _async(c, SLOW, wait=False)
            taphouse(data, "databases")
            add_user(data, "bob")
            assert _phase(c, job) == "COMPLETED", c.get(f"/tap/async/{job}/error").text
            with client(server.url, "bob") as b:
                _async(b, "SELECT TOP 3 * FROM survey.stars")
            assert (data / "meta.sqlite-wal").exists()
        assert "disk I/O" not in server.log_text()
        assert "Traceback" not in server.log_text()
    finally:
        server.stop()
