"""The catalogue store: databases, tables and their immutable version files.

Every table version is one DuckDB file (table ``data``) under ``tables_dir``, or a
directory in the HATS layout (HEALPix-partitioned Parquet, :mod:`taphouse.catalogue.hats`),
written once and never modified. Publishing a version is one metadata transaction, so readers
see either the old table or the new one, never half of either.

Version files are recorded by their path *relative to the data directory* (the parent
of ``tables_dir``, e.g. ``tables/gaia/dr3/v1700000000_0123456789ab.duckdb``) and
resolved when used, so a data directory keeps working after ``cp -a``, a restore to
another path, or from another working directory.

A replaced or dropped version is *retired*. Its file stays on disk for the grace
period (queries that resolved the table just before the switch may still start on it)
and, for replaced versions, for the retention period of its kind of database (so
:meth:`CatalogueStore.restore_version` can bring it back). :meth:`collect_garbage`
then deletes it, and only when no remaining version of any table names the same file
(paths compared after resolution).
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import functools
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from taphouse.catalogue.model import (
    CatalogueError,
    ColumnMeta,
    DatabaseMeta,
    TableMeta,
    TableSummary,
    check_database_name,
    check_name,
)
from taphouse.metadata import MetadataDB

log = logging.getLogger("taphouse.catalogue")

#: Names of version files (``new_version_path``); only such files are ever removed as
#: orphans, never anything else an operator may have put into the tables directory.
VERSION_FILE = re.compile(r"^v\d+_[0-9a-f]{12}\.(duckdb|hats|pg)(\.tmp)?(\.wal)?$")


@dataclass(frozen=True)
class Retention:
    """How long retired version files stay on disk (seconds).

    ``grace``: every retired version (queries already planned on it may still start);
    ``catalogue`` / ``user``: versions *replaced* in catalogue databases / user schemas
    (kept for :meth:`CatalogueStore.restore_version`). Dropped tables keep only the grace.
    """

    grace: float = 600.0
    catalogue: float = 0.0
    user: float = 0.0

    def keep(self, kind: str | None, dropped: bool) -> float:
        if dropped or kind is None:
            return self.grace
        return max(self.grace, self.user if kind == "user" else self.catalogue)


@dataclass(frozen=True)
class VersionInfo:
    """One stored version of a table: the current one or a retained earlier one."""

    version_id: int
    database: str
    table: str
    current: bool
    nrows: int
    nbytes: int
    created: str
    retired: str | None
    #: When the file becomes eligible for deletion (ISO time; None while current).
    expires: str | None
    path: Path
    exists: bool


@dataclass(frozen=True)
class RecordedVersion:
    """A version as the metadata records it, for copying its file (backups)."""

    version_id: int
    #: The file as stored: relative to the tables directory (:meth:`CatalogueStore.resolve`).
    stored: str
    #: Replaced or dropped (kept for its retention period); its file may be gone.
    retired: bool
    #: The current version of its table.
    current: bool


@dataclass(frozen=True)
class Holding:
    """What one database holds on disk: current versions plus retired ones not yet
    deleted (which still take space)."""

    tables: int
    rows: int
    nbytes: int
    retained_rows: int
    retained_bytes: int
    #: When the earliest retired version here may be deleted (ISO time), if any.
    next_release: str | None


class CatalogueStore:
    """Databases and table versions, recorded in the metadata database.

    Parameters
    ----------
    meta
        The metadata database.
    tables_dir
        Directory of the version files; its parent is the data directory that recorded
        paths are relative to.
    retention
        How long retired versions are kept (see :class:`Retention`); the default keeps
        them for the 10-minute grace period only.
    """

    def __init__(self, meta: MetadataDB, tables_dir: Path,
                 retention: Retention | None = None) -> None:
        self.meta = meta
        Path(tables_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.tables_dir = Path(tables_dir).resolve()
        self.root = self.tables_dir.parent
        self.retention = retention or Retention()
        #: Seconds an unreferenced version file must have been left alone before it is
        #: deleted as an orphan (and at least the grace period). A writer moves its file
        #: in just before its publishing transaction: an hour is far beyond that window.
        self.orphan_age = 3600.0

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
        db = self.database(lname)
        assert db is not None
        return db

    def database(self, name: str) -> DatabaseMeta | None:
        row = self.meta.query_one("SELECT * FROM databases WHERE name=?", (name.lower(),))
        return _database(row) if row else None

    def set_backend(self, name: str, backend: str, ref: str | None = None) -> DatabaseMeta:
        """Record which backend serves database ``name`` (``duckdb``, ``postgres``, ...)
        and the name of its connection config; see :mod:`taphouse.engine.routing`."""
        with self.meta.transaction() as con:
            cur = con.execute("UPDATE databases SET backend=?, backend_ref=? WHERE name=?",
                              (backend, ref, name.lower()))
            if cur.rowcount == 0:
                raise CatalogueError(f"unknown database {name.lower()!r}")
        db = self.database(name)
        assert db is not None
        return db

    def databases(self, kind: str | None = None) -> list[DatabaseMeta]:
        if kind is None:
            rows = self.meta.query("SELECT * FROM databases ORDER BY name")
        else:
            rows = self.meta.query("SELECT * FROM databases WHERE kind=? ORDER BY name", (kind,))
        return [_database(r) for r in rows]

    def set_public(self, name: str, public: bool) -> None:
        with self.meta.transaction() as con:
            con.execute("UPDATE databases SET public=? WHERE name=?", (int(public), name.lower()))

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

    def drop_database(self, name: str) -> None:
        with self.meta.transaction() as con:
            con.execute(
                "UPDATE table_versions SET retired=strftime('%Y-%m-%dT%H:%M:%fZ','now')"
                " WHERE retired IS NULL AND table_id IN (SELECT t.id FROM tables t"
                " JOIN databases d ON d.id=t.database_id WHERE d.name=?)", (name.lower(),))
            con.execute("DELETE FROM databases WHERE name=?", (name.lower(),))

    # --- tables --------------------------------------------------------------------
    def new_version_path(self, database: str, table: str, suffix: str = ".duckdb") -> Path:
        """A fresh, unused path for a new version file of ``database.table`` (with
        ``suffix=".hats"``: a version directory in the HATS layout; ``".pg"``: a small
        file naming the PostgreSQL relation of a table served from there).

        Write the file elsewhere (the process's ``tmp/`` area) and move it here when it
        is complete: a file under this name is always whole.
        """
        folder = self.tables_dir / database.lower() / table.lower()
        for level in (folder.parent, folder):
            level.mkdir(exist_ok=True, mode=0o700)
        if suffix not in (".duckdb", ".hats", ".pg"):
            raise ValueError(f"unknown version suffix {suffix!r}")
        return folder / f"v{int(time.time())}_{secrets.token_hex(6)}{suffix}"

    def stored_path(self, path: Path | str) -> str:
        """How a version file at ``path`` is recorded: relative to the data directory.

        Raises :class:`CatalogueError` for a file outside the tables directory.
        """
        resolved = Path(path).resolve()
        if self.tables_dir not in resolved.parents:
            raise CatalogueError(
                f"version file {path} is outside the tables directory {self.tables_dir}"
                " (through a symbolic link?): every table file stays under it, where the"
                " engine may read and backups look; to use another disk, mount it there")
        return resolved.relative_to(self.root).as_posix()

    def resolve(self, stored: str) -> Path:
        """The file a recorded version path names (absolute).

        A recorded path is relative to the data directory. One that is absolute or
        climbs out with ``..`` (never written by this code) is returned as it is, and
        the engine refuses to read it; the garbage collector never deletes through it.
        """
        pure = PurePosixPath(stored)
        if pure.is_absolute() or ".." in pure.parts:
            return Path(stored)
        return self.root.joinpath(*pure.parts)

    def publish(self, table: TableMeta, path: Path, *, replace: bool = True,
                description: str | None = None, max_rows: int | None = None,
                max_bytes: int | None = None,
                also: Callable[[sqlite3.Connection, int], None] | None = None) -> TableMeta:
        """Make the finished file ``path`` the current version of ``table``.

        One transaction: the table row is created if needed and switched to the new
        version; the previous version is retired (its file is removed later).
        Raises :class:`CatalogueError` when the table exists and ``replace`` is false.

        ``max_rows`` / ``max_bytes`` bound the whole database after the switch (rows of
        current versions; bytes of every version still on disk, retired ones included):
        checked in the same transaction, so concurrent writers cannot both slip under a
        quota (:class:`DatabaseFull`). ``also(con, table_id)`` runs in the transaction
        too, for records that must appear with the version or not at all.
        """
        dbname = table.database.lower()
        tname = check_name(table.name, "table")
        path = Path(path)
        stored = self.stored_path(path)
        nbytes = _version_bytes(path)
        desc = table.description if description is None else description
        with self.meta.transaction() as con:
            db = con.execute("SELECT id FROM databases WHERE name=?", (dbname,)).fetchone()
            if db is None:
                raise CatalogueError(f"unknown database {dbname!r}")
            row = con.execute("SELECT id, current_version_id FROM tables"
                              " WHERE database_id=? AND name=?", (db["id"], tname)).fetchone()
            if row is not None and not replace and row["current_version_id"] is not None:
                raise CatalogueError(f"table {dbname}.{tname} already exists")
            if max_rows is not None or max_bytes is not None:
                _check_room(con, db["id"], row["id"] if row else None, table.nrows, nbytes,
                            max_rows, max_bytes)
            if row is None:
                cur = con.execute("INSERT INTO tables(database_id, name, description)"
                                  " VALUES (?,?,?)", (db["id"], tname, desc))
                table_id = cur.lastrowid
                assert table_id is not None  # an INSERT's row id
            else:
                table_id = row["id"]
                con.execute("UPDATE tables SET description=? WHERE id=?", (desc, table_id))
                if row["current_version_id"] is not None:
                    con.execute("UPDATE table_versions SET retired="
                                "strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id=?",
                                (row["current_version_id"],))
            cur = con.execute(
                "INSERT INTO table_versions(table_id, database_id, path, nrows, nbytes, meta)"
                " VALUES (?,?,?,?,?,?)",
                (table_id, db["id"], stored, table.nrows, nbytes,
                 json.dumps(table.meta_dict())))
            con.execute("UPDATE tables SET current_version_id=? WHERE id=?",
                        (cur.lastrowid, table_id))
            if also is not None:
                also(con, table_id)
        result = self.table(dbname, tname)
        assert result is not None
        return result

    def table(self, database: str, name: str) -> TableMeta | None:
        row = self.meta.query_one(_TABLE_SQL + " WHERE d.name=? AND t.name=?",
                                  (database.lower(), name.lower()))
        return self._table(row) if row else None

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
        return [self._table(r) for r in rows]

    def table_summaries(self, databases: Iterable[str] = (), *,
                        tables: Iterable[tuple[str, str]] = (), search: str | None = None,
                        offset: int = 0, limit: int | None = None) -> list[TableSummary]:
        """Summaries of the current tables of ``databases`` and of the single
        ``(database, table)`` pairs in ``tables``, by database and name.

        ``search`` keeps the tables whose name or description holds the text, or one of
        whose columns does by name or description (case-insensitive for ASCII; those
        columns are in ``matched_columns``); tables matched by name come first. Column
        metadata is read by SQLite, never parsed here: 10,000 tables cost milliseconds.
        """
        params: dict[str, Any] = {}

        def mark(value: Any) -> str:
            params[f"p{len(params)}"] = value
            return f":p{len(params) - 1}"

        names = sorted({d.lower() for d in databases})
        pairs = sorted({(d.lower(), t.lower()) for d, t in tables})
        where = []
        if names:
            where.append(f"d.name IN ({','.join(mark(n) for n in names)})")
        if pairs:
            rows = ",".join(f"({mark(d)},{mark(t)})" for d, t in pairs)
            where.append(f"(d.name, t.name) IN (VALUES {rows})")
        if not where:
            return []
        condition = "(" + " OR ".join(where) + ")"
        matched = "NULL"
        order = "d.name, t.name"
        if search:
            like = mark("%" + search.replace("\\", "\\\\").replace("%", "\\%")
                        .replace("_", "\\_") + "%")
            exact = mark(search.lower())

            def has(expr: str) -> str:
                return f"{expr} LIKE {like} ESCAPE '\\'"

            column = (f"({has(_JSON_NAME)} OR {has(_JSON_DESCRIPTION)})")
            matched = (f"(SELECT group_concat({_JSON_NAME}, ' ') FROM"
                       f" json_each(v.meta, '$.columns') c WHERE {column})")
            walk = f"EXISTS (SELECT 1 FROM json_each(v.meta, '$.columns') c WHERE {column})"
            if search.isascii() and '"' not in search and "\\" not in search:
                # The stored JSON holds such text as it is: a plain text test first
                # skips the walk through the columns of versions that cannot match.
                walk = f"({has('v.meta')} AND {walk})"
            condition += f" AND ({has('t.name')} OR {has('t.description')} OR {walk})"
            order = (f"CASE WHEN t.name = {exact} THEN 0 WHEN {has('t.name')} THEN 1"
                     f" WHEN {has('t.description')} THEN 2 ELSE 3 END, d.name, t.name")
        query = (
            "SELECT d.name AS database, d.kind AS kind, t.name AS name,"
            " t.description AS description, v.nrows AS nrows, v.nbytes AS nbytes,"
            " v.created AS created, json_extract(v.meta, '$.ra_column') AS ra_column,"
            " json_extract(v.meta, '$.dec_column') AS dec_column,"
            " json_extract(v.meta, '$.epoch') AS epoch,"
            " json_array_length(v.meta, '$.columns') AS ncolumns,"
            f" {matched} AS matched"
            " FROM tables t JOIN databases d ON d.id=t.database_id"
            f" JOIN table_versions v ON v.id=t.current_version_id WHERE {condition}"
            f" ORDER BY {order} LIMIT {-1 if limit is None else int(limit)}"
            f" OFFSET {int(offset)}")
        return [TableSummary(
            database=r["database"], name=r["name"], description=r["description"] or "",
            kind=r["kind"], nrows=r["nrows"] or 0, nbytes=r["nbytes"] or 0,
            created=r["created"], ra_column=r["ra_column"], dec_column=r["dec_column"],
            epoch=r["epoch"], ncolumns=r["ncolumns"] or 0,
            matched_columns=tuple((r["matched"] or "").split()))
            for r in self.meta.query(query, params)]

    def table_counts(self, databases: Iterable[str]) -> dict[str, int]:
        """How many current tables each of ``databases`` holds."""
        names = sorted({d.lower() for d in databases})
        if not names:
            return {}
        rows = self.meta.query(
            "SELECT d.name AS name, COUNT(*) AS n FROM tables t"
            " JOIN databases d ON d.id=t.database_id WHERE t.current_version_id IS NOT NULL"
            f" AND d.name IN ({','.join('?' * len(names))}) GROUP BY d.name", names)
        return {r["name"]: int(r["n"]) for r in rows}

    def tables_named(self, name: str, databases: Iterable[str]) -> list[TableMeta]:
        """The current tables called ``name`` in any of ``databases``."""
        names = sorted({d.lower() for d in databases})
        out: list[TableMeta] = []
        for start in range(0, len(names), 500):
            chunk = names[start:start + 500]
            rows = self.meta.query(_TABLE_SQL + " WHERE t.name=? AND d.name IN"
                                   f" ({','.join('?' * len(chunk))})",
                                   (name.lower(), *chunk))
            out.extend(self._table(r) for r in rows)
        return out

    def table_names(self, table_ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
        """``{table id: (database, table, database kind)}`` of the current tables among
        ``table_ids`` (others' records, e.g. shares, name tables by id)."""
        ids = sorted(set(table_ids))
        out: dict[int, tuple[str, str, str]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.meta.query(
                "SELECT t.id AS id, d.name AS db, t.name AS name, d.kind AS kind"
                " FROM tables t JOIN databases d ON d.id=t.database_id"
                f" WHERE t.current_version_id IS NOT NULL AND t.id IN ({marks})", chunk)
            out.update({r["id"]: (r["db"], r["name"], r["kind"]) for r in rows})
        return out

    def table_ids(self, database: str) -> list[int]:
        """Ids of every table of ``database`` (current or not)."""
        return [r[0] for r in self.meta.query(
            "SELECT t.id FROM tables t JOIN databases d ON d.id=t.database_id WHERE d.name=?",
            (database.lower(),))]

    def set_table_description(self, database: str, name: str, description: str) -> None:
        """Change the description of a table (all its versions)."""
        self.meta.execute("UPDATE tables SET description=? WHERE name=? AND database_id="
                          "(SELECT id FROM databases WHERE name=?)",
                          (str(description), name.lower(), database.lower()))

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
        return True

    # --- versions: listing, restoring, accounting -------------------------------------
    def versions(self, database: str, table: str) -> list[VersionInfo]:
        """The current version of a table and its retained earlier ones, newest first.

        Raises :class:`CatalogueError` for an unknown table.
        """
        row = self.meta.query_one(
            "SELECT t.id, t.current_version_id, d.kind FROM tables t JOIN databases d"
            " ON d.id=t.database_id WHERE d.name=? AND t.name=?",
            (database.lower(), table.lower()))
        if row is None:
            raise CatalogueError(f"unknown table {database}.{table}")
        keep = self.retention.keep(row["kind"], dropped=False)
        result = []
        for v in self.meta.query("SELECT * FROM table_versions WHERE table_id=?"
                                 " ORDER BY id DESC", (row["id"],)):
            path = self.resolve(v["path"])
            current = v["id"] == row["current_version_id"]
            result.append(VersionInfo(
                version_id=v["id"], database=database.lower(), table=table.lower(),
                current=current, nrows=v["nrows"], nbytes=v["nbytes"], created=v["created"],
                retired=v["retired"],
                expires=None if v["retired"] is None else _iso(_epoch(v["retired"]) + keep),
                path=path, exists=_present(path)))
        return result

    def restore_version(self, database: str, table: str, version_id: int) -> TableMeta:
        """Make a retained earlier version of a table current again (rollback).

        One transaction, like :meth:`publish`: the current version is retired (and so
        retained in its turn). Raises :class:`CatalogueError` when ``version_id`` is not
        a retained version of this table or its file is gone.
        """
        dbname, tname = database.lower(), table.lower()
        with self.meta.transaction() as con:
            row = con.execute(
                "SELECT t.id, t.current_version_id FROM tables t JOIN databases d"
                " ON d.id=t.database_id WHERE d.name=? AND t.name=?", (dbname, tname)).fetchone()
            if row is None:
                raise CatalogueError(f"unknown table {dbname}.{tname}")
            if row["current_version_id"] == version_id:
                raise CatalogueError(f"version {version_id} is already the current version"
                                     f" of {dbname}.{tname}")
            v = con.execute("SELECT path FROM table_versions WHERE id=? AND table_id=?",
                            (version_id, row["id"])).fetchone()
            if v is None:
                raise CatalogueError(f"{dbname}.{tname} has no retained version {version_id};"
                                     " list them with versions()")
            if not _present(self.resolve(v["path"])):
                raise CatalogueError(f"the file of version {version_id} of {dbname}.{tname}"
                                     f" is missing ({v['path']}); it cannot be restored")
            con.execute("UPDATE table_versions SET retired=strftime('%Y-%m-%dT%H:%M:%fZ',"
                        "'now') WHERE id=? AND retired IS NULL", (row["current_version_id"],))
            con.execute("UPDATE table_versions SET retired=NULL WHERE id=?", (version_id,))
            con.execute("UPDATE tables SET current_version_id=? WHERE id=?",
                        (version_id, row["id"]))
        result = self.table(dbname, tname)
        assert result is not None
        return result

    def holding(self, database: str) -> Holding:
        """Rows and bytes that ``database`` holds on disk, retired versions included
        (they count against a user's quota until they are deleted)."""
        db = self.meta.query_one("SELECT id, kind FROM databases WHERE name=?",
                                 (database.lower(),))
        if db is None:
            return Holding(0, 0, 0, 0, 0, None)
        tables = rows = nbytes = retained_rows = retained_bytes = 0
        release: float | None = None
        for v in self.meta.query(
                "SELECT v.nrows, v.nbytes, v.retired, v.table_id IS NULL AS dropped"
                " FROM table_versions v WHERE v.database_id=?", (db["id"],)):
            rows += v["nrows"]
            nbytes += v["nbytes"]
            if v["retired"] is None:
                tables += 1
            else:
                retained_rows += v["nrows"]
                retained_bytes += v["nbytes"]
                when = _epoch(v["retired"]) + self.retention.keep(db["kind"],
                                                                  bool(v["dropped"]))
                release = when if release is None else min(release, when)
        return Holding(tables=tables, rows=rows, nbytes=nbytes, retained_rows=retained_rows,
                       retained_bytes=retained_bytes,
                       next_release=None if release is None else _iso(release))

    def referenced_files(self) -> dict[Path, list[int]]:
        """Every file a recorded version (current or retained) names, resolved, with
        the ids of the versions naming it."""
        out: dict[Path, list[int]] = {}
        for r in self.meta.query("SELECT id, path FROM table_versions"):
            out.setdefault(_real(self.resolve(r["path"])), []).append(r["id"])
        return out

    def recorded_versions(self) -> list[RecordedVersion]:
        """Every version the metadata records, current and retained (a backup reads its
        snapshot of the metadata with this)."""
        return [RecordedVersion(r[0], r[1], r[2] is not None, bool(r[3])) for r in self.meta.query(
            "SELECT v.id, v.path, v.retired, t.current_version_id=v.id"
            " FROM table_versions v LEFT JOIN tables t ON t.id=v.table_id")]

    def forget_retired_versions(self, version_ids: Iterable[int]) -> None:
        """Remove the records of these retired versions (a backup leaves out a retained
        version whose file was already deleted). Current versions are never removed."""
        with self.meta.transaction() as con:
            con.executemany("DELETE FROM table_versions WHERE id=? AND retired IS NOT NULL",
                            [(i,) for i in version_ids])

    # --- clean-up ----------------------------------------------------------------------
    def retired_version_ids(self, older_than: float = 0.0) -> list[int]:
        """Ids of versions replaced or dropped more than ``older_than`` seconds ago
        (queries planned before the switch are over: they may be detached)."""
        return [r[0] for r in self.meta.query(
            "SELECT id FROM table_versions WHERE retired IS NOT NULL"
            " AND julianday(retired) <= julianday('now') - ? / 86400.0", (older_than,))]

    @contextmanager
    def files_held(self) -> Iterator[None]:
        """Within this block no version file is deleted, by this process or another
        (a backup copies files while servers keep running)."""
        with _gc_lock(self.tables_dir, shared=True, wait=True):
            yield

    def collect_garbage(self, older_than: float | None = None) -> int:
        """Delete the files of retired versions whose time is up, and orphan files.

        A retired version's time is up ``older_than`` seconds (default: the grace
        period) after it was retired, or after its retention period if that is longer
        (see :class:`Retention`). Its file is deleted only if no remaining version, of
        any table, names the same file. An *orphan* is a version-named file under the
        tables directory that no version names (a writer died between moving its file
        in and publishing it); orphans left alone for :attr:`orphan_age` (and the grace
        period) are deleted, unless some current version's file is missing: then the
        metadata and the directory disagree (a metadata database from elsewhere?) and
        nothing is deleted.
        Nothing is deleted while :meth:`files_held` is in force anywhere. Returns the
        number of files removed.
        """
        grace = self.retention.grace if older_than is None else older_than
        retention = Retention(grace, self.retention.catalogue, self.retention.user)
        with _gc_lock(self.tables_dir, shared=False, wait=False) as locked:
            if not locked:
                log.info("garbage collection skipped: version files are held (backup)")
                return 0
            return self._collect(retention)

    def _collect(self, retention: Retention) -> int:
        removed = 0
        now = time.time()
        rows = self.meta.query(
            "SELECT v.id, v.path, v.retired, v.table_id IS NULL AS dropped, d.kind AS kind"
            " FROM table_versions v LEFT JOIN databases d ON d.id=v.database_id"
            " WHERE v.retired IS NOT NULL")
        expired = []
        for r in rows:
            keep = retention.keep(r["kind"], bool(r["dropped"]))
            if _epoch(r["retired"]) + keep < now:
                expired.append(r)
        deleted = []
        for r in expired:
            with self.meta.transaction() as con:
                # Still retired? (restore_version may have brought it back meanwhile.)
                if con.execute("DELETE FROM table_versions WHERE id=? AND retired IS"
                               " NOT NULL", (r["id"],)).rowcount:
                    deleted.append(r)
        referenced = self.referenced_files() if deleted else {}
        for r in deleted:
            path = self.resolve(r["path"])
            if _real(path) in referenced:
                log.info("version %d removed; its file %s is still named by another"
                         " version, kept", r["id"], r["path"])
                continue
            if self._deletable(path):
                remove_version_file(path)
                removed += 1
                log.info("removed %s (version %d, retired %s)", r["path"], r["id"],
                         r["retired"])
        removed += self._remove_orphans(retention.grace, now)
        return removed

    def _deletable(self, path: Path) -> bool:
        # Only a regular file (or version directory) that really lies in the tables
        # directory; a recorded path that resolves elsewhere (symlink, hostile metadata)
        # is never followed.
        if path.is_symlink() or not _present(path):
            return False
        return self.tables_dir in _real(path).parents

    def _remove_orphans(self, grace: float, now: float) -> int:
        referenced = self.referenced_files()
        missing = [r["path"] for r in self.meta.query(
            "SELECT v.path FROM tables t JOIN table_versions v ON v.id=t.current_version_id")
            if not _present(self.resolve(r["path"]))]
        if missing:
            log.error("%d current table version file(s) are missing (first: %s): the"
                      " metadata database and %s disagree, so no unreferenced file is"
                      " deleted; restore the missing files or the matching metadata",
                      len(missing), missing[0], self.tables_dir)
            return 0
        removed = 0
        for folder, dirs, files in os.walk(self.tables_dir):
            # Version directories are candidates themselves; their contents are not.
            versions = [d for d in dirs if VERSION_FILE.match(d)]
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in versions]
            for name in files + versions:
                if not VERSION_FILE.match(name):
                    continue
                path = Path(folder) / name
                base = Path(folder) / re.sub(r"(\.tmp)?(\.wal)?$", "", name)
                if _real(base) in referenced and not name.endswith(".tmp"):
                    continue
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue
                # ctime: when it was moved in (a rename keeps the write time).
                age = now - max(st.st_mtime, st.st_ctime)
                if age <= max(grace, self.orphan_age) or not self._deletable(path):
                    continue
                remove_version_file(path)
                removed += 1
                log.warning("removed %s: no table version names it (an interrupted"
                            " write?)", path.relative_to(self.root).as_posix())
        return removed

    def _table(self, row: sqlite3.Row) -> TableMeta:
        meta = _version_meta(row["version_id"], row["meta"])
        return TableMeta(
            database=row["database"], name=row["name"], description=row["description"],
            kind=row["kind"],
            columns=list(meta["columns"]),  # shared, never mutated: metadata is immutable
            ra_column=meta.get("ra_column"), dec_column=meta.get("dec_column"),
            healpix_column=meta.get("healpix_column"),
            healpix_order=meta.get("healpix_order", 29), epoch=meta.get("epoch"),
            nrows=row["nrows"], nbytes=row["nbytes"], path=self.resolve(row["path"]),
            table_id=row["table_id"], version_id=row["version_id"], created=row["created"],
            extra=dict(meta.get("extra") or {}), backend=row["backend"],
            backend_ref=row["backend_ref"],
        )


_JSON_NAME = "json_extract(c.value, '$.name')"
_JSON_DESCRIPTION = "json_extract(c.value, '$.description')"

_TABLE_SQL = (
    "SELECT d.name AS database, d.kind AS kind, t.name AS name, t.description AS description,"
    " d.backend AS backend, d.backend_ref AS backend_ref,"
    " t.id AS table_id, v.id AS version_id, v.path AS path, v.nrows AS nrows,"
    " v.nbytes AS nbytes, v.meta AS meta, v.created AS created"
    " FROM tables t JOIN databases d ON d.id=t.database_id"
    " JOIN table_versions v ON v.id=t.current_version_id"
)


class DatabaseFull(CatalogueError):
    """Publishing would take a database past ``max_rows`` or ``max_bytes``."""

    def __init__(self, unit: str, used: int, adding: int, limit: int) -> None:
        super().__init__(f"{used} of {limit} {unit} used; the new version needs {adding}")
        self.unit, self.used, self.adding, self.limit = unit, used, adding, limit


def _check_room(con: sqlite3.Connection, database_id: int, table_id: int | None,
                nrows: int, nbytes: int, max_rows: int | None, max_bytes: int | None) -> None:
    if max_rows is not None:
        rows = con.execute(
            "SELECT COALESCE(SUM(v.nrows), 0) FROM tables t JOIN table_versions v"
            " ON v.id=t.current_version_id WHERE t.database_id=? AND t.id IS NOT ?",
            (database_id, table_id)).fetchone()[0]
        if rows + nrows > max_rows:
            raise DatabaseFull("rows", rows, nrows, max_rows)
    if max_bytes is not None:
        held = con.execute("SELECT COALESCE(SUM(nbytes), 0) FROM table_versions"
                           " WHERE database_id=?", (database_id,)).fetchone()[0]
        if held + nbytes > max_bytes:
            raise DatabaseFull("bytes", held, nbytes, max_bytes)


def install_version_file(written: Path, final: Path) -> None:
    """Move a completely written version file (or version directory) into place under
    its final name (from :meth:`CatalogueStore.new_version_path`), durably: mode 0600
    (directories 0700), data synced, renamed, directory synced. Across file systems
    (``tmp/`` mounted elsewhere) it is copied to a temporary name beside ``final``
    first, so ``final`` is always whole."""
    written, final = Path(written), Path(final)
    _private_synced(written)
    try:
        os.replace(written, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        partial = final.with_name(final.name + ".tmp")
        try:
            if written.is_dir():
                shutil.copytree(written, partial, symlinks=True)
            else:
                shutil.copyfile(written, partial)
            _private_synced(partial)
            os.replace(partial, final)
        except BaseException:
            remove_version_file(partial)
            raise
        remove_version_file(written)
    _fsync_dir(final.parent)


def _private_synced(path: Path) -> None:
    if not path.is_dir():
        os.chmod(path, 0o600)
        _fsync_file(path)
        return
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o700)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o600)
            _fsync_file(Path(folder) / name)
    for folder, _, _ in os.walk(path, topdown=False):
        _fsync_dir(Path(folder))


def _present(path: Path) -> bool:
    return path.is_file() or path.is_dir()


def _version_bytes(path: Path) -> int:
    if path.is_dir():
        from taphouse.catalogue.hats import directory_size

        return directory_size(path)
    return path.stat().st_size if path.exists() else 0


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_version_file(path: Path) -> None:
    """Delete a version file and its write-ahead log, or a version directory, if they
    exist (a symbolic link is removed itself, never followed)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return
    for p in (path, Path(str(path) + ".wal")):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


@contextmanager
def _gc_lock(tables_dir: Path, *, shared: bool, wait: bool) -> Iterator[bool]:
    # One lock file per tables directory, shared across processes: backups hold it
    # shared while they copy, the garbage collector takes it exclusively or skips.
    fd = os.open(tables_dir / ".gc.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, flags if wait else flags | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:  # a symlink loop: compare it as it is
        return path


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _database(row: sqlite3.Row) -> DatabaseMeta:
    return DatabaseMeta(name=row["name"], description=row["description"], kind=row["kind"],
                        public=bool(row["public"]), database_id=row["id"],
                        owner_id=row["owner_id"], backend=row["backend"],
                        backend_ref=row["backend_ref"])


@functools.lru_cache(maxsize=4096)
def _version_meta(version_id: int, text: str) -> dict[str, Any]:
    # A version's metadata never changes: parse its JSON once.
    meta: dict[str, Any] = json.loads(text)
    meta["columns"] = tuple(ColumnMeta.from_dict(c) for c in meta["columns"])
    return meta
