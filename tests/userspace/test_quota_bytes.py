"""The byte quota is enforced while writing (a big DEST stops early and leaves nothing),
replaced versions count until their files are deleted, and concurrent writes cannot add
up past the quota."""

from __future__ import annotations

import threading
import time

from userspace_helpers import client_for, csv_table, sync, table_of

from accounts import new_user

BIG = ("SELECT a.id AS id, b.id AS id2, a.ra AS ra, a.dec AS dec FROM mydb.src AS a"
       " JOIN mydb.src AS b ON MOD(a.id, 2) = MOD(b.id, 2)")  # 2000 x 1000 = 2M rows


def _disk(server, user: str) -> int:
    folder = server.platform.settings.tables_dir / f"user_{user}"
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _watch_tmp(server, stop: threading.Event, peak: list[int]) -> None:
    tmp = server.platform.settings.tmp_dir
    while not stop.is_set():
        size = 0
        for p in tmp.rglob("w-*"):
            try:
                size += p.stat().st_size
            except FileNotFoundError:
                pass
        peak[0] = max(peak[0], size)
        time.sleep(0.005)


def test_dest_over_byte_quota_stops_while_writing(start_server):
    quota = 4 * 1024 * 1024
    server = start_server(quota_bytes=quota)
    user = new_user(server)
    c = client_for(server, user)
    assert c.put("/api/usertables/src?format=csv", content=csv_table(2000)).status_code == 201
    before = c.get("/api/quota").json()
    files_before = _disk(server, user)
    stop, peak = threading.Event(), [0]
    watcher = threading.Thread(target=_watch_tmp, args=(server, stop, peak))
    watcher.start()
    try:
        started = time.monotonic()
        r = sync(c, BIG, DEST="mydb.huge", MAXREC="1")
        seconds = time.monotonic() - started
    finally:
        stop.set()
        watcher.join()
    assert r.status_code == 400, r.text
    assert "quota exceeded" in r.text and "(bytes)" in r.text and "Nothing was stored" in r.text
    # Stopped near the limit: the whole result is ~50 MB.
    assert 0 < peak[0] < quota + 16 * 1024 * 1024, peak[0]
    assert c.get("/api/quota").json() == before
    assert _disk(server, user) == files_before
    assert list(server.platform.settings.tmp_dir.rglob("w-*")) == []
    assert {t["name"] for t in c.get("/api/usertables").json()} == {"src"}
    assert seconds < 60
    # The same through an upload: refused, nothing kept.
    r = c.put("/api/usertables/up?format=csv", content=csv_table(600_000))
    assert r.status_code == 413 and "(bytes)" in r.json()["error"], r.text
    assert c.get("/api/quota").json() == before


