"""The catalogue store: databases, tables and their immutable version files.

Every table version is one DuckDB file (table ``data``) under ``tables_dir``, written
once and never modified. Publishing a version is one metadata transaction, so readers
see either the old table or the new one, never half of either. Retired versions are
deleted by :meth:`CatalogueStore.collect_garbage` once no reader can still use them.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

from taphouse.catalogue.model import (
    CatalogueError,
    ColumnMeta,
    DatabaseMeta,
    TableMeta,
    check_database_name,
    check_name,
)
from taphouse.metadata import MetadataDB


class CatalogueStore:
    """Databases and table versions, recorded in the metadata database."""

    def __init__(self, meta: MetadataDB, tables_dir: Path) -> None:
        self.meta = meta
        self.tables_dir = Path(tables_dir)
        self.tables_dir.mkdir(parents=True, exist_ok=True)

    # --- databases -----------------------------------------------------------------
    def create_database(self, name: str, description: str = "", *, kind: str = "catalogue",
                        public: bool = True, owner_id: int | None = None,
                        exist_ok: bool = True) -> DatabaseMeta:
        """Create a database (ADQL schema); with ``exist_ok`` update its description."""
        lname = check_database_name(name, allow_reserved=(kind == "user"))
        with self.meta.transaction() as con:
            row = con.execute("SELECT * FROM databases WHERE name=?", (lname,)).fetchone()
            if row is not None:
                if not exist_ok:
                    raise CatalogueError(f"database {lname!r} already exists")
                if description:
                    con.execute("UPDATE databases SET description=? WHERE id=?",
                                (description, row["id"]))
            else:
                con.execute(
                    "INSERT INTO databases(name, description, kind, public, owner_id)"
                    " VALUES (?,?,?,?,?)", (lname, description, kind, int(public), owner_id))
            self._bump(con)
        db = self.database(lname)
        assert db is not None
        return db

    def database(self, name: str) -> DatabaseMeta | None:
        row = self.meta.query_one("SELECT * FROM databases WHERE name=?", (name.lower(),))
        return _database(row) if row else None

    def databases(self, kind: str | None = None) -> list[DatabaseMeta]:
        if kind is None:
            rows = self.meta.query("SELECT * FROM databases ORDER BY name")
        else:
            rows = self.meta.query("SELECT * FROM databases WHERE kind=? ORDER BY name", (kind,))
        return [_database(r) for r in rows]

    def set_public(self, name: str, public: bool) -> None:
        with self.meta.transaction() as con:
            con.execute("UPDATE databases SET public=? WHERE name=?", (int(public), name.lower()))
            self._bump(con)

    def rename_database(self, name: str, new_name: str, *, kind: str | None = None) -> None:
        """Give a database another name (and kind); its version files stay where they
        are (their paths are recorded per version)."""
        with self.meta.transaction() as con:
            if kind is None:
                con.execute("UPDATE databases SET name=? WHERE name=?",
                            (new_name.lower(), name.lower()))
            else:
                con.execute("UPDATE databases SET name=?, kind=? WHERE name=?",
                            (new_name.lower(), kind, name.lower()))
            self._bump(con)

    def drop_database(self, name: str) -> None:
        with self.meta.transaction() as con:
            con.execute(
                "UPDATE table_versions SET retired=strftime('%Y-%m-%dT%H:%M:%fZ','now')"
                " WHERE retired IS NULL AND table_id IN (SELECT t.id FROM tables t"
                " JOIN databases d ON d.id=t.database_id WHERE d.name=?)", (name.lower(),))
            con.execute("DELETE FROM databases WHERE name=?", (name.lower(),))
            self._bump(con)

    # --- tables --------------------------------------------------------------------
    def new_version_path(self, database: str, table: str) -> Path:
        """A fresh, unused path for a new version file of ``database.table``."""
        folder = self.tables_dir / database.lower() / table.lower()
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"v{int(time.time())}_{secrets.token_hex(6)}.duckdb"

    def publish(self, table: TableMeta, path: Path, *, replace: bool = True,
                description: str | None = None) -> TableMeta:
        """Make the finished file ``path`` the current version of ``table``.

        One transaction: the table row is created if needed and switched to the new
        version; the previous version is retired (its file is removed later).
        Raises :class:`CatalogueError` when the table exists and ``replace`` is false.
        """
        dbname = table.database.lower()
        tname = check_name(table.name, "table")
        path = Path(path)
        nbytes = path.stat().st_size if path.exists() else 0
        desc = table.description if description is None else description
        with self.meta.transaction() as con:
            db = con.execute("SELECT id FROM databases WHERE name=?", (dbname,)).fetchone()
            if db is None:
                raise CatalogueError(f"unknown database {dbname!r}")
            row = con.execute("SELECT id, current_version_id FROM tables"
                              " WHERE database_id=? AND name=?", (db["id"], tname)).fetchone()
            if row is not None and not replace and row["current_version_id"] is not None:
                raise CatalogueError(f"table {dbname}.{tname} already exists")
            if row is None:
                cur = con.execute("INSERT INTO tables(database_id, name, description)"
                                  " VALUES (?,?,?)", (db["id"], tname, desc))
                table_id = cur.lastrowid
            else:
                table_id = row["id"]
                con.execute("UPDATE tables SET description=? WHERE id=?", (desc, table_id))
                if row["current_version_id"] is not None:
                    con.execute("UPDATE table_versions SET retired="
                                "strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id=?",
                                (row["current_version_id"],))
            cur = con.execute(
                "INSERT INTO table_versions(table_id, path, nrows, nbytes, meta)"
                " VALUES (?,?,?,?,?)",
                (table_id, str(path), table.nrows, nbytes, json.dumps(table.meta_dict())))
            con.execute("UPDATE tables SET current_version_id=? WHERE id=?",
                        (cur.lastrowid, table_id))
            self._bump(con)
        result = self.table(dbname, tname)
        assert result is not None
        return result

    def table(self, database: str, name: str) -> TableMeta | None:
        row = self.meta.query_one(_TABLE_SQL + " WHERE d.name=? AND t.name=?",
                                  (database.lower(), name.lower()))
        return _table(row) if row else None

    def tables(self, database: str | None = None, *,
               databases: Iterable[str] | None = None) -> list[TableMeta]:
        """Current tables of one database, of several (``databases``), or of all."""
        if database is not None:
            rows = self.meta.query(_TABLE_SQL + " WHERE d.name=? ORDER BY t.name",
                                   (database.lower(),))
        elif databases is not None:
            names = sorted({d.lower() for d in databases})
            if not names:
                return []
            marks = ",".join("?" * len(names))
            rows = self.meta.query(_TABLE_SQL + f" WHERE d.name IN ({marks})"
                                   " ORDER BY d.name, t.name", names)
        else:
            rows = self.meta.query(_TABLE_SQL + " ORDER BY d.name, t.name")
        return [_table(r) for r in rows]

    def rename_table(self, database: str, old: str, new: str) -> TableMeta:
        new = check_name(new, "table")
        with self.meta.transaction() as con:
            db = con.execute("SELECT id FROM databases WHERE name=?",
                             (database.lower(),)).fetchone()
            if db is None:
                raise CatalogueError(f"unknown database {database!r}")
            if con.execute("SELECT 1 FROM tables WHERE database_id=? AND name=?",
                           (db["id"], new)).fetchone():
                raise CatalogueError(f"table {database}.{new} already exists")
            cur = con.execute("UPDATE tables SET name=? WHERE database_id=? AND name=?",
                              (new, db["id"], old.lower()))
            if cur.rowcount == 0:
                raise CatalogueError(f"unknown table {database}.{old}")
            self._bump(con)
        result = self.table(database, new)
        assert result is not None
        return result

    def drop_table(self, database: str, name: str) -> bool:
        """Remove a table; its files are removed by garbage collection. False if absent."""
        with self.meta.transaction() as con:
            row = con.execute(
                "SELECT t.id FROM tables t JOIN databases d ON d.id=t.database_id"
                " WHERE d.name=? AND t.name=?", (database.lower(), name.lower())).fetchone()
            if row is None:
                return False
            con.execute("UPDATE table_versions SET retired="
                        "strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE table_id=? AND retired IS NULL",
                        (row["id"],))
            con.execute("DELETE FROM tables WHERE id=?", (row["id"],))
            self._bump(con)
        return True

    # --- change tracking and clean-up -------------------------------------------------
    def generation(self) -> int:
        """A number that grows with every change; caches compare it to stay fresh."""
        row = self.meta.query_one("SELECT value FROM catalogue_generation WHERE id=1")
        return int(row[0]) if row else 0

    def _bump(self, con) -> None:
        con.execute("UPDATE catalogue_generation SET value=value+1 WHERE id=1")

    def retired_version_ids(self, older_than: float = 0.0) -> list[int]:
        """Ids of versions replaced or dropped more than ``older_than`` seconds ago
        (their files await removal)."""
        return [r[0] for r in self.meta.query(
            "SELECT id FROM table_versions WHERE retired IS NOT NULL"
            " AND julianday(retired) <= julianday('now') - ? / 86400.0", (older_than,))]

    def collect_garbage(self, older_than: float = 3600.0) -> int:
        """Delete files of versions retired more than ``older_than`` seconds ago, and
        orphan files that no version names (left by an ingest that died). Returns the
        number of files removed."""
        removed = 0
        rows = self.meta.query(
            "SELECT id, path FROM table_versions WHERE retired IS NOT NULL"
            " AND julianday(retired) < julianday('now') - ? / 86400.0", (older_than,))
        for row in rows:
            remove_version_file(Path(row["path"]))
            self.meta.execute("DELETE FROM table_versions WHERE id=?", (row["id"],))
            removed += 1
        known = {r["path"] for r in self.meta.query("SELECT path FROM table_versions")}
        now = time.time()
        for path in self.tables_dir.rglob("*.duckdb*"):
            base = str(path).removesuffix(".wal").removesuffix(".tmp")
            if base not in known and now - path.stat().st_mtime > older_than:
                remove_version_file(path)
                removed += 1
        return removed


_TABLE_SQL = (
    "SELECT d.name AS database, d.kind AS kind, t.name AS name, t.description AS description,"
    " t.id AS table_id, v.id AS version_id, v.path AS path, v.nrows AS nrows,"
    " v.nbytes AS nbytes, v.meta AS meta, v.created AS created"
    " FROM tables t JOIN databases d ON d.id=t.database_id"
    " JOIN table_versions v ON v.id=t.current_version_id"
)


def remove_version_file(path: Path) -> None:
    """Delete a version file and its write-ahead log, if they exist."""
    for p in (Path(path), Path(str(path) + ".wal")):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def _database(row) -> DatabaseMeta:
    return DatabaseMeta(name=row["name"], description=row["description"], kind=row["kind"],
                        public=bool(row["public"]), database_id=row["id"],
                        owner_id=row["owner_id"])


@functools.lru_cache(maxsize=4096)
def _version_meta(version_id: int, text: str) -> dict:
    # A version's metadata never changes: parse its JSON once.
    meta = json.loads(text)
    meta["columns"] = tuple(ColumnMeta.from_dict(c) for c in meta["columns"])
    return meta


def _table(row) -> TableMeta:
    meta = _version_meta(row["version_id"], row["meta"])
    return TableMeta(
        database=row["database"], name=row["name"], description=row["description"],
        kind=row["kind"],
        columns=list(meta["columns"]),  # shared, never mutated: metadata is immutable
        ra_column=meta.get("ra_column"), dec_column=meta.get("dec_column"),
        healpix_column=meta.get("healpix_column"),
        healpix_order=meta.get("healpix_order", 29), epoch=meta.get("epoch"),
        nrows=row["nrows"], nbytes=row["nbytes"], path=Path(row["path"]),
        table_id=row["table_id"], version_id=row["version_id"], created=row["created"],
        extra=dict(meta.get("extra") or {}),
    )
