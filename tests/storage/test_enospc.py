"""A full disk (a size-limited tmpfs holding the data directory) never corrupts and never
stops reads: writes fail with 507 and leave nothing; public reads go on with audit
records in the server log; reads of restricted databases are refused until the audit
log can be written again."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from lxml import etree
from storage_helpers import (
    PASSWORD,
    add_user,
    client,
    count,
    csv_rows,
    fill,
    sync,
    taphouse,
)

from servers import start_live

pytestmark = pytest.mark.slow

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
# 1500 x 750 = 1.1M rows, random values that do not compress: tens of MB as a table.
BIG = ("SELECT a.id AS id, b.id AS id2, a.ra AS ra, a.dec AS dec, RAND() AS r1,"
       " RAND() AS r2 FROM survey.stars AS a JOIN survey.stars AS b"
       " ON MOD(a.id, 2) = MOD(b.id, 2)")


def _prepare(data: Path, work: Path) -> None:
    (work / "stars.csv").write_text(csv_rows(1500))
    (work / "plans.csv").write_text("id,what\n1,first light\n2,second light\n")
    taphouse(data, "ingest", str(work / "stars.csv"), "-d", "survey", "-t", "stars", "-q")
    taphouse(data, "ingest", str(work / "plans.csv"), "-d", "secret", "-t", "plans", "-q")
    add_user(data, "ada", groups=("team",))
    taphouse(data, "db", "restrict", "secret", "--groups", "team")


def _snapshot(data: Path) -> set[str]:
    """Every file under the data directory except the SQLite journal files."""
    return {p.relative_to(data).as_posix() for p in data.rglob("*")
            if p.is_file() and not p.name.startswith("meta.sqlite-")}


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _job_end(c, location: str, timeout: float = 120) -> etree._Element:
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = etree.fromstring(c.get(location, params={"WAIT": "5"}).content)
        if doc.findtext("uws:phase", namespaces=NS) in ("COMPLETED", "ERROR", "ABORTED"):
            return doc
    raise AssertionError("the job did not end")


def test_full_disk_reads_go_on_writes_are_507(small_disk, tmp_path, caplog):
    disk = small_disk(48 * 1024 * 1024)
    data = disk / "data"
    _prepare(data, tmp_path)
    server = start_live(data)
    try:
        with client(server.url, "ada") as ada:
            assert count(ada, "secret.plans") == 2  # attaches the file while there is room
        before = _snapshot(data)
        filler = fill(disk)
        assert _free(disk) == 0
        caplog.set_level(logging.WARNING, logger="taphouse.audit")
        with client(server.url) as anon, client(server.url, "ada") as ada:
            # Reads of public data go on; their audit records go to the server log.
            assert count(anon, "survey.stars") == 1500
            assert count(ada, "survey.stars") == 1500
            assert "audit record not stored" in caplog.text
            assert "SELECT COUNT(*) AS n FROM survey.stars" in caplog.text
            # A restricted database: refused while its reads cannot be recorded.
            r = sync(ada, "SELECT * FROM secret.plans")
            assert r.status_code == 507, r.text
            assert "audit log" in r.text and "QUERY_STATUS" in r.text
            # Writes: 507 with a message, nothing left behind.
            r = sync(ada, "SELECT TOP 10 * FROM survey.stars", DEST="mydb.ten")
            assert r.status_code == 507 and "disk is full" in r.text, r.text
            r = ada.put("/api/usertables/up?format=csv", content=csv_rows(50).encode())
            assert r.status_code == 507 and "disk is full" in r.json()["error"]
            r = ada.post("/tap/async", data={"LANG": "ADQL", "PHASE": "RUN",
                                             "QUERY": "SELECT TOP 5 * FROM survey.stars"})
            if r.status_code == 303:  # the job record fitted in the journal: runs to ERROR
                doc = _job_end(ada, r.headers["location"])
                assert doc.findtext("uws:phase", namespaces=NS) == "ERROR"
            else:
                assert r.status_code == 507, r.text
            r = ada.post("/auth/token", data={"username": "ada", "password": PASSWORD})
            assert r.status_code == 507, r.text
            # Nothing half-written anywhere.
            assert _snapshot(data) == before
            assert list((data / "tmp").rglob("w-*")) == []
        # Space again: everything works, and is recorded again.
        filler.unlink()
        with client(server.url, "ada") as ada:
            assert count(ada, "secret.plans") == 2
            r = sync(ada, "SELECT TOP 10 * FROM survey.stars", DEST="mydb.ten")
            assert r.status_code == 200, r.text
            assert count(ada, "mydb.ten") == 10
        entries = server.platform.authenticator.audit_log.entries(username="ada", limit=5)
        assert any(e["detail"] == "SELECT COUNT(*) AS n FROM secret.plans"
                   and e["outcome"] == "ok" and e["rows"] == 1 for e in entries)
    finally:
        server.stop()


def test_big_writes_on_an_almost_full_disk_leave_nothing(small_disk, tmp_path):
    disk = small_disk(64 * 1024 * 1024)
    data = disk / "data"
    _prepare(data, tmp_path)
    server = start_live(data)
    try:
        with client(server.url, "ada") as ada:
            r = sync(ada, "SELECT TOP 100 * FROM survey.stars", DEST="mydb.small")
            assert r.status_code == 200, r.text
        # 3 MB free: small metadata writes fit, tables of tens of MB do not.
        filler = fill(disk, leave=3 * 1024 * 1024)
        before = _snapshot(data)
        with client(server.url, "ada") as ada, client(server.url) as anon:
            # DEST, replacing an existing table: 507, the old version stays.
            r = sync(ada, BIG, DEST="mydb.small", DEST_MODE="replace", MAXREC="1")
            assert r.status_code == 507 and "disk is full" in r.text, r.text
            assert count(ada, "mydb.small") == 100
            # Upload of a table too big for the disk.
            r = ada.put("/api/usertables/big?format=csv", content=csv_rows(400_000).encode())
            assert r.status_code == 507, r.text
            # An async job of a logged-in user (its result is kept as mydb.job_<id>) and
            # one of an anonymous user (its result is a file): both end in ERROR.
            for c in (ada, anon):
                r = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": BIG,
                                               "RESPONSEFORMAT": "csv", "PHASE": "RUN",
                                               "MAXREC": "5000000"})
                assert r.status_code == 303, r.text
                doc = _job_end(c, r.headers["location"])
                assert doc.findtext("uws:phase", namespaces=NS) == "ERROR"
                message = c.get(r.headers["location"] + "/error").text
                assert "disk is full" in message, message
            assert {t["name"] for t in ada.get("/api/usertables").json()} == {"small"}
            # Reads still work.
            assert count(anon, "survey.stars") == 1500
        # Nothing half-written: only job folders (their records) are new.
        after = {p for p in _snapshot(data) if not p.startswith("jobs/")}
        assert after == before
        assert list((data / "tmp").rglob("w-*")) == []
        assert not list((data / "jobs").rglob("*.part"))
        filler.unlink()
    finally:
        server.stop()
    # Ingest (the CLI) on an almost full disk: a clear error, the old version intact.
    filler = fill(disk, leave=3 * 1024 * 1024)
    before = _snapshot(data)
    (tmp_path / "huge.csv").write_text(csv_rows(600_000))
    proc = taphouse(data, "ingest", str(tmp_path / "huge.csv"), "-d", "survey", "-t", "stars",
                    "-q", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "disk is full" in proc.stderr and "Traceback" not in proc.stderr
    assert _snapshot(data) == before
    assert list((data / "tmp").iterdir()) == []
    filler.unlink()
    server = start_live(data)
    try:
        with client(server.url) as anon:
            assert count(anon, "survey.stars") == 1500
    finally:
        server.stop()
