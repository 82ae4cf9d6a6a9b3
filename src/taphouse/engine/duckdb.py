"""The embedded DuckDB backend.

One in-process DuckDB instance per server, locked down at start: no file access
outside the tables directory, no extension install or auto-load, configuration locked,
bounded memory, threads and temp space. Table versions are attached read-only when a
request uses them (a :class:`VersionLease`), under an alias derived from their version
id, and detached when idle; each query runs on its own cursor, so a query can be
cancelled on its own (``interrupt``).
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import duckdb
import pyarrow as pa

from taphouse.catalogue.hats import duckdb_copy, duckdb_view_sql, is_version_dir
from taphouse.catalogue.model import TableMeta
from taphouse.engine.backend import capped_table
from taphouse.engine.deadlines import DEADLINES, Deadline
from taphouse.engine.errors import (
    EngineError,
    QueryCancelled,
    TempTableTooLarge,
    WriteLimitExceeded,
)
from taphouse.errors import without_paths

if TYPE_CHECKING:
    from taphouse.engine.functions import ServiceFunction

__all__ = ["DuckDBEngine", "EngineError", "QueryCancelled", "TempTableTooLarge",
           "VersionLease", "WriteLimitExceeded"]

log = logging.getLogger("taphouse")


class _Attached:
    __slots__ = ("alias", "refs", "used", "retired", "view")

    def __init__(self, alias: str, view: bool = False) -> None:
        self.alias, self.refs, self.used, self.retired = alias, 0, time.monotonic(), False
        # A partitioned (HATS) version is a view over its Parquet files, not a database.
        self.view = view

    @property
    def relation(self) -> str:
        return f"memory.main.{self.alias}" if self.view else f"{self.alias}.main.data"


class VersionLease:
    """The table versions one request uses, attached while it runs.

    :meth:`relation` attaches a version on first use (like the engine's) and holds it:
    a held version is never detached, so a query translated against it can still run
    later in the request. :meth:`release` (or leaving a ``with`` block) lets go of all
    of them; idle versions are then detached when more than ``max_attached`` are
    attached, or after ``idle_detach`` seconds (:meth:`DuckDBEngine.detach_idle`).
    """

    def __init__(self, engine: DuckDBEngine) -> None:
        self._engine = engine
        self._held: dict[int, str] = {}
        self._lock = threading.Lock()

    def relation(self, table: TableMeta) -> str:
        """SQL relation of a stored table version, held until :meth:`release`."""
        with self._lock:
            alias = self._held.get(table.version_id)  # type: ignore[arg-type]
            if alias is None:
                alias = self._engine._acquire(table)
                self._held[table.version_id] = alias  # type: ignore[index]
        return alias

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, {}
        for version_id in held:
            self._engine._release(version_id)

    def __enter__(self) -> VersionLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class DuckDBEngine:
    """Runs SQL produced by :mod:`taphouse.adql` on attached table version files.

    Table versions are attached on use and detached when idle: at most
    ``max_attached`` stay attached once no request holds them (each costs an open file
    and about 1 MB), and none longer than ``idle_detach`` seconds unused.
    """

    dialect = "duckdb"

    def __init__(self, tables_dir: Path, *, threads: int = 2, memory_limit: str = "4GB",
                 temp_dir: Path | None = None, temp_limit: str = "10GB",
                 max_attached: int = 64, idle_detach: float = 60.0) -> None:
        self.tables_dir = Path(tables_dir).resolve()
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        # Sort spills and table versions being written go to temp_dir (the process's
        # tmp/ area on the data directory's disk); versions are moved into tables_dir
        # when complete.
        self.temp_dir = Path(temp_dir).resolve() if temp_dir is not None else None
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "threads": threads,
            "memory_limit": memory_limit,
            # Give memory back to the system soon after a large query instead of keeping
            # it cached in the allocator (RSS stays near idle between queries).
            "allocator_flush_threshold": "16MB",
            "allocator_background_threads": True,
        }
        self._con = duckdb.connect(":memory:", config=config)
        allowed = [self.tables_dir]
        if self.temp_dir is not None:
            self.temp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._con.execute(f"SET temp_directory='{_sql_str(str(self.temp_dir))}'")
            self._con.execute(f"SET max_temp_directory_size='{_sql_str(temp_limit)}'")
            allowed.append(self.temp_dir)
        dirs = ", ".join(f"'{_sql_str(str(d))}/'" for d in allowed)
        self._con.execute(f"SET allowed_directories=[{dirs}]")
        self._con.execute("SET enable_external_access=false")
        # Partitioned (HATS) versions: a Parquet file's footer is parsed once, not at
        # every query (versions never change; measured: a cone -0.35 ms of 2.6).
        self._con.execute("SET parquet_metadata_cache=true")
        self._register_functions()
        self._con.execute("SET lock_configuration=true")
        self.max_attached = max_attached
        self.idle_detach = idle_detach
        self._attached: dict[int, _Attached] = {}
        self._lock = threading.Lock()
        # Time limits set on open cursors (``limit``), dropped when the cursor closes.
        self._deadlines: dict[int, Deadline] = {}

    def _register_functions(self) -> None:
        # The ADQL user-defined functions that need backend support register here.
        from taphouse.engine.functions import register_functions

        register_functions(self._con)

    def functions(self) -> tuple[ServiceFunction, ...]:
        """The service functions registered on this engine's connection."""
        from taphouse.engine.functions import service_functions

        return service_functions()

    # --- relations -------------------------------------------------------------------
    def lease(self) -> VersionLease:
        """A lease for the versions one request uses: each is attached on first use and
        stays attached until the lease is released (see :class:`VersionLease`)."""
        return VersionLease(self)

    def relation(self, table: TableMeta) -> str:
        """SQL relation of a stored version, attached without a lease: for tools and
        tests that query it at once (an idle version may be detached any time after)."""
        relation = self._acquire(table)
        self._release(table.version_id)  # type: ignore[arg-type]
        return relation

    def forget(self, version_id: int) -> None:
        """Detach a retired version now, or as soon as no lease holds it."""
        with self._lock:
            att = self._attached.get(version_id)
            if att is None:
                return
            att.retired = True
            if att.refs == 0:
                self._detach(version_id)

    def detach_idle(self, idle_seconds: float | None = None) -> int:
        """Detach versions no lease holds that were last used ``idle_seconds`` ago
        (default: the engine's ``idle_detach``); returns how many."""
        idle = self.idle_detach if idle_seconds is None else idle_seconds
        cutoff = time.monotonic() - idle
        with self._lock:
            old = [v for v, a in self._attached.items() if a.refs == 0 and a.used <= cutoff]
            return sum(self._detach(v) for v in old)

    def attached(self) -> dict[int, int]:
        """Attached versions and how many leases hold each (for monitoring and tests)."""
        with self._lock:
            return {v: a.refs for v, a in self._attached.items()}

    def _acquire(self, table: TableMeta) -> str:
        if table.path is None or table.version_id is None:
            raise EngineError(f"table {table.database}.{table.name} has no stored version")
        with self._lock:
            att = self._attached.get(table.version_id)
            if att is None:
                alias = f"v{table.version_id}"
                path = Path(table.path).resolve()
                if self.tables_dir not in path.parents:
                    raise EngineError("table file outside the tables directory")
                copy = duckdb_copy(path) if is_version_dir(path) else None
                if copy is not None:  # partitioned with a DuckDB copy: DuckDB reads that
                    path = copy
                if is_version_dir(path):
                    alias = f"p{table.version_id}"
                    self._con.execute(duckdb_view_sql(path, f"memory.main.{alias}"))
                    att = _Attached(alias, view=True)
                else:
                    self._con.execute(f"ATTACH '{_sql_str(str(path))}' AS {alias} (READ_ONLY)")
                    att = _Attached(alias)
                self._attached[table.version_id] = att
            att.refs += 1
            att.used = time.monotonic()
            return att.relation

    def _release(self, version_id: int) -> None:
        with self._lock:
            att = self._attached.get(version_id)
            if att is None:
                return
            att.refs -= 1
            att.used = time.monotonic()
            if att.refs > 0:
                return
            if att.retired:
                self._detach(version_id)
            # Over the bound: detach the least recently used versions nobody holds.
            excess = len(self._attached) - self.max_attached
            if excess > 0:
                idle = sorted((a.used, v) for v, a in self._attached.items() if a.refs == 0)
                for _, v in idle[:excess]:
                    self._detach(v)

    def _detach(self, version_id: int) -> bool:
        # Called with the lock held, for a version no lease holds.
        att = self._attached.pop(version_id)
        try:
            if att.view:
                self._con.execute(f"DROP VIEW IF EXISTS memory.main.{att.alias}")
            else:
                self._con.execute(f"DETACH {att.alias}")
        except duckdb.Error:  # still in use after all: keep it, try again later
            self._attached[version_id] = att
            return False
        return True

    # --- execution -------------------------------------------------------------------
    @contextmanager
    def cursor(self, inline: dict[str, Any] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one query, with per-request tables registered."""
        cur = self._con.cursor()
        try:
            for name, data in (inline or {}).items():
                cur.register(name, data)
            yield cur
        finally:
            deadline = self._deadlines.pop(id(cur), None)
            if deadline is not None:
                deadline.cancelled = True
            cur.close()

    def interrupt(self, cur: Any) -> None:
        """Stop the query running on ``cur`` (from any thread; nothing if none runs)."""
        try:
            cur.interrupt()
        except duckdb.Error:  # the cursor was closed meanwhile
            pass

    def limit(self, cur: Any, *, seconds: float | None = None,
              memory_bytes: int | None = None) -> None:
        """Interrupt the queries on ``cur`` once ``seconds`` have passed (until the cursor
        of :meth:`cursor` closes). DuckDB's memory limit is one for the whole engine
        (``memory_limit`` at start, configuration locked): ``memory_bytes`` cannot lower
        it for one query and is not enforced here."""
        if seconds is None:
            return
        old = self._deadlines.pop(id(cur), None)
        if old is not None:
            old.cancelled = True
        self._deadlines[id(cur)] = DEADLINES.add(
            seconds, lambda _reason: self.interrupt(cur), "time limit")

    def load_temp_table(self, cur: Any, name: str,
                        data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
                        max_rows: int) -> int:
        """Register ``data`` on ``cur`` as ``name`` (queries on that cursor only); a
        reader or batches are read (at most ``max_rows`` + 1 rows) into memory first.
        Returns the rows; more than ``max_rows``: :class:`TempTableTooLarge`."""
        if not _IDENTIFIER.fullmatch(name or ""):
            raise EngineError(f"{name!r} is not a valid temporary table name (letters,"
                              " digits and _, not starting with a digit)")
        table = capped_table(data, name, max_rows)
        cur.register(name, table)
        return int(table.num_rows)

    def describe_error(self, exc: BaseException) -> str:
        """A user's message for an exception from a DuckDB query, by its type: what
        kind of failure, then DuckDB's first sentence (its "X Error:" prefix, file paths
        and the LINE excerpt removed) where that sentence is about the query's own
        values and names; nothing but the kind where it could show the server's
        internals (I/O, internal, memory, connection errors)."""
        return describe_duckdb_error(exc)

    @staticmethod
    def stream(cur: Any, sql: str, batch_rows: int = 65536,
               batch_bytes: int | None = None) -> Any:
        """Run ``sql`` on ``cur`` and return its rows as Arrow record batches that stream:
        the result is never materialised whole (a DB-API ``execute`` would be).

        With ``batch_bytes``, no batch holds much more than that many bytes whatever the
        row width: results of fixed-width columns are read in batches of as many rows as
        fit; results with strings or lists (whose width is known only once read) in
        small batches, joined up to ``batch_bytes`` or ``batch_rows``.
        """
        rel = cur.sql(sql)
        if batch_bytes is None:
            return rel.to_arrow_reader(batch_rows)
        width = fixed_row_width(str(t) for t in rel.types)
        if width is not None:
            rows = max(1, min(batch_rows, batch_bytes // max(width, 1)))
            return rel.to_arrow_reader(rows)
        return _Joined(rel.to_arrow_reader(_SMALL_BATCH), batch_rows, batch_bytes)

    def write_table(self, sql: str, path: Path, *, order_by: str | None = None,
                    inline: dict[str, Any] | None = None, cursor: Any = None,
                    max_bytes: int | None = None) -> int:
        """Run ``sql`` and store all its rows as a new version file at ``path``.

        The file is written in the temporary directory (beside ``path`` without one) and
        moved to ``path`` when complete, so a crash leaves no file that looks finished.
        With ``max_bytes``, a file growing past it stops the write
        (:class:`WriteLimitExceeded`, nothing kept). Returns the number of rows.
        """
        from taphouse.catalogue.store import install_version_file, remove_version_file

        path = Path(path).resolve()
        if self.tables_dir not in path.parents:
            raise EngineError("table file outside the tables directory")
        if self.temp_dir is not None:
            tmp = self.temp_dir / f"w-{secrets.token_hex(8)}.duckdb"
        else:
            tmp = path.with_name(path.name + ".tmp")
        alias = "w_" + secrets.token_hex(8)
        ordered = f"SELECT * FROM ({sql}) AS q ORDER BY {order_by}" if order_by else sql
        # A caller-supplied cursor lets it interrupt the write (cancel, time limit).
        ctx = self.cursor(inline) if cursor is None else nullcontext(cursor)
        watch: _SizeWatch | None = None
        try:
            with ctx as cur:
                watch = _SizeWatch(cur, tmp, max_bytes) if max_bytes is not None else None
                cur.execute(f"ATTACH '{_sql_str(str(tmp))}' AS {alias}")
                try:
                    try:
                        cur.execute(f"CREATE TABLE {alias}.main.data AS {ordered}")
                        counted = cur.execute(
                            f"SELECT count(*) FROM {alias}.main.data").fetchone()
                        nrows = counted[0] if counted else 0
                    finally:
                        if watch is not None:
                            watch.stop()
                finally:
                    cur.execute(f"DETACH {alias}")
            if watch is not None:
                watch.check_final()
            install_version_file(tmp, path)
        except BaseException as exc:
            remove_version_file(tmp)
            if watch is not None and watch.exceeded and not isinstance(exc, WriteLimitExceeded):
                raise WriteLimitExceeded(watch.limit) from None
            raise
        return int(nrows)

    def open_writer(self, schema: pa.Schema, path: Path, *, order_by: str | None = None,
                    max_bytes: int | None = None, cursor: Any = None) -> _ArrowWriter:
        """A new version file at ``path`` written from Arrow batches pushed one at a
        time (see :class:`taphouse.engine.backend.TableWriter`): written in the
        temporary directory, moved to ``path`` by ``close``; ``order_by`` sorts the rows
        at ``close``; past ``max_bytes``: :class:`WriteLimitExceeded`, nothing kept."""
        return _ArrowWriter(self, schema, path, order_by=order_by, max_bytes=max_bytes,
                            cursor=cursor)

    def write_arrow(self, batches: Iterable[pa.RecordBatch], schema: pa.Schema,
                    path: Path, *, order_by: str | None = None,
                    max_bytes: int | None = None, cursor: Any = None) -> int:
        """Store every batch as a new version file at ``path``; returns the rows."""
        with self.open_writer(schema, path, order_by=order_by, max_bytes=max_bytes,
                              cursor=cursor) as writer:
            for batch in batches:
                writer.write(batch)
        return writer.rows


class _ArrowWriter:
    """A version file written from Arrow batches (see :meth:`DuckDBEngine.open_writer`).

    Batches are inserted one by one into the file being written (in the temporary
    directory), committed every few batches (a commit per batch costs more than the
    insert). With ``order_by`` they go to a temporary table of the cursor first (memory,
    spilled to the temporary directory), in one transaction, and are copied sorted into
    the file at :meth:`close`, so the version file holds only the sorted table. When
    ``order_by`` names one integer column alone (the HEALPix index of a user table),
    batches that arrive already in its order (a query over a catalogue stored in that
    order) go straight into the file; the first batch out of order moves the rows so far
    to the temporary table and the file starts again empty. A :class:`_SizeWatch`
    interrupts the cursor when the file grows past ``max_bytes``.
    """

    def __init__(self, engine: DuckDBEngine, schema: pa.Schema, path: Path, *,
                 order_by: str | None, max_bytes: int | None, cursor: Any) -> None:
        from taphouse.catalogue.store import remove_version_file

        path = Path(path).resolve()
        if engine.tables_dir not in path.parents:
            raise EngineError("table file outside the tables directory")
        self.engine, self.schema, self.path, self.order_by = engine, schema, path, order_by
        self.rows = 0
        self._done = False
        token = secrets.token_hex(8)
        if engine.temp_dir is not None:
            self._tmp = engine.temp_dir / f"w-{token}.duckdb"
        else:
            self._tmp = path.with_name(path.name + ".tmp")
        self._own = cursor is None
        self._cur = engine._con.cursor() if cursor is None else cursor
        self._alias = f"w_{token}"
        #: With ``order_by`` one integer column: its last value while the batches came
        #: in order (written straight into the file); None once they did not.
        self._key = _sort_key(order_by, schema)
        self._last: int | None = None
        self._stage = f"temp.main.s_{token}" if order_by and self._key is None else None
        self._stage_name = f"temp.main.s_{token}"
        self._in_txn = False
        self._pending = 0
        self._batch = f"_arrow_batch_{token}"
        self._attached: list[str] = []
        self.watch: _SizeWatch | None = None
        try:
            self.watch = (_SizeWatch(self._cur, self._tmp, max_bytes)
                          if max_bytes is not None else None)
            self._attach(self._tmp, self._alias)
            self.target = self._stage or f"{self._alias}.main.data"
            self._cur.register(self._batch, pa.Table.from_batches([], schema=schema))
            try:
                self._cur.execute(f"CREATE {'TEMP ' if self._stage else ''}TABLE"
                                  f" {self.target} AS SELECT * FROM {self._batch} LIMIT 0")
            finally:
                self._cur.unregister(self._batch)
            self._begin()
        except BaseException as exc:
            self._cleanup()
            remove_version_file(self._tmp)
            # A new database file is already a few kB: a small limit stops the write
            # while it is being set up.
            if self.watch is not None and self.watch.exceeded and not isinstance(
                    exc, WriteLimitExceeded):
                raise WriteLimitExceeded(self.watch.limit) from None
            raise

    def _begin(self) -> None:
        self._cur.execute("BEGIN TRANSACTION")
        self._in_txn = True

    def _commit(self) -> None:
        if self._in_txn:
            self._in_txn = False
            self._cur.execute("COMMIT")

    def _attach(self, file: Path, alias: str) -> None:
        self._cur.execute(f"ATTACH '{_sql_str(str(file))}' AS {alias}")
        self._attached.append(alias)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._done:
            raise EngineError("the table writer is closed")
        try:
            if self._key is not None and not self._in_order(batch):
                self._to_stage()
            self._cur.register(self._batch, batch)
            try:
                self._cur.execute(f"INSERT INTO {self.target} SELECT * FROM {self._batch}")
            finally:
                self._cur.unregister(self._batch)
            self._pending += 1
            # Into the file: committed every 16 batches (its size is then on disk for
            # the byte limit); into the staging table: one transaction.
            if self._stage is None and self._pending >= 16:
                self._pending = 0
                self._commit()
                self._begin()
        except BaseException as exc:
            self._fail(exc)
        self.rows += batch.num_rows
        if self.watch is not None and self.watch.size() > self.watch.limit:
            self._fail(WriteLimitExceeded(self.watch.limit))

    def _in_order(self, batch: pa.RecordBatch) -> bool:
        """The batch continues the order of ``order_by``'s column (no nulls)."""
        import numpy as np

        column = batch.column(self._key)
        if column.null_count:
            return False
        if not len(column):
            return True
        values = column.to_numpy()
        if self._last is not None and values[0] < self._last:
            return False
        if not bool(np.all(values[1:] >= values[:-1])):
            return False
        self._last = values[-1]
        return True

    def _to_stage(self) -> None:
        """Rows out of order: the rows so far go to the temporary table, sorted into a
        new empty file at :meth:`close` (the file never holds them twice)."""
        from taphouse.catalogue.store import remove_version_file

        self._key = None
        self._commit()
        stage = self._stage_name
        self._cur.execute(f"CREATE TEMP TABLE {stage} AS SELECT * FROM {self.target}")
        self._attached.remove(self._alias)
        self._cur.execute(f"DETACH {self._alias}")
        remove_version_file(self._tmp)
        self._attach(self._tmp, self._alias)
        self._stage = self.target = stage
        self._pending = 0
        self._begin()

    def close(self) -> int:
        from taphouse.catalogue.store import install_version_file

        if self._done:
            return self.rows
        try:
            self._commit()
            if self._stage is not None:
                self._cur.execute(f"CREATE TABLE {self._alias}.main.data AS SELECT * FROM"
                                  f" {self._stage} ORDER BY {self.order_by}")
                self._cur.execute(f"DROP TABLE {self._stage}")
            self._cleanup()
            if self.watch is not None:
                self.watch.check_final()
            install_version_file(self._tmp, self.path)
        except BaseException as exc:
            self._fail(exc)
        self._done = True
        return self.rows

    def abort(self) -> None:
        from taphouse.catalogue.store import remove_version_file

        if self._done:
            return
        self._done = True
        self._cleanup()
        remove_version_file(self._tmp)

    def _fail(self, exc: BaseException) -> NoReturn:
        exceeded = self.watch is not None and self.watch.exceeded
        self.abort()
        if exceeded and not isinstance(exc, WriteLimitExceeded):
            raise WriteLimitExceeded(self.watch.limit) from None  # type: ignore[union-attr]
        raise exc

    def _cleanup(self) -> None:
        # Stop the watch, detach the files, close an own cursor (safe to repeat).
        if self.watch is not None:
            self.watch.stop()
        if self._in_txn:
            self._in_txn = False
            try:
                self._cur.execute("ROLLBACK")
            except duckdb.Error:
                pass
        if self._stage is not None:
            try:
                self._cur.execute(f"DROP TABLE IF EXISTS {self._stage}")
            except duckdb.Error:
                pass
        while self._attached:
            alias = self._attached.pop()
            try:
                self._cur.execute(f"DETACH {alias}")
            except duckdb.Error:
                log.warning("could not detach %s after a write", alias)
        if self._own:
            self._own = False
            self._cur.close()

    def __enter__(self) -> _ArrowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.abort()


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIX = re.compile(r"^[A-Z][A-Za-z ]* Error: ")


def _sentence(exc: BaseException) -> str:
    """DuckDB's first sentence: no "X Error:" prefix, no LINE excerpt, no file path."""
    lines = str(exc).strip().splitlines()
    first = _PREFIX.sub("", lines[0]) if lines else ""
    return without_paths(first).strip() or "no detail"


# DuckDB's error types by the name its messages start with ("Conversion Error: ..."):
# an error met while reading a result through Arrow reaches Python as pyarrow's OSError
# carrying that text, its type known only by this name.
_TYPES_BY_NAME: dict[str, type[duckdb.Error]] = {
    "out of range": duckdb.OutOfRangeException, "conversion": duckdb.ConversionException,
    "binder": duckdb.BinderException, "catalog": duckdb.CatalogException,
    "parser": duckdb.ParserException, "invalid input": duckdb.InvalidInputException,
    "interrupt": duckdb.InterruptException, "out of memory": duckdb.OutOfMemoryException,
    "io": duckdb.IOException, "not implemented": duckdb.NotImplementedException,
    "type mismatch": duckdb.TypeMismatchException, "invalid type": duckdb.InvalidTypeException,
    "constraint": duckdb.ConstraintException, "internal": duckdb.InternalException,
    "fatal": duckdb.FatalException,
}
_NAMED = re.compile(r"^([A-Za-z][A-Za-z ]*?) Error: ")


def _duckdb_type(exc: BaseException) -> BaseException:
    """``exc``, or the DuckDB error it carries when it came through Arrow's reader."""
    if isinstance(exc, duckdb.Error) or (isinstance(exc, OSError) and exc.errno):
        return exc
    match = _NAMED.match(str(exc).strip())
    cls = _TYPES_BY_NAME.get(match.group(1).lower()) if match else None
    return cls(str(exc)) if cls is not None else exc


def describe_duckdb_error(exc: BaseException) -> str:
    """See :meth:`DuckDBEngine.describe_error`."""
    exc = _duckdb_type(exc)
    if isinstance(exc, duckdb.InterruptException):
        return "the query was interrupted (cancelled, or over its time limit)"
    if isinstance(exc, duckdb.OutOfMemoryException):
        return ("the query needs more memory than the service allows; select fewer"
                " columns or rows, or add conditions")
    if isinstance(exc, duckdb.IOException) or isinstance(exc, OSError):
        if "space" in str(exc).lower() or "max_temp_directory_size" in str(exc):
            return ("the service ran out of temporary disk space for this query; select"
                    " fewer rows or columns, or try later")
        return "the query could not read or write its data on the server"
    if isinstance(exc, duckdb.OutOfRangeException):
        return f"a value is out of range: {_sentence(exc)}"
    if isinstance(exc, (duckdb.ConversionException, duckdb.TypeMismatchException,
                        duckdb.InvalidTypeException)):
        return f"a value has the wrong type: {_sentence(exc)}"
    if isinstance(exc, (duckdb.BinderException, duckdb.CatalogException,
                        duckdb.ParserException, duckdb.SyntaxException)):
        return f"the query cannot be run: {_sentence(exc)}"
    if isinstance(exc, duckdb.InvalidInputException):
        if "Python exception" in str(exc):  # a service function or reader failed
            return "the query failed while computing a function or reading a table"
        from taphouse.adql.rules.arithmetic import arithmetic_error

        # x / 0, LOG(0)...: the same words as on every backend
        return arithmetic_error(_sentence(exc)) or f"invalid input: {_sentence(exc)}"
    if isinstance(exc, (duckdb.NotImplementedException, duckdb.NotSupportedError)):
        return f"not supported: {_sentence(exc)}"
    if isinstance(exc, duckdb.ConstraintException):
        return f"a constraint is violated: {_sentence(exc)}"
    if isinstance(exc, duckdb.DataError):
        return f"invalid data: {_sentence(exc)}"
    log.error("query failed in DuckDB: %s: %s", type(exc).__name__, without_paths(str(exc)))
    return "the query failed inside the database engine (logged for the operators)"


def _sort_key(order_by: str | None, schema: pa.Schema) -> str | None:
    """The integer column that ``order_by`` names alone (``"name"`` or ``name``), if any."""
    if not order_by:
        return None
    name = order_by.strip()
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('""', '"')
    if name not in schema.names or schema.get_field_index(name) < 0:
        return None
    return name if pa.types.is_integer(schema.field(name).type) else None


class _SizeWatch:
    """Interrupts a write whose file grows past a limit, checked every few milliseconds:
    a write never overshoots by more than what DuckDB writes in that time.

    Only the database file counts, not its write-ahead log: DuckDB logs small writes
    uncompressed (several times their final size) and folds the log into the file when
    it checkpoints (at 16 MB of log, and when the file is detached), so counting the log
    would refuse tables whose stored size fits; the log's own size is bounded by that
    threshold.
    """

    def __init__(self, cursor: Any, path: Path, limit: int, period: float = 0.02) -> None:
        self.cursor, self.path, self.limit, self.period = cursor, path, limit, period
        self.exceeded = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="write-size-watch",
                                        daemon=True)
        self._thread.start()

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            if self.size() > self.limit:
                self.exceeded = True
                self.cursor.interrupt()
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def check_final(self) -> None:
        if self.exceeded or self.size() > self.limit:
            self.exceeded = True
            raise WriteLimitExceeded(self.limit)


