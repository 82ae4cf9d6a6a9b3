"""The metadata database: accounts, tokens, jobs, catalogue and user-table records.

SQLite in the embedded default. The schema is versioned per *component* (``catalogue``,
``auth``, ``jobs``, ``userspace`` ...): each package registers its ordered list of
migrations with :func:`register_migrations`, and :class:`MetadataDB` applies the ones
not yet applied when it opens. A migration, once released, is never edited: add a new
one after it.

A migration is an SQL script or a Python function taking the open
:class:`sqlite3.Connection` (for data changes SQL cannot express). Each runs in its own
transaction, so a failing one leaves the store as it was before it.

Opening a store is careful with data that took years to build:

- a store written by a newer taphouse (a component at a version this code does not
  know, or a component it does not know at all) is refused with
  :class:`StoreTooNew`, never half-understood;
- before migrating an existing store, the metadata database is copied (SQLite backup
  API) to ``backups/`` beside it, and the migrations are logged;
- ``MetadataDB(path, upgrade=False)`` refuses an existing store that needs migrating
  (:class:`StoreNeedsUpgrade`), so a read-only command never upgrades a store under a
  running server of the previous release.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from taphouse.errors import ServiceError

log = logging.getLogger("taphouse.metadata")

#: One migration: an SQL script (statements separated by ``;``) or a function that
#: changes the store through the connection it is given (inside the migration's
#: transaction: it must not commit).
Migration = str | Callable[[sqlite3.Connection], None]

_MIGRATIONS: dict[str, list[Migration]] = {}


def register_migrations(component: str, migrations: Sequence[Migration]) -> None:
    """Declare the ordered migrations (SQL scripts or Python functions) of one component."""
    _MIGRATIONS[component] = list(migrations)


class SchemaError(ServiceError):
    """The metadata database cannot be used by this version of taphouse as it is."""

    status = 503


class StoreTooNew(SchemaError):
    """The store was written by a newer taphouse; this code must not touch it."""


class StoreNeedsUpgrade(SchemaError):
    """The store needs migrations that this caller may not apply (``upgrade=False``)."""


@dataclass
class SchemaState:
    """How a metadata database compares with the migrations this code knows."""

    path: Path
    exists: bool
    applied: dict[str, int] = field(default_factory=dict)
    known: dict[str, int] = field(default_factory=dict)

    @property
    def pending(self) -> dict[str, tuple[int, int]]:
        """Components to migrate: name -> (applied, known)."""
        return {c: (self.applied.get(c, 0), n) for c, n in self.known.items()
                if self.applied.get(c, 0) < n}

    @property
    def too_new(self) -> dict[str, tuple[int, int]]:
        """Components ahead of this code: name -> (applied, known; 0 = unknown)."""
        return {c: (v, self.known.get(c, 0)) for c, v in self.applied.items()
                if v > self.known.get(c, 0)}

    @property
    def fresh(self) -> bool:
        """Nothing applied yet: a new store, created without ceremony."""
        return not any(self.applied.values())

    def check_not_too_new(self) -> None:
        if self.too_new:
            parts = ", ".join(f"{c} {v} (this version knows {k or 'no such component'})"
                              for c, (v, k) in sorted(self.too_new.items()))
            raise StoreTooNew(
                f"the data in {self.path.parent} was written by a newer taphouse (schema"
                f" {parts}); this version must not use it. Install the newer taphouse"
                " again, or restore a backup made by this version")

    def check_current(self) -> None:
        """Raise unless this code can use the store as it is (new stores are fine)."""
        self.check_not_too_new()
        if self.pending and not self.fresh:
            raise StoreNeedsUpgrade(
                f"the data in {self.path.parent} was made by an earlier taphouse and"
                f" needs upgrading ({self.describe_pending()}): run 'taphouse migrate'"
                " (or start the server), which backs up the metadata first")

    def describe_pending(self) -> str:
        return ", ".join(f"{c} {a} -> {k}" for c, (a, k) in sorted(self.pending.items()))


def known_versions() -> dict[str, int]:
    """Each registered component and the number of migrations this code has for it."""
    # Importing the packages registers their migrations.
    from taphouse import _components  # noqa: F401

    return {c: len(m) for c, m in _MIGRATIONS.items()}


def schema_state(path: Path | str) -> SchemaState:
    """Compare the store at ``path`` with this code, without changing anything."""
    path = Path(path)
    state = SchemaState(path=path, exists=path.exists(), known=known_versions())
    if not state.exists:
        return state
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        has_table = con.execute("SELECT 1 FROM sqlite_master WHERE type='table'"
                                " AND name='schema_version'").fetchone()
        if has_table:
            state.applied = {r[0]: int(r[1]) for r in
                             con.execute("SELECT component, version FROM schema_version")}
    finally:
        con.close()
    return state


class MetadataDB:
    """A thread-safe handle on the SQLite metadata database.

    Each thread gets its own connection (SQLite connections are not shared across
    threads); WAL mode lets readers run while one writer commits.

    Parameters
    ----------
    path
        The database file; created (mode 0600, in a 0700 directory) if absent.
    upgrade
        Apply pending migrations to an existing store (after backing it up). When false,
        such a store raises :class:`StoreNeedsUpgrade`; a new store is always created.
    """

    def __init__(self, path: Path | str, *, upgrade: bool = True) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            # resolve(): the directory may be a symlink to one not made yet.
            self.path.parent.resolve().mkdir(parents=True, mode=0o700, exist_ok=True)
        _create_private(self.path)
        self._local = threading.local()
        # Each thread's connection, to close those of threads that have ended (a
        # connection is two open files; worker pools end and start threads all along).
        self._threads: dict[int, tuple[threading.Thread, sqlite3.Connection]] = {}
        self._threads_lock = threading.Lock()
        # One opener at a time decides and migrates (other processes, other threads):
        # a second opener of a store being created must not take it for an old store
        # half-way through its migrations (it would back it up and migrate it too).
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.migrate(upgrade=upgrade)
        finally:
            os.close(fd)

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
            self._register(con)
        return con

    def _register(self, con: sqlite3.Connection) -> None:
        """Remember ``con`` as the current thread's (closing those of ended threads)."""
        self.close_ended_threads()
        with self._threads_lock:
            ident = threading.get_ident()
            found = self._threads.get(ident)
            if found is not None and found[1] is not con:
                # The ident's previous connection: of an ended thread whose ident was
                # reused, or of a thread not started by threading that lost its
                # thread-local data between two calls into Python. Nobody uses it.
                found[1].close()
            self._threads[ident] = (threading.current_thread(), con)

    def close_ended_threads(self) -> int:
        """Close the connections of threads that have ended (nothing else would before
        the garbage collector happens to); returns how many. Called as connections are
        opened and every few seconds by the server."""
        closed = 0
        with self._threads_lock:
            live_tasks: set[int] | None = None
            for ident, (thread, old) in list(self._threads.items()):
                if isinstance(thread, threading._DummyThread):
                    # A thread not started by threading (a C library's, a foreign
                    # thread of an event loop): its is_alive() is always True, so ask
                    # the kernel whether its thread id is still one of ours.
                    if live_tasks is None:
                        live_tasks = _live_thread_ids()
                    alive = live_tasks is None or thread.native_id in live_tasks
                else:
                    alive = thread.is_alive()
                if not alive:
                    del self._threads[ident]
                    old.close()
                    closed += 1
        return closed

    def open_connections(self) -> int:
        """Connections open now, one per thread that used this database (for tests)."""
        with self._threads_lock:
            return len(self._threads)

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
        row: sqlite3.Row | None = self.connection().execute(sql, params).fetchone()
        return row

    def execute(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Cursor:
        return self.connection().execute(sql, params)

    def migrate(self, *, upgrade: bool = True) -> list[str]:
        """Apply every registered migration not yet applied, each in its own transaction.

        Returns the names of the migrations applied (``component N``). Raises
        :class:`StoreTooNew` for a store of a newer taphouse and, with ``upgrade`` false,
        :class:`StoreNeedsUpgrade` for an existing store with pending migrations.
        """
        state = schema_state(self.path)
        if not upgrade:
            state.check_current()
        state.check_not_too_new()
        if not state.pending:
            return []
        if not state.fresh:
            copy = backup_before_migration(self.path, state)
            log.warning("upgrading the metadata of %s (%s); a copy of it from before is"
                        " in %s", self.path.parent, state.describe_pending(), copy)
        con = self.connection()
        con.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                    " component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        applied: list[str] = []
        for component, migrations in _MIGRATIONS.items():
            for number, step in enumerate(migrations, start=1):
                if state.applied.get(component, 0) >= number:
                    continue
                con.execute("BEGIN IMMEDIATE")
                try:
                    # Read under the write lock: another process may be migrating too.
                    row = con.execute("SELECT version FROM schema_version WHERE component=?",
                                      (component,)).fetchone()
                    if (row[0] if row else 0) >= number:
                        con.execute("ROLLBACK")
                        continue
                    if callable(step):
                        step(con)
                    else:
                        for statement in _split_sql(step):
                            con.execute(statement)
                    con.execute(
                        "INSERT INTO schema_version(component, version) VALUES (?, ?)"
                        " ON CONFLICT(component) DO UPDATE SET version=excluded.version",
                        (component, number))
                except BaseException:
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
                applied.append(f"{component} {number}")
        return applied

    def schema_versions(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.query("SELECT component, version FROM schema_version")}

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
            with self._threads_lock:
                self._threads.pop(threading.get_ident(), None)


def backup_before_migration(path: Path, state: SchemaState) -> Path:
    """Copy the metadata database (SQLite backup API: consistent while others use it)
    to ``backups/meta-<time>-before-<versions>.sqlite`` beside it; returns the copy."""
    folder = path.parent / "backups"
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    versions = "-".join(f"{c}{v}" for c, v in sorted(state.applied.items()))
    target = folder / f"meta-{stamp}-before-upgrade-{versions}.sqlite"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"meta-{stamp}-before-upgrade-{versions}-{n}.sqlite"
    copy_database(path, target)
    return target


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite database ``source`` at ``target`` (mode 0600),
    written under a temporary name and renamed when complete."""
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    _create_private(partial)
    src = sqlite3.connect(f"{Path(source).resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, target)
    _fsync_dir(target.parent)


def _live_thread_ids() -> set[int] | None:
    """The kernel's ids of this process's threads now (Linux), or None when unknown. A
    thread id that ended may be re-used by a new thread of ours: that only keeps a
    connection open longer, never closes a live one."""
    try:
        return {int(name) for name in os.listdir("/proc/self/task")}
    except (OSError, ValueError):
        return None


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (SQLite gives its
    -wal and -shm files the database file's mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
