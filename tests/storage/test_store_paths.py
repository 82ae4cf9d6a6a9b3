"""Table files are found, and never deleted while referenced, wherever the data directory
is and whatever the working directory: version paths are relative to the data directory
and the garbage collector compares resolved paths."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import httpx
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


def _ingest_relative(work: Path) -> None:
    """survey.stars ingested twice (one replaced version) and survey.galaxies, with the
    relative --data-dir ``data`` from ``work``."""
    (work / "stars.csv").write_text(csv_rows(300))
    (work / "more.csv").write_text(csv_rows(450, seed=3))
    taphouse("data", "ingest", "stars.csv", "-d", "survey", "-t", "stars", "-q", cwd=work)
    taphouse("data", "ingest", "more.csv", "-d", "survey", "-t", "stars", "-q", cwd=work)
    taphouse("data", "ingest", "stars.csv", "-d", "survey", "-t", "galaxies", "-q", cwd=work)


def test_relative_data_dir_then_maintenance_with_no_grace(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    _ingest_relative(work)
    before = version_files(work / "data")
    assert len(before) == 3
    # The server runs from another working directory, with the absolute path.
    server = start_live(work / "data", maintenance_grace=0.0, version_retention=0.0)
    try:
        removed = server.platform.maintain()
        assert removed == 1  # the replaced version of survey.stars, and nothing else
        after = version_files(work / "data")
        assert len(after) == 2 and after < before
        with httpx.Client(base_url=server.url, timeout=60) as c:
            assert count(c, "survey.stars") == 450
            assert count(c, "survey.galaxies") == 300
        assert server.platform.maintain() == 0
    finally:
        server.stop()
    # And the CLI from a third working directory, through a relative path again.
    other = tmp_path / "elsewhere" / "deep"
    other.mkdir(parents=True)
    out = taphouse(os.path.relpath(work / "data", other), "tables", "survey", cwd=other).stdout
    assert "survey.stars\t450 rows" in out and "survey.galaxies\t300 rows" in out


def test_copied_data_dir_serves_every_table_after_maintenance(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    _ingest_relative(work)
    original = work / "data"
    add_user(original, "ada")
    server = start_live(original)
    try:
        with client(server.url, "ada") as c:
            assert c.put("/api/usertables/mine?format=csv",
                         content=csv_rows(40).encode()).status_code == 201
            r = sync(c, "SELECT TOP 7 * FROM survey.stars", DEST="mydb.seven")
            assert r.status_code == 200, r.text
    finally:
        server.stop()
    expected = tables_in(original)
    assert set(expected) == {"survey.stars", "survey.galaxies", "user_ada.mine",
                             "user_ada.seven"}
    # cp -a to another place; the original goes away (a restore on a new machine).
    copy = tmp_path / "restored" / "data"
    copy.parent.mkdir()
    assert os.system(f"cp -a '{original}' '{copy}'") == 0
    shutil.rmtree(original)
    served = start_live(copy, maintenance_grace=0.0, version_retention=0.0)
    try:
        assert served.platform.maintain() >= 1  # the replaced survey.stars version
        assert served.platform.maintain() == 0
        with client(served.url, "ada") as c:
            for name, nrows in expected.items():
                shown = name.replace("user_ada.", "mydb.")
                assert count(c, shown) == nrows, name
    finally:
        served.stop()
    assert tables_in(copy) == expected
    assert len(version_files(copy)) == len(expected)


def test_hostile_version_paths_are_never_read_or_deleted(tmp_path):
    """A metadata row naming a file outside the tables directory (absolute, ``..``, or
    through a symlink inside tables/) is refused by the engine, and the garbage
    collector never deletes through it."""
    victim = tmp_path / "precious.txt"
    victim.write_text("years of work")
    data = tmp_path / "data"
    (tmp_path / "t.csv").write_text(csv_rows(10))
    taphouse(data, "ingest", str(tmp_path / "t.csv"), "-d", "survey", "-t", "t", "-q")
    folder = data / "tables" / "survey" / "t"
    link = folder / "v1_0123456789ab.duckdb"
    link.symlink_to(victim)
    con = sqlite3.connect(data / "meta.sqlite")
    with con:
        row = con.execute("SELECT id, table_id, database_id, meta FROM table_versions").fetchone()
        for hostile in (str(victim), f"tables/../../{victim.name}",
                        "tables/survey/t/v1_0123456789ab.duckdb"):
            con.execute("INSERT INTO table_versions(table_id, database_id, path, nrows, nbytes,"
                        " meta, retired) VALUES (?,?,?,?,?,?,"
                        " '2000-01-01T00:00:00.000Z')", (row[1], row[2], hostile, 1, 1, row[3]))
    con.close()
    server = start_live(data, maintenance_grace=0.0)
    try:
        server.platform.maintain()
        assert victim.read_text() == "years of work"
        with httpx.Client(base_url=server.url, timeout=60) as c:
            assert count(c, "survey.t") == 10
        # A current version made hostile: refused with an error, not read.
        con = sqlite3.connect(data / "meta.sqlite")
        with con:
            new = con.execute("INSERT INTO table_versions(table_id, database_id, path, nrows,"
                              " nbytes, meta) VALUES (?,?,?,?,?,?)",
                              (row[1], row[2], str(victim), 1, 1, row[3])).lastrowid
            con.execute("UPDATE tables SET current_version_id=?", (new,))
        con.close()
        with httpx.Client(base_url=server.url, timeout=60) as c:
            r = sync(c, "SELECT COUNT(*) FROM survey.t")
            assert r.status_code != 200 and "years of work" not in r.text
        server.platform.maintain()
        assert victim.read_text() == "years of work"
    finally:
        server.stop()


def test_metadata_from_elsewhere_deletes_nothing(tmp_path):
    """A metadata database that names files the tables directory does not have (copied
    from another store, or restored from an older backup): the collector deletes no
    unreferenced file, however old."""
    data = tmp_path / "data"
    (tmp_path / "t.csv").write_text(csv_rows(10))
    taphouse(data, "ingest", str(tmp_path / "t.csv"), "-d", "survey", "-t", "t", "-q")
    taphouse(data, "ingest", str(tmp_path / "t.csv"), "-d", "survey", "-t", "u", "-q")
    files = sorted((data / "tables").rglob("*.duckdb"))
    # Forget survey.u's record and lose survey.t's file: the directory and the
    # metadata disagree.
    con = sqlite3.connect(data / "meta.sqlite")
    with con:
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("DELETE FROM tables WHERE name='u'")
        con.execute("DELETE FROM table_versions WHERE table_id IS NULL")
    con.close()
    lost = next(f for f in files if "/t/" in f.as_posix())
    lost.rename(tmp_path / "lost.duckdb")
    server = start_live(data, maintenance_grace=0.0)
    server.platform.catalogue.orphan_age = 0.0  # no writer runs here
    try:
        assert server.platform.maintain() == 0
        assert all(f.exists() for f in files if f != lost)
    finally:
        server.stop()
    # With the lost file back, the unreferenced one is an orphan and goes.
    (tmp_path / "lost.duckdb").rename(lost)
    server = start_live(data, maintenance_grace=0.0)
    try:
        assert server.platform.maintain() == 0  # moved in just now: maybe being published
        server.platform.catalogue.orphan_age = 0.0
        assert server.platform.maintain() == 1
        assert lost.exists() and not any(f.exists() for f in files if f != lost)
    finally:
        server.stop()


def test_login_user_space_after_move(tmp_path):
    """Accounts and user tables come along with a moved data directory."""
    data = tmp_path / "a"
    add_user(data, "bob")
    server = start_live(data)
    try:
        with client(server.url, "bob") as c:
            assert c.put("/api/usertables/t?format=csv",
                         content=csv_rows(5).encode()).status_code == 201
    finally:
        server.stop()
    moved = tmp_path / "b"
    data.rename(moved)
    server = start_live(moved, maintenance_grace=0.0)
    try:
        server.platform.maintain()
        with httpx.Client(base_url=server.url, auth=("bob", PASSWORD), timeout=60) as c:
            assert count(c, "mydb.t") == 5
            assert c.get("/api/usertables/t/data?format=fits").status_code == 200
    finally:
        server.stop()
