"""Data directories in odd places: a path with quotes and spaces, a symlink to the real
directory, tmp/ on another file system (versions are copied in, not renamed), and a
backup whose destination fills up."""

from __future__ import annotations

import os

from storage_helpers import add_user, client, count, csv_rows, sync, taphouse

from servers import start_live


def _round_trip(data, work) -> None:
    """Ingest, serve, DEST, replace, maintenance: everything answers."""
    (work / "t.csv").write_text(csv_rows(50))
    taphouse(data, "ingest", str(work / "t.csv"), "-d", "survey", "-t", "t", "-q")
    taphouse(data, "ingest", str(work / "t.csv"), "-d", "survey", "-t", "t", "-q")
    add_user(data, "ada")
    server = start_live(data, maintenance_grace=0.0, version_retention=0.0)
    try:
        with client(server.url, "ada") as ada:
            r = sync(ada, "SELECT TOP 7 * FROM survey.t", DEST="mydb.seven")
            assert r.status_code == 200, r.text
            r = sync(ada, "SELECT TOP 8 * FROM survey.t", DEST="mydb.seven",
                     DEST_MODE="replace")
            assert r.status_code == 200, r.text
            assert ada.put("/api/usertables/up?format=csv",
                           content=csv_rows(5).encode()).status_code == 201
            assert server.platform.maintain() == 2
            assert count(ada, "survey.t") == 50
            assert count(ada, "mydb.seven") == 8
            assert count(ada, "mydb.up") == 5
            r = ada.get("/api/usertables/up/data?format=fits")
            assert r.status_code == 200 and r.content.startswith(b"SIMPLE")
    finally:
        server.stop()
    assert list((data / "tmp").rglob("w-*")) == []


def test_quotes_and_spaces_in_the_path(tmp_path):
    data = tmp_path / "it's a \"data\" dir; DROP TABLE x" / "data"
    _round_trip(data, tmp_path)


def test_data_dir_behind_a_symlink(tmp_path):
    real = tmp_path / "disks" / "big" / "taphouse"
    real.parent.mkdir(parents=True)
    link = tmp_path / "srv-taphouse"
    link.symlink_to(real, target_is_directory=False)
    _round_trip(link, tmp_path)
    assert (real / "meta.sqlite").exists()


def test_tmp_on_another_file_system(tmp_path, small_disk):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    small_disk(64 * 1024 * 1024, at=data / "tmp")
    assert os.stat(data / "tmp").st_dev != os.stat(data).st_dev
    _round_trip(data, tmp_path)
    assert not list((data / "tables").rglob("*.tmp"))


def test_backup_to_a_full_disk_says_so_and_leaves_nothing(tmp_path, small_disk):
    data = tmp_path / "data"
    (tmp_path / "t.csv").write_text(csv_rows(20))
    for name in ("a", "b", "c"):
        taphouse(data, "ingest", str(tmp_path / "t.csv"), "-d", "survey", "-t", name, "-q")
    for size in (1024 * 1024, 64 * 1024):  # full while copying tables, or the metadata
        disk = small_disk(size)
        proc = taphouse(data, "backup", str(disk / "monday"), check=False)
        assert proc.returncode == 2, proc.stderr
        assert "the disk is full" in proc.stderr and "no backup was made" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert list(disk.iterdir()) == []


def test_a_database_folder_linked_elsewhere_is_refused_clearly(tmp_path):
    data = tmp_path / "data"
    (tmp_path / "t.csv").write_text(csv_rows(20))
    taphouse(data, "ingest", str(tmp_path / "t.csv"), "-d", "survey", "-t", "t", "-q")
    elsewhere = tmp_path / "bigdisk" / "gaia"
    elsewhere.mkdir(parents=True)
    (data / "tables" / "gaia").symlink_to(elsewhere, target_is_directory=True)
    proc = taphouse(data, "ingest", str(tmp_path / "t.csv"), "-d", "gaia", "-t", "t", "-q",
                    check=False)
    assert proc.returncode == 2 and "outside the tables directory" in proc.stderr
    assert "mount it there" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(elsewhere.rglob("*.duckdb"))
    assert "survey.t\t20 rows" in taphouse(data, "tables", "survey").stdout