def test_replaced_versions_count_until_deleted(start_server):
    # Measure one version of the table, then allow three of them.
    probe = start_server()
    u0 = new_user(probe)
    c0 = client_for(probe, u0)
    size = c0.put("/api/usertables/t?format=csv", content=csv_table(30_000)).json()["nbytes"]
    server = start_server(quota_bytes=3 * size + size // 2, user_version_retention=0.0)
    user = new_user(server)
    c = client_for(server, user)
    assert c.put("/api/usertables/t?format=csv", content=csv_table(30_000)).status_code == 201
    for _ in range(2):
        r = c.put("/api/usertables/t?format=csv&mode=replace", content=csv_table(30_000))
        assert r.status_code == 201, r.text
    usage = c.get("/api/quota").json()
    assert usage["tables"] == 1 and usage["bytes_used"] == 3 * size
    assert usage["bytes_retained"] == 2 * size and usage["retained_until"]
    # A fourth copy would not fit while the replaced ones are on disk.
    r = c.put("/api/usertables/t?format=csv&mode=replace", content=csv_table(30_000))
    assert r.status_code == 413
    error = r.json()["error"]
    assert "by replaced or dropped versions kept until" in error
    r = sync(c, "SELECT * FROM mydb.t", DEST="mydb.t", DEST_MODE="replace")
    assert r.status_code == 400 and "quota exceeded" in r.text
    assert _disk(server, user) <= 3 * size
    # Dropping does not free the disk at once either (queries may still read it).
    assert c.delete("/api/usertables/t").status_code == 204
    assert c.get("/api/quota").json()["bytes_used"] == 3 * size
    # Once maintenance deleted the retired files, the space is back.
    server.platform.catalogue.retention = type(server.platform.catalogue.retention)(grace=0.0)
    assert server.platform.maintain() == 3
    assert c.get("/api/quota").json()["bytes_used"] == 0
    assert c.put("/api/usertables/t?format=csv", content=csv_table(30_000)).status_code == 201


def test_concurrent_writes_cannot_add_up_past_the_quota(start_server):
    probe = start_server()
    u0 = new_user(probe)
    size = client_for(probe, u0).put("/api/usertables/t?format=csv",
                                     content=csv_table(60_000)).json()["nbytes"]
    server = start_server(quota_bytes=int(size * 1.5))
    user = new_user(server)
    results: list[int] = []

    def write(name: str) -> None:
        with client_for(server, user) as c:
            results.append(c.put(f"/api/usertables/{name}?format=csv",
                                 content=csv_table(60_000)).status_code)

    threads = [threading.Thread(target=write, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201, 413]
    c = client_for(server, user)
    assert c.get("/api/quota").json()["bytes_used"] <= int(size * 1.5)
    n = table_of(sync(c, "SELECT COUNT(*) AS n FROM mydb." + (
        "a" if {t["name"] for t in c.get("/api/usertables").json()} == {"a"} else "b")))["n"][0]
    assert int(n) == 60_000


def test_finishing_an_async_result_table_never_fails_the_job(start_server):
    """A job's result table is rewritten once the result document is written (sorted by
    HEALPix index, cut to MAXREC); while the first version counts against the quota the
    rewrite may not fit: the job still completes, with its result document."""
    from lxml import etree

    ns = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
    probe = start_server()
    size = client_for(probe, new_user(probe)).put(
        "/api/usertables/src?format=csv", content=csv_table(30_000)).json()["nbytes"]
    server = start_server(quota_bytes=int(size * 2.5))
    user = new_user(server)
    c = client_for(server, user)
    assert c.put("/api/usertables/src?format=csv", content=csv_table(30_000)).status_code == 201
    for maxrec, rows in (("100000", 30_000), ("10", 10)):
        r = c.post("/tap/async", data={"LANG": "ADQL", "PHASE": "RUN", "MAXREC": maxrec,
                                       "QUERY": "SELECT * FROM mydb.src",
                                       "RESPONSEFORMAT": "csv"})
        assert r.status_code == 303, r.text
        job = r.headers["location"]
        deadline = time.time() + 120
        phase = None
        while time.time() < deadline:
            doc = etree.fromstring(c.get(job, params={"WAIT": "10"}).content)
            phase = doc.findtext("uws:phase", namespaces=ns)
            if phase in ("COMPLETED", "ERROR"):
                break
        assert phase == "COMPLETED", c.get(job + "/error").text
        result = c.get(job + "/results/result")
        assert result.status_code == 200
        assert result.text.count("\n") == rows + 1
        job_id = job.rsplit("/", 1)[1]
        tables = {t["name"]: t for t in c.get("/api/usertables").json()}
        if f"job_{job_id}" in tables:  # kept only in its final form
            assert tables[f"job_{job_id}"]["nrows"] == rows
        assert c.get("/api/quota").json()["bytes_used"] <= int(size * 2.5)
        # Make room for the next job.
        c.delete(f"/api/usertables/job_{job_id}")
        server.platform.catalogue.retention = type(server.platform.catalogue.retention)(
            grace=0.0)
        server.platform.maintain()
