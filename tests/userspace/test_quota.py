"""Quotas: a write that goes over is refused and leaves nothing behind."""

from __future__ import annotations

import threading

from userspace_helpers import client_for, csv_table, sync, table_of

from accounts import new_user


def _files(server, user: str) -> list[str]:
    folder = server.platform.settings.tables_dir / f"user_{user}"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_quota_refusal_leaves_nothing(start_server):
    server = start_server(quota_rows=100, quota_bytes=10**9)
    user = new_user(server)
    c = client_for(server, user)
    r = c.put("/api/usertables/base?format=csv", content=csv_table(60))
    assert r.status_code == 201, r.text
    assert r.json()["nrows"] == 60
    files_before = _files(server, user)
    quota = c.get("/api/quota").json()
    assert quota["rows_used"] == 60 and quota["rows_limit"] == 100 and quota["tables"] == 1
    # 60 more rows do not fit: refused through TAP (400) ...
    r = sync(c, "SELECT * FROM mydb.base", DEST="mydb.copy")
    assert r.status_code == 400
    assert "quota exceeded: 60 of 100 used" in r.text
    # ... and through the API (413); the upload's bytes never became a table.
    r = c.put("/api/usertables/big?format=csv", content=csv_table(50))
    assert r.status_code == 413 and r.json()["error"].startswith("quota exceeded: 60 of 100")
    names = {t["name"] for t in c.get("/api/usertables").json()}
    assert names == {"base"}
    assert _files(server, user) == files_before
    assert c.get("/api/quota").json()["rows_used"] == 60
    # Replacing the table frees its own rows: 90 rows fit in place of 60.
    r = c.put("/api/usertables/base?format=csv&mode=replace", content=csv_table(90))
    assert r.status_code == 201, r.text
    assert c.get("/api/quota").json()["rows_used"] == 90
    # Byte quota: checked on the finished file before publishing.
    small = start_server(quota_rows=10**6, quota_bytes=1000)
    u2 = new_user(small)
    r = client_for(small, u2).put("/api/usertables/t?format=csv", content=csv_table(10))
    assert r.status_code == 413 and "(bytes)" in r.json()["error"]
    assert _files(small, u2) == []


def test_concurrent_writes_to_one_table(start_server):
    server = start_server()
    user = new_user(server)
    c = client_for(server, user)
    assert c.put("/api/usertables/src?format=csv", content=csv_table(3000)).status_code == 201
    # A self-join makes each write take a moment; both try to create the same table.
    q = "SELECT a.id AS id, b.id AS id2 FROM mydb.src AS a JOIN mydb.src AS b ON a.mag = b.mag"
    results: list = []

    def write() -> None:
        with client_for(server, user) as cc:
            results.append(sync(cc, q, DEST="mydb.target", MAXREC="1"))

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert "being written" in loser.text or "already exists" in loser.text
    n = table_of(sync(c, "SELECT COUNT(*) AS n FROM mydb.target"))["n"][0]
    assert int(n) == 3000 * 150  # every mag value has 150 rows: 20 * 150 * 150
