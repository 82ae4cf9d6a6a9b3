"""Metadata tables of the catalogue (and of user schemas, which are databases too)."""

from __future__ import annotations

import sqlite3
from pathlib import Path, PurePath

from taphouse.metadata import register_migrations


def _relative_version_paths(con: sqlite3.Connection) -> None:
    """Version paths become relative to the data directory, and each version records
    its database.

    Until now a path was stored as the writer saw it: absolute, or relative to the
    working directory of the command that wrote it, so a moved or copied data
    directory, or another working directory, lost its tables. A path inside the data
    directory is made relative to it; any other keeps its last three parts
    (``<database>/<table>/<file>``, the layout of ``tables/``), which name the file
    wherever the directory went. ``database_id`` lets retired versions of dropped
    tables count against their owner until their files are deleted.
    """
    con.execute("ALTER TABLE table_versions ADD COLUMN database_id INTEGER")
    con.execute("UPDATE table_versions SET database_id=(SELECT t.database_id FROM tables t"
                " WHERE t.id=table_versions.table_id)")
    main = next(r for r in con.execute("PRAGMA database_list").fetchall() if r[1] == "main")
    data_dir = Path(main[2]).resolve().parent
    for version_id, stored in con.execute("SELECT id, path FROM table_versions").fetchall():
        con.execute("UPDATE table_versions SET path=? WHERE id=?",
                    (_relative(stored, data_dir), version_id))
    con.execute("CREATE INDEX table_versions_database ON table_versions(database_id)")


def _relative(stored: str, data_dir: Path) -> str:
    path = Path(stored)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(data_dir).as_posix()
        except (ValueError, OSError):
            pass
    parts = PurePath(stored).parts
    if len(parts) >= 3:
        return "/".join(("tables", *parts[-3:]))
    return stored

register_migrations("catalogue", [
    """
    CREATE TABLE databases (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT 'catalogue',
        public INTEGER NOT NULL DEFAULT 1,
        owner_id INTEGER,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
    );
    CREATE TABLE tables (
        id INTEGER PRIMARY KEY,
        database_id INTEGER NOT NULL REFERENCES databases(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        current_version_id INTEGER,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        UNIQUE (database_id, name)
    );
    CREATE TABLE table_versions (
        id INTEGER PRIMARY KEY,
        table_id INTEGER REFERENCES tables(id) ON DELETE SET NULL,
        path TEXT NOT NULL,
        nrows INTEGER NOT NULL,
        nbytes INTEGER NOT NULL,
        meta TEXT NOT NULL,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        retired TEXT
    );
    CREATE INDEX table_versions_retired ON table_versions(retired);
    CREATE TABLE catalogue_generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
    INSERT INTO catalogue_generation VALUES (1, 0)
    """,
    _relative_version_paths,
    # Which backend serves a database (engine.routing): "duckdb" (the embedded default,
    # version files under tables/), "postgres" (tables that live in a PostgreSQL
    # database), ...; backend_ref names its connection config (sealed credentials),
    # never the credentials themselves.
    """
    ALTER TABLE databases ADD COLUMN backend TEXT NOT NULL DEFAULT 'duckdb';
    ALTER TABLE databases ADD COLUMN backend_ref TEXT
    """,
    # catalogue_generation counted catalogue changes for a cache that is gone (wave 2):
    # nothing reads or writes it any more.
    "DROP TABLE IF EXISTS catalogue_generation",
])
