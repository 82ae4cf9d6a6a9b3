"""The metadata database: accounts, tokens, jobs, catalogue and user-table records.

SQLite in the embedded default. The schema is versioned per *component* (``catalogue``,
``auth``, ``jobs``, ``userspace`` ...): each package registers its ordered list of
migrations with :func:`register_migrations`, and :class:`MetadataDB` applies the ones
not yet applied when it opens. A migration, once released, is never edited: add a new
one after it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

_MIGRATIONS: dict[str, list[str]] = {}


def register_migrations(component: str, migrations: Sequence[str]) -> None:
    """Declare the ordered migrations (SQL scripts) of one component."""
    _MIGRATIONS[component] = list(migrations)


class MetadataDB:
    """A thread-safe handle on the SQLite metadata database.

    Each thread gets its own connection (SQLite connections are not shared across
    threads); WAL mode lets readers run while one writer commits.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.migrate()

    def connection(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                  check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all."""
        con = self.connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")

    def query(self, sql: str, params: Sequence | dict = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Row | None:
        return self.connection().execute(sql, params).fetchone()

    def execute(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Cursor:
        return self.connection().execute(sql, params)

    def migrate(self) -> None:
        """Apply every registered migration not yet applied, each in its own transaction."""
        # Importing the packages registers their migrations.
        from taphouse import _components  # noqa: F401

        con = self.connection()
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        for component, migrations in _MIGRATIONS.items():
            row = con.execute("SELECT version FROM schema_version WHERE component=?",
                              (component,)).fetchone()
            done = row[0] if row else 0
            for number, script in enumerate(migrations[done:], start=done + 1):
                con.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _split_sql(script):
                        con.execute(statement)
                    con.execute(
                        "INSERT INTO schema_version(component, version) VALUES (?, ?)"
                        " ON CONFLICT(component) DO UPDATE SET version=excluded.version",
                        (component, number))
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")

    def schema_versions(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.query("SELECT component, version FROM schema_version")}

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