# Rows per batch read from DuckDB when the row width is unknown: 256 rows of the widest
# strings ADQL can make (a literal as long as a query may be, 100 kB) are 25 MB.
_SMALL_BATCH = 256
_FIXED_WIDTHS = {
    "BOOLEAN": 1, "TINYINT": 1, "UTINYINT": 1, "SMALLINT": 2, "USMALLINT": 2,
    "INTEGER": 4, "UINTEGER": 4, "BIGINT": 8, "UBIGINT": 8, "HUGEINT": 16, "UHUGEINT": 16,
    "FLOAT": 4, "DOUBLE": 8, "DATE": 4, "TIME": 8, "TIMESTAMP": 8, "TIMESTAMP_S": 8,
    "TIMESTAMP_MS": 8, "TIMESTAMP_NS": 8, "TIMESTAMP WITH TIME ZONE": 8,
    "TIME WITH TIME ZONE": 8, "INTERVAL": 16, "UUID": 16,
}


def fixed_row_width(types: Any) -> int | None:
    """Bytes of one row of DuckDB column types, or None when a column has no fixed width
    (strings, lists, structs...). Fixed-size arrays (``DOUBLE[2]``) count."""
    total = 0
    for text in types:
        name = text.upper()
        count = 1
        while name.endswith("]"):
            inner, _, size = name[:-1].rpartition("[")
            if not size.isdigit():
                return None
            count *= int(size)
            name = inner
        found = 16 if name.startswith("DECIMAL") else _FIXED_WIDTHS.get(name)
        if found is None:
            return None
        width = found
        total += width * count
    return total


class _Joined:
    """The batches of :func:`_joined`, with the reader's ``schema`` (known before any
    batch: a result of no rows still has column types)."""

    def __init__(self, reader: Any, max_rows: int, max_bytes: int) -> None:
        self.schema = reader.schema
        self._batches = _joined(reader, max_rows, max_bytes)

    def __iter__(self) -> Iterator[Any]:
        return self._batches


def _joined(reader: Any, max_rows: int, max_bytes: int) -> Iterator[Any]:
    """Batches of ``reader`` joined into batches of up to ``max_rows`` rows or about
    ``max_bytes`` bytes (a batch already larger passes as it is)."""
    import pyarrow as pa

    pending: list[Any] = []
    rows = size = 0
    for batch in reader:
        pending.append(batch)
        rows += batch.num_rows
        size += batch.get_total_buffer_size()
        if rows >= max_rows or size >= max_bytes:
            yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
            pending, rows, size = [], 0, 0
    if pending:
        yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)


def _sql_str(text: str) -> str:
    return text.replace("'", "''")
