"""``taphouse backup``: a consistent online copy (SQLite backup API plus exactly the
version files it names) taken while the server serves and writes, and ``taphouse
restore``, which checks it and brings back a data directory that serves everything."""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
import time
from contextlib import closing

import httpx
import pytest
from storage_helpers import (
    PASSWORD,
    add_user,
    client,
    count,
    csv_rows,
    sync,
    tables_in,
    taphouse,
    version_files,
)

from servers import start_live

pytestmark = pytest.mark.slow


def _prepare(data, work) -> None:
    (work / "stars.csv").write_text(csv_rows(800))
    (work / "plans.csv").write_text("id,what\n1,first light\n2,second light\n")
    taphouse(data, "ingest", str(work / "stars.csv"), "-d", "survey", "-t", "stars", "-q")
    taphouse(data, "ingest", str(work / "stars.csv"), "-d", "survey", "-t", "stars", "-q")
    taphouse(data, "ingest", str(work / "plans.csv"), "-d", "secret", "-t", "plans", "-q")
    add_user(data, "ada", groups=("team",))
    taphouse(data, "db", "restrict", "secret", "--groups", "team")


def test_online_backup_and_restore(tmp_path):
    data = tmp_path / "data"
    _prepare(data, tmp_path)
    # An unreferenced file in tables/ is not part of the store: never copied.
    stray = data / "tables" / "survey" / "stars" / "v1_00000000000a.duckdb"
    stray.write_bytes(b"not a table")
    server = start_live(data, maintenance_grace=0.0, version_retention=0.0,
                        maintenance_interval=0.05)
    stop = threading.Event()
    writes: list[int] = []
    try:
        with client(server.url, "ada") as ada:
            assert sync(ada, "SELECT TOP 9 * FROM survey.stars", DEST="mydb.nine").status_code == 200
            r = ada.post("/tap/async", data={"LANG": "ADQL", "PHASE": "RUN", "QUERY":
                                             "SELECT TOP 4 id FROM survey.stars ORDER BY id"})
            job = r.headers["location"].rsplit("/", 1)[1]
            ada.get(f"/tap/async/{job}", params={"WAIT": "30"})
            assert ada.get(f"/tap/async/{job}/phase").text == "COMPLETED"

        def keep_writing() -> None:
            # Replaces (and deletes, with no grace) versions while the backup runs.
            with client(server.url, "ada") as c:
                n = 1
                while not stop.is_set():
                    r = sync(c, f"SELECT TOP {n} * FROM survey.stars", DEST="mydb.busy",
                             DEST_MODE="replace")
                    writes.append(r.status_code)
                    n = n % 50 + 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        time.sleep(0.5)
        backup = tmp_path / "backups" / "monday"
        out = taphouse(data, "backup", str(backup)).stdout
        assert "tables" in out and "jobs" in out
        stop.set()
        writer.join()
        assert writes and set(writes) == {200}
    finally:
        stop.set()
        server.stop()
    manifest = json.loads((backup / "BACKUP.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert "meta.sqlite" in paths and any(p.startswith(f"jobs/{job}/") for p in paths)
    assert not any("v1_00000000000a" in p for p in paths)
    # Exactly the version files the backed-up metadata names, each once.
    backed_up = tables_in(backup)
    table_files = {p for p in paths if p.startswith("tables/")}
    assert len(table_files) >= len(backed_up)
    assert {p.relative_to(backup).as_posix() for p in (backup / "tables").rglob("*.duckdb")} \
        == table_files
    for path in [backup, *backup.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    # Restore to a new place; the original is gone.
    import shutil

    shutil.rmtree(data)
    target = tmp_path / "restored"
    out = taphouse(tmp_path, "restore", str(backup), str(target)).stdout
    assert "restored and checked" in out
    assert tables_in(target) == backed_up
    served = start_live(target, maintenance_grace=0.0, version_retention=0.0)
    try:
        assert served.platform.maintain() >= 0
        with httpx.Client(base_url=served.url, auth=("ada", PASSWORD), timeout=60) as ada:
            for name, nrows in backed_up.items():
                assert count(ada, name.replace("user_ada.", "mydb.")) == nrows, name
            assert count(ada, "secret.plans") == 2
            r = ada.get(f"/tap/async/{job}/results/result")
            assert r.status_code == 200 and r.content.count(b"<TR>") + r.content.count(
                b"STREAM") >= 1
            assert ada.post("/auth/token", data={"username": "ada",
                                                 "password": PASSWORD}).status_code == 200
        with httpx.Client(base_url=served.url, timeout=60) as anon:
            assert sync(anon, "SELECT * FROM secret.plans").status_code == 400
    finally:
        served.stop()


def test_backup_and_restore_refusals(tmp_path):
    data = tmp_path / "data"
    (tmp_path / "t.csv").write_text(csv_rows(20))
    taphouse(data, "ingest", str(tmp_path / "t.csv"), "-d", "survey", "-t", "t", "-q")
    backup = tmp_path / "b1"
    taphouse(data, "backup", str(backup), "--without-jobs")
    # DEST exists: refused, untouched.
    proc = taphouse(data, "backup", str(backup), check=False)
    assert proc.returncode == 2 and "exists" in proc.stderr
    # A damaged backup is refused, naming the file; nothing is restored.
    table_file = next((backup / "tables").rglob("*.duckdb"))
    damaged = bytearray(table_file.read_bytes())
    damaged[5000] ^= 0xFF
    table_file.write_bytes(bytes(damaged))
    proc = taphouse(tmp_path, "restore", str(backup), str(tmp_path / "r1"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert table_file.relative_to(backup).as_posix() in proc.stderr
    assert "damaged" in proc.stderr
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r1.partial").exists()
    # Not a backup at all.
    proc = taphouse(tmp_path, "restore", str(data), str(tmp_path / "r2"), check=False)
    assert proc.returncode == 2 and "not a taphouse backup" in proc.stderr
    # A non-empty target.
    taphouse(data, "backup", str(tmp_path / "b2"))
    proc = taphouse(tmp_path, "restore", str(tmp_path / "b2"), str(data), check=False)
    assert proc.returncode == 2 and "not empty" in proc.stderr
    # A data directory whose current version file is missing: no backup that would
    # not restore.
    next((data / "tables").rglob("*.duckdb")).unlink()
    proc = taphouse(data, "backup", str(tmp_path / "b3"), check=False)
    assert proc.returncode == 2 and "missing" in proc.stderr
    assert not (tmp_path / "b3").exists() and not (tmp_path / "b3.partial").exists()


def test_backup_leaves_out_a_retained_version_whose_file_is_gone(tmp_path):
    data = tmp_path / "data"
    (tmp_path / "t.csv").write_text(csv_rows(20))
    (tmp_path / "u.csv").write_text(csv_rows(30, seed=1))
    taphouse(data, "ingest", str(tmp_path / "t.csv"), "-d", "survey", "-t", "t", "-q")
    taphouse(data, "ingest", str(tmp_path / "u.csv"), "-d", "survey", "-t", "t", "-q")
    with closing(sqlite3.connect(data / "meta.sqlite")) as con:
        retired = con.execute("SELECT id, path FROM table_versions"
                              " WHERE retired IS NOT NULL").fetchall()
    assert len(retired) == 1
    old_id, old_path = retired[0]
    (data / old_path).unlink()  # deleted early (by hand, a crash...)
    out = taphouse(data, "backup", str(tmp_path / "b")).stdout
    assert "1 retained version(s) left out" in out, out
    with closing(sqlite3.connect(tmp_path / "b" / "meta.sqlite")) as con:
        kept = {r[0] for r in con.execute("SELECT id FROM table_versions")}
    assert old_id not in kept and len(kept) == 1
    # The backup checks out and serves the current version.
    taphouse(tmp_path, "restore", str(tmp_path / "b"), str(tmp_path / "r"))
    assert tables_in(tmp_path / "r") == {"survey.t": 30}
    assert version_files(tmp_path / "r") == version_files(data)
