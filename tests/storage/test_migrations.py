"""The metadata migration mechanism: Python migrations, atomic steps, a store newer than
the code refused, a backup before every upgrade, and commands that do not upgrade."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from storage_helpers import taphouse

from taphouse import metadata
from taphouse.metadata import (
    MetadataDB,
    StoreNeedsUpgrade,
    StoreTooNew,
    schema_state,
)


@pytest.fixture
def component(monkeypatch):
    """Register migrations of a test component for one test: ``component(list)``."""

    def register(migrations):
        monkeypatch.setitem(metadata._MIGRATIONS, "storage_test", list(migrations))

    return register


def _version(path, component="storage_test") -> int:
    con = sqlite3.connect(path)
    try:
        row = con.execute("SELECT version FROM schema_version WHERE component=?",
                          (component,)).fetchone()
        return row[0] if row else 0
    finally:
        con.close()


def test_python_and_sql_migrations(tmp_path, component):
    def split_names(con):
        for rid, full in con.execute("SELECT id, full FROM people").fetchall():
            first, _, last = full.partition(" ")
            con.execute("UPDATE people SET first=?, last=? WHERE id=?", (first, last, rid))

    component(["CREATE TABLE people (id INTEGER PRIMARY KEY, full TEXT);"
               " INSERT INTO people(full) VALUES ('Ada Lovelace'), ('Alan Turing')"])
    db = MetadataDB(tmp_path / "meta.sqlite")
    db.close()
    component(["CREATE TABLE people (id INTEGER PRIMARY KEY, full TEXT);"
               " INSERT INTO people(full) VALUES ('Ada Lovelace'), ('Alan Turing')",
               "ALTER TABLE people ADD COLUMN first TEXT; ALTER TABLE people ADD COLUMN last TEXT",
               split_names])
    db = MetadataDB(tmp_path / "meta.sqlite")
    rows = [tuple(r) for r in db.query("SELECT first, last FROM people ORDER BY id")]
    assert rows == [("Ada", "Lovelace"), ("Alan", "Turing")]
    assert db.schema_versions()["storage_test"] == 3
    db.close()


def test_a_failing_migration_changes_nothing(tmp_path, component):
    component(["CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)"])
    MetadataDB(tmp_path / "meta.sqlite").close()

    def half_done(con):
        con.execute("UPDATE t SET x = 2")
        raise RuntimeError("bad data in row 7")

    component(["CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)", half_done])
    with pytest.raises(RuntimeError, match="row 7"):
        MetadataDB(tmp_path / "meta.sqlite")
    con = sqlite3.connect(tmp_path / "meta.sqlite")
    assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
    con.close()
    assert _version(tmp_path / "meta.sqlite") == 1


def test_a_store_newer_than_the_code_is_refused(tmp_path):
    path = tmp_path / "meta.sqlite"
    MetadataDB(path).close()
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE schema_version SET version=version+5 WHERE component='catalogue'")
    con.close()
    with pytest.raises(StoreTooNew, match=r"newer taphouse \(schema catalogue \d+ \(this"
                                          r" version knows \d+\)\)"):
        MetadataDB(path)
    # A component this code has never heard of is newer too.
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE schema_version SET version=version-5 WHERE component='catalogue'")
        con.execute("INSERT INTO schema_version VALUES ('telescope_control', 1)")
    con.close()
    with pytest.raises(StoreTooNew, match="telescope_control 1 .this version knows no such"):
        MetadataDB(path)
    # ... for every command, with the message and exit status 2, never a traceback.
    proc = taphouse(tmp_path, "databases", check=False)
    assert proc.returncode == 2 and "written by a newer taphouse" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = taphouse(tmp_path, "migrate", check=False)
    assert proc.returncode == 2 and "written by a newer taphouse" in proc.stderr


def test_backup_before_upgrading_and_commands_that_do_not_upgrade(tmp_path, component):
    path = tmp_path / "meta.sqlite"
    component(["CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)"])
    MetadataDB(path).close()
    component(["CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)",
               "INSERT INTO t VALUES (2)"])
    assert schema_state(path).pending == {"storage_test": (1, 2)}
    # A command that only reads must not upgrade a store (a server of the previous
    # release may be running on it).
    with pytest.raises(StoreNeedsUpgrade, match="run 'taphouse migrate'"):
        MetadataDB(path, upgrade=False)
    assert _version(path) == 1 and not (tmp_path / "backups").exists()
    db = MetadataDB(path)
    assert db.query_one("SELECT COUNT(*) FROM t")[0] == 2
    db.close()
    copies = list((tmp_path / "backups").glob("meta-*-before-upgrade-*.sqlite"))
    assert len(copies) == 1 and "storage_test1" in copies[0].name
    assert copies[0].stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "backups").stat().st_mode & 0o777 == 0o700
    old = sqlite3.connect(copies[0])
    assert old.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1
    assert old.execute("SELECT version FROM schema_version WHERE component='storage_test'"
                       ).fetchone()[0] == 1
    old.close()
    # A new store is created without a backup, even by a command that does not upgrade.
    fresh = tmp_path / "new" / "meta.sqlite"
    MetadataDB(fresh, upgrade=False).close()
    assert not (fresh.parent / "backups").exists()
    assert fresh.stat().st_mode & 0o777 == 0o600


def test_cli_refuses_to_upgrade_except_migrate_and_serve(tmp_path):
    data = tmp_path / "data"
    taphouse(data, "user", "add", "ada", "--password-stdin", stdin="a-long-password\n")
    con = sqlite3.connect(data / "meta.sqlite")
    with con:  # as if the store were from before the latest catalogue migration
        con.execute("UPDATE schema_version SET version=version-1 WHERE component='catalogue'")
        con.execute("ALTER TABLE databases DROP COLUMN backend")  # what migration 3 adds
        con.execute("ALTER TABLE databases DROP COLUMN backend_ref")
    con.close()
    proc = taphouse(data, "tables", "x", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "needs upgrading (catalogue" in proc.stderr and "taphouse migrate" in proc.stderr
    assert not (data / "backups").exists()
    out = taphouse(data, "migrate").stdout
    assert "upgraded (catalogue" in out
    assert len(list((data / "backups").iterdir())) == 1
    assert "up to date" in taphouse(data, "migrate").stdout
    assert taphouse(data, "user", "list").returncode == 0


def test_concurrent_opening_of_a_new_store(tmp_path):
    """Openers racing on a new store: one creates it, the others wait and find it
    current (none takes it for an old store half-way through its migrations, backs it
    up and migrates it again: that failed 10 of 40 rounds of 6 threads)."""
    for round_ in range(10):
        store = tmp_path / f"s{round_}"
        errors: list[BaseException] = []

        def open_it(store: Path = store, errors: list = errors) -> None:
            try:
                MetadataDB(store / "meta.sqlite").close()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert not (store / "backups").exists(), "a new store was backed up as an old one"
        assert schema_state(store / "meta.sqlite").pending == {}
