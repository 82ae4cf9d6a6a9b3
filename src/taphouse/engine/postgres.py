"""PostgreSQL backend support: the service functions and loading catalogue tables.

SQL from ``taphouse.adql.translate(..., dialect="postgres")`` calls the same service
functions as on DuckDB (``ivo_healpix_index``, ``taphouse_healpix_neighbours``,
``taphouse_contains``, ``taphouse_intersects``, ``ivo_hasword``, ``ivo_epoch_prop_pos``). Here they are
plain SQL and PL/pgSQL (``postgres_functions.sql``), so no extension (pg_sphere, q3c,
healpix) is needed. A catalogue table is loaded from Arrow with ``COPY``, with its
HEALPix index column computed by cdshealpix, rows in index order and a B-tree index on
it, which the cone search's index ranges use.

The functions take a psycopg 3 connection (``psycopg`` is imported by the caller).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from taphouse.catalogue.model import HEALPIX_COLUMN, HEALPIX_ORDER, TableMeta
from taphouse.engine.backend import TableWriter
from taphouse.engine.errors import EngineError, TempTableTooLarge
from taphouse.engine.functions import ServiceFunction
from taphouse.errors import ServiceError

if TYPE_CHECKING:
    from taphouse.secrets import SecretStore

log = logging.getLogger("taphouse.postgres")

FUNCTIONS_SQL = "postgres_functions.sql"


class PostgresError(EngineError):
    """Loading into PostgreSQL failed; the message says what to change."""


def functions_sql() -> str:
    """The text of ``postgres_functions.sql`` (CREATE OR REPLACE statements)."""
    return resources.files("taphouse.engine").joinpath(FUNCTIONS_SQL).read_text("utf-8")


def install_postgres_functions(conn: Any) -> None:
    """Create (or replace) the ADQL service functions in the connection's database.

    Parameters
    ----------
    conn
        A psycopg 3 connection; the functions go to the first schema of its
        ``search_path`` (usually ``public``). Committed on return.
    """
    conn.execute(functions_sql())
    conn.commit()


def quote_identifier(name: str) -> str:
    """A PostgreSQL delimited identifier."""
    return '"' + name.replace('"', '""') + '"'


def relation_name(schema: str, table: str) -> str:
    """The quoted SQL relation ``"schema"."table"`` (for a ``Scope.relation``)."""
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    if (pa.types.is_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type):
        return "double precision[]"
    if _int_list(t):
        return "bigint[]"
    raise PostgresError(f"no PostgreSQL type for Arrow type {t}; convert the column first")


def healpix_index(ra: Any, dec: Any, order: int = HEALPIX_ORDER) -> pa.Array:
    """Nested HEALPix index at ``order`` of positions in degrees (NULL where missing)."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    ra_a = pa.array(ra, pa.float64()) if not isinstance(ra, pa.Array) else ra
    dec_a = pa.array(dec, pa.float64()) if not isinstance(dec, pa.Array) else dec
    ok = ~(np.asarray(ra_a.is_null()) | np.asarray(dec_a.is_null()))
    r = np.asarray(ra_a.fill_null(0.0), dtype=np.float64)
    d = np.asarray(dec_a.fill_null(0.0), dtype=np.float64)
    ok &= np.isfinite(r) & (np.abs(d) <= 90.0)
    out = np.zeros(len(r), dtype=np.int64)
    if ok.any():
        out[ok] = nested.lonlat_to_healpix(Longitude(np.mod(r[ok], 360.0) * u.deg),
                                           Latitude(d[ok] * u.deg), order).astype(np.int64)
    return pa.array(out, pa.int64(), mask=~ok)


def load_table(conn: Any, schema: str, name: str, table: pa.Table, *,
               ra_column: str | None = None, dec_column: str | None = None,
               replace: bool = True) -> int:
    """Create ``schema.name`` from an Arrow table and fill it with ``COPY``.

    With ``ra_column`` and ``dec_column`` the table gets the HEALPix index column
    (``healpix_index``, nested, order 29), its rows are written in index order and the
    column gets a B-tree index, so ``translate(..., dialect="postgres")`` cone searches
    read only the index ranges covering the circle.

    Parameters
    ----------
    conn
        A psycopg 3 connection. Committed on return.
    schema, name
        Target schema (created if missing) and table name.
    table
        The rows. Columns of Arrow types with a PostgreSQL equivalent (integers, floats,
        booleans, strings, timestamps, float lists as ``double precision[]``).
    replace
        Drop an existing table of that name first.

    Returns
    -------
    int
        The number of rows written.
    """
    if (ra_column is None) != (dec_column is None):
        raise PostgresError("give both ra_column and dec_column, or neither")
    if ra_column is not None:
        for col in (ra_column, dec_column):
            if col not in table.column_names:
                raise PostgresError(f"no column {col!r} in the table to load")
        index = healpix_index(table[ra_column].combine_chunks(),
                              table[dec_column].combine_chunks())
        if HEALPIX_COLUMN in table.column_names:
            table = table.drop_columns([HEALPIX_COLUMN])
        table = table.append_column(HEALPIX_COLUMN, index)
        table = table.sort_by(HEALPIX_COLUMN)
    rel = relation_name(schema, name)
    cols = ", ".join(f"{quote_identifier(f.name)} {_pg_type(f.type)}" for f in table.schema)
    names = ", ".join(quote_identifier(n) for n in table.column_names)
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
        if replace:
            cur.execute(f"DROP TABLE IF EXISTS {rel}")
        cur.execute(f"CREATE TABLE {rel} ({cols})")
        _copy(cur, f"COPY {rel} ({names}) FROM STDIN", table)
        if ra_column is not None:
            cur.execute(f"CREATE INDEX ON {rel} ({quote_identifier(HEALPIX_COLUMN)})")
        cur.execute(f"ANALYZE {rel}")
    conn.commit()
    return int(table.num_rows)


def _int_list(t: pa.DataType) -> bool:
    return bool((pa.types.is_list(t) or pa.types.is_large_list(t))
                and pa.types.is_integer(t.value_type))


def _array_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A list-of-integers column as PostgreSQL array literals (``{1,2,3}``; NULL stays
    NULL), which COPY's CSV reads into ``bigint[]``."""
    import pyarrow.compute as pc

    text = pc.binary_join(pc.cast(column, pa.list_(pa.string())), ",")
    return pc.binary_join_element_wise("{", text, "}", "")


def _copy(cur: Any, copy_sql: str, table: pa.Table) -> None:
    for i, f in enumerate(table.schema):
        if _int_list(f.type):  # integer arrays: as text, so the fast CSV path takes them
            table = table.set_column(i, f.name, _array_text(table.column(i)))
    lists = any(pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)
                or pa.types.is_large_list(f.type) for f in table.schema)
    if lists:  # arrays have no CSV form: row by row
        with cur.copy(copy_sql) as copy:
            for batch in table.to_batches(max_chunksize=65536):
                for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                    copy.write_row(row)
        return
    # CSV written by Arrow is ~5x faster than rows from Python. Arrow quotes every
    # string, so an empty string stays one and an unquoted empty field is NULL.
    import pyarrow.csv as pacsv

    with cur.copy(copy_sql + " (FORMAT csv)") as copy:
        for batch in table.to_batches(max_chunksize=65536):
            sink = pa.BufferOutputStream()
            pacsv.write_csv(pa.Table.from_batches([batch]), sink,
                            pacsv.WriteOptions(include_header=False))
            copy.write(sink.getvalue().to_pybytes())


# --- the backend behind the Backend protocol ---------------------------------------------
#: Schema of the service functions in a served database (the query role's search_path).
FUNCTIONS_SCHEMA = "taphouse"
#: Seconds between two full checks of the query role's privileges (see
#: :meth:`PostgresBackend._check_role`).
ROLE_RECHECK_SECONDS = 10.0
#: Where a catalogue table's PostgreSQL relation is recorded in its version metadata.
RELATION_KEY = "postgres_relation"

# PostgreSQL type OIDs -> Arrow types of the result batches.
_OID_ARROW: dict[int, pa.DataType] = {
    16: pa.bool_(), 21: pa.int16(), 23: pa.int32(), 20: pa.int64(), 26: pa.int64(),
    700: pa.float32(), 701: pa.float64(), 1700: pa.float64(),
    25: pa.string(), 1043: pa.string(), 1042: pa.string(), 19: pa.string(),
    18: pa.string(), 1082: pa.date32(), 1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"), 17: pa.binary(),
    1000: pa.list_(pa.bool_()), 1005: pa.list_(pa.int16()), 1007: pa.list_(pa.int32()),
    1016: pa.list_(pa.int64()), 1021: pa.list_(pa.float32()),
    1022: pa.list_(pa.float64()), 1231: pa.list_(pa.float64()), 1009: pa.list_(pa.string()),
}


def pg_relation(table: TableMeta) -> tuple[str, str]:
    """(schema, table) in PostgreSQL of a catalogue table served from there."""
    loc = table.extra.get(RELATION_KEY)
    if isinstance(loc, list | tuple) and len(loc) == 2:
        return str(loc[0]), str(loc[1])
    return table.database, table.name


def session_options(*, statement_timeout_ms: int,
                    search_path: str = FUNCTIONS_SCHEMA) -> str:
    """The libpq ``options`` every query connection starts with: the pinned
    ``search_path`` (the service functions; catalogue relations are always written
    schema-qualified, temporary tables come first anyway), no JIT (its compile time
    costs more than short catalogue queries gain), a backstop statement timeout
    behind the service's own time limits, and standard string literals."""
    return (f"-c search_path={search_path} -c jit=off"
            f" -c statement_timeout={int(statement_timeout_ms)}"
            " -c idle_in_transaction_session_timeout=600000"
            # every statement of the session is read-only unless it says otherwise: the
            # query runs in autocommit (one round trip), the per-request tables are
            # copied in an explicit READ WRITE transaction first
            " -c default_transaction_read_only=on"
            # SQL is generated with plain '...' literals: a backslash in them must stay a
            # character whatever the role or database sets (off: the next quote no longer
            # ends the string and the rest of the ADQL text runs as SQL)
            " -c standard_conforming_strings=on")


class PgCursor:
    """One query's connection (from the pool): what ``Backend.cursor`` yields.

    ``interrupt()`` sends PostgreSQL's cancel request for the running statement (the
    protocol's side door: what ``pg_cancel_backend(pid)`` does, without needing a
    second pooled connection while the pool may be exhausted)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pid = conn.info.backend_pid
        self.inline: dict[str, Any] = {}
        self.temp_tables: list[str] = []
        self.sent: list[str] = []

    def interrupt(self) -> None:
        try:
            self.conn.cancel_safe(timeout=5.0)
        except Exception as exc:  # noqa: BLE001  (a cancel that cannot be sent: logged)
            log.warning("could not cancel PostgreSQL backend %s: %s", self.pid,
                        type(exc).__name__)


class PgLease:
    """Nothing to hold: a PostgreSQL relation is there for as long as it is registered."""

    def relation(self, table: TableMeta) -> str:
        return relation_name(*pg_relation(table))

    def release(self) -> None:
        return None


class PostgresBackend:
    """Catalogue tables that live in a PostgreSQL database, queried in place.

    Every query runs on a pooled connection (psycopg 3) of the query role in a
    ``READ ONLY`` transaction; per-request tables (TAP_UPLOAD, a user table joined with a
    catalogue table) are first copied into temporary tables, outside that transaction
    (the role has TEMPORARY, nothing else that writes). Connections start with a pinned
    ``search_path``, ``jit=off`` and a statement timeout (:func:`session_options`).

    Parameters
    ----------
    dsn
        The query role's connection string (a secret: never logged).
    pool_size
        Most connections at once.
    statement_timeout
        Seconds after which PostgreSQL itself cancels a statement (a backstop: the
        service's time limits cancel first).
    temp_max_rows
        Most rows a per-request table may have to be copied here.
    role_recheck
        Seconds between two full checks of the query role's privileges (on a lease;
        0: on every lease). Its attributes and memberships are checked on every lease.
    name
        What errors and logs call it (the connection config's name, never the DSN).
    """

    dialect = "postgres"

    def __init__(self, dsn: str, *, pool_size: int = 8, statement_timeout: float = 4 * 3600.0,
                 temp_max_rows: int = 1_000_000, name: str = "postgres",
                 search_path: str = FUNCTIONS_SCHEMA,
                 role_recheck: float = ROLE_RECHECK_SECONDS) -> None:
        from psycopg_pool import ConnectionPool

        self.name = name
        self.temp_max_rows = temp_max_rows
        self.role_recheck = role_recheck
        #: (role, problems) while the query role may do more than read (_check_role).
        self._refusal: tuple[str, list[str]] | None = None
        self._checked = -math.inf  # when its privileges were last checked in full
        options = session_options(statement_timeout_ms=int(statement_timeout * 1000),
                                  search_path=search_path)
        self.pool = ConnectionPool(
            dsn, min_size=0, max_size=max(1, pool_size), open=True, timeout=30.0,
            kwargs={"autocommit": True, "options": options,
                    "application_name": "taphouse"},
            check=self._check_role, reset=_reset, name=f"taphouse-{name}")
        self._sent_hook: Callable[[str], None] | None = None

    # --- Backend protocol ---------------------------------------------------------------
    def lease(self) -> PgLease:
        return PgLease()

    def relation(self, table: TableMeta) -> str:
        return relation_name(*pg_relation(table))

    @contextmanager
    def cursor(self, inline: dict[str, Any] | None = None) -> Iterator[PgCursor]:
        """A pooled connection for one query; its per-request tables are copied into
        temporary tables by :meth:`stream`, before the read-only transaction (so a
        table over the row cap is the query's error)."""
        try:
            pooled = self.pool.connection()
            conn = pooled.__enter__()
        except Exception as exc:
            raise PostgresError(f"the PostgreSQL database {self.name} cannot be reached"
                                f" ({type(exc).__name__}); try again later", 503) from None
        refused = self._refusal
        if refused:
            pooled.__exit__(None, None, None)
            # any TAP caller reads this: what the role may do, and on which objects
            # (perhaps outside the catalogue), is for the server log (_check_role)
            raise PostgresError(
                f"the PostgreSQL database {self.name} is unavailable: its query role is"
                " refused by the server's safety check; the operator has the details in"
                " the server log", 503)
        cur = PgCursor(conn)
        cur.inline = dict(inline or {})
        try:
            yield cur
        finally:
            try:
                if conn.info.transaction_status != 0:  # not idle: end what was begun
                    conn.execute("ROLLBACK")
                if cur.temp_tables:
                    conn.execute("DISCARD TEMP")
            except Exception:  # noqa: BLE001  (the pool checks it, or drops it)
                log.warning("could not reset a PostgreSQL connection after a query")
                _DIRTY.add(conn)
            pooled.__exit__(None, None, None)

    def stream(self, cur: PgCursor, sql: str, batch_rows: int = 65536,
               batch_bytes: int | None = None) -> Iterator[pa.RecordBatch]:
        """Run ``sql`` (in the read-only transaction of ``cur``) with a server-side
        cursor and stream its rows as Arrow batches; the first batch is fetched before
        this returns, so errors surface here."""
        if self._sent_hook is not None:
            self._sent_hook(sql)
        cur.sent.append(sql)
        for name, data in cur.inline.items():
            self.load_temp_table(cur, name, data() if callable(data) else data,
                                 self.temp_max_rows)
        cur.inline = {}
        # autocommit: the statement is its own transaction, read-only by the session's
        # default (session_options); rows come in chunks as the server sends them
        # (libpq's chunked mode), not held whole by the client, in one round trip
        # (no BEGIN, DECLARE, FETCH, CLOSE, ROLLBACK)
        client = cur.conn.cursor()
        rows = client.stream(sql, size=_CHUNK_ROWS)
        try:
            first = list(itertools.islice(rows, _FIRST_ROWS))
            description = client.description or []  # None: no row at all
            types = [_OID_ARROW.get(d.type_code, pa.string()) for d in description]
            names = [d.name for d in description]
        except BaseException:
            rows.close()
            client.close()
            raise
        n = batch_rows
        if batch_bytes is not None:
            n = max(1, min(batch_rows, batch_bytes // max(64 * len(names), 1)))
        return _stream_rows(client, rows, first, n, names, types)

    def write_table(self, sql: str, path: Path, *, order_by: str | None = None,
                    inline: dict[str, Any] | None = None, cursor: Any = None,
                    max_bytes: int | None = None) -> int:
        raise PostgresError(
            f"storing a result of the PostgreSQL database {self.name} as a table is not"
            " available yet: run the query, then upload its result to your user space")

    def open_writer(self, schema: pa.Schema, path: Path, *, order_by: str | None = None,
                    max_bytes: int | None = None, cursor: Any = None) -> TableWriter:
        raise EngineError("table versions are written by the embedded engine, not in"
                          f" the PostgreSQL database {self.name}")

    def write_arrow(self, batches: Iterable[pa.RecordBatch], schema: pa.Schema,
                    path: Path, *, order_by: str | None = None,
                    max_bytes: int | None = None, cursor: Any = None) -> int:
        raise EngineError("table versions are written by the embedded engine, not in"
                          f" the PostgreSQL database {self.name}")

    def interrupt(self, cur: Any) -> None:
        """Cancel the statement running on ``cur`` (PostgreSQL's cancel request)."""
        if isinstance(cur, PgCursor):
            cur.interrupt()

    def limit(self, cur: Any, *, seconds: float | None = None,
              memory_bytes: int | None = None) -> None:
        """``statement_timeout`` and ``work_mem`` of ``cur``'s session (reset when the
        connection goes back to the pool)."""
        _DIRTY.add(cur.conn)  # RESET ALL when it goes back to the pool
        if seconds is not None:
            cur.conn.execute("SELECT set_config('statement_timeout', %s, false)",
                             (str(max(1, int(seconds * 1000))),))
        if memory_bytes is not None:
            # work_mem bounds each sort or hash of a query: a quarter of the whole
            kb = max(64, int(memory_bytes) // 4 // 1024)
            cur.conn.execute("SELECT set_config('work_mem', %s, false)", (f"{kb}kB",))

    def forget(self, version_id: int) -> None:
        return None

    def detach_idle(self, idle_seconds: float | None = None) -> int:
        return 0

    def functions(self) -> tuple[ServiceFunction, ...]:
        from taphouse.engine.functions import service_functions

        return service_functions()

    # --- temporary tables and errors -------------------------------------------------------
    def load_temp_table(self, cur: Any, name: str,
                        data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
                        max_rows: int) -> int:
        """Copy ``data`` (an Arrow table, a record-batch reader or batches) into a
        temporary table ``name`` on ``cur``'s connection, outside any read-only
        transaction; more than ``max_rows`` rows: :class:`TempTableTooLarge`, nothing
        loaded (a reader is read at most ``max_rows + 1`` rows). Returns the rows."""
        if not _IDENTIFIER.fullmatch(name or ""):
            raise EngineError(f"{name!r} is not a valid temporary table name (letters,"
                              " digits and _, not starting with a digit)")
        table = arrow_table(data, max_rows + 1)
        if table.num_rows > max_rows:
            raise TempTableTooLarge(_display_name(name), max_rows)
        rel = quote_identifier(name)
        cols = ", ".join(f"{quote_identifier(f.name)} {_pg_type(f.type)}"
                         for f in table.schema)
        names = ", ".join(quote_identifier(n) for n in table.column_names)
        conn = cur.conn
        begun = conn.info.transaction_status == 0
        with conn.cursor() as c:
            if begun:  # the session is read-only by default: this one writes
                c.execute("BEGIN TRANSACTION READ WRITE")
            try:
                c.execute(f"CREATE TEMPORARY TABLE {rel} ({cols})")
                cur.temp_tables.append(name)
                if table.num_rows:
                    _copy(c, f"COPY {rel} ({names}) FROM STDIN", table)
                c.execute(f"ANALYZE {rel}")
            except BaseException:
                if begun:
                    conn.execute("ROLLBACK")
                raise
            if begun:
                c.execute("COMMIT")
        return int(table.num_rows)

    def describe_error(self, exc: BaseException) -> str:
        """A user's message for a PostgreSQL error: its primary message (and hint),
        never the server's internals (no DSN, no file paths)."""
        import psycopg

        if isinstance(exc, ServiceError):  # refused here (row cap, unreachable)
            return exc.message

        if isinstance(exc, psycopg.errors.QueryCanceled):
            return "query cancelled by the database (its statement time limit)"
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return "the query tried to write, which is refused"
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return "the query role may not read that (permission denied in PostgreSQL)"
        if isinstance(exc, psycopg.OperationalError):
            return f"the PostgreSQL database {self.name} cannot be reached"
        diag = getattr(exc, "diag", None)
        primary = getattr(diag, "message_primary", None) if diag is not None else None
        text = primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = getattr(diag, "message_hint", None) if diag is not None else None
        return text + (f" ({hint})" if hint else "")

    def close(self) -> None:
        self.pool.close()

    def _check_role(self, conn: Any) -> None:
        """The pool's check on every lease, in place of its empty query (the same one
        round trip): the connection works, and what its role may do beyond reading
        (made superuser after registration, granted a write, ...) is noted for
        :meth:`cursor` to refuse. The role's attributes and memberships are checked on
        every lease; its privileges on every table, schema and object (a cost that
        grows with the database's tables: ~10 ms for 500 at load 10) on one lease every
        ``role_recheck`` seconds, and on every lease while it is refused (all it may do
        is logged; taking the grant back makes the database answer again at once). The
        server log names the role, what it may do and on which objects, once each time
        that changes; the TAP caller's 503 says only that the database is refused.
        Raising here would make the pool retry until its timeout."""
        from taphouse.engine.pg_register import role_problems

        now = time.monotonic()
        full = self._refusal is not None or now - self._checked >= self.role_recheck
        user, problems = role_problems(conn, writes=full)
        if problems and not full:  # refused: say all it may do
            full = True
            user, problems = role_problems(conn, writes=True)
        if full:
            self._checked = now
        if problems:
            if self._refusal != (user, problems):  # once a change, not once a lease
                log.warning("PostgreSQL database %s: its query role %r may do more than"
                            " read (%s), which it could not when it was registered:"
                            " queries are refused (503) until that is taken back (or"
                            " the database is registered with a reading role)",
                            self.name, user, "; ".join(problems))
            self._refusal = (user, problems)
        elif full:
            self._refusal = None


#: Connections whose session settings a query changed (``limit``): RESET ALL on return.
_DIRTY: weakref.WeakSet[Any] = weakref.WeakSet()
#: Rows per chunk the server sends; rows of the first batch read before stream returns.
_CHUNK_ROWS = 4096
_FIRST_ROWS = 4096


def _reset(conn: Any) -> None:
    # a connection back in the pool: no temporary table (cursor() dropped them), no
    # transaction, settings as it started with (only if a query changed them)
    if conn.info.transaction_status != 0:
        conn.execute("ROLLBACK")
    if conn in _DIRTY:
        conn.execute("DISCARD TEMP; RESET ALL")
        _DIRTY.discard(conn)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _display_name(name: str) -> str:
    """How an error names a per-request table (``_inline_tap_upload_mine`` -> the
    upload ``tap_upload.mine`` as the query wrote it)."""
    bare = name.removeprefix("_inline_")
    if bare.startswith("tap_upload_"):
        return "tap_upload." + bare[len("tap_upload_"):]
    return bare


def arrow_table(data: Any, at_most: int | None = None) -> pa.Table:
    """``data`` as one Arrow table (a reader or batches read up to ``at_most`` rows)."""
    if isinstance(data, pa.Table):
        return data
    if hasattr(data, "to_arrow_table"):  # a DuckDB relation
        return data.to_arrow_table()
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    batches: list[pa.RecordBatch] = []
    rows = 0
    schema = getattr(data, "schema", None)
    for batch in data:
        batches.append(batch)
        rows += batch.num_rows
        schema = batch.schema
        if at_most is not None and rows >= at_most:
            break
    if schema is None:
        raise EngineError("a temporary table without columns")
    return pa.Table.from_batches(batches, schema=schema)


def _stream_rows(client: Any, stream: Generator[tuple[Any, ...], None, None],
                 first: list[tuple[Any, ...]], n: int, names: list[str],
                 types: list[pa.DataType]) -> Iterator[pa.RecordBatch]:
    try:
        rows = first
        while len(rows) < n:  # the first batch: up to n rows
            more = list(itertools.islice(stream, n - len(rows)))
            rows += more
            if not more:
                break
        while True:
            if rows:
                yield _batch(rows, names, types)
            if len(rows) < n:
                return
            rows = list(itertools.islice(stream, n))
    finally:
        stream.close()  # stopped early: psycopg cancels the rest of the statement
        client.close()


def _batch(rows: list[tuple[Any, ...]], names: list[str],
           types: list[pa.DataType]) -> pa.RecordBatch:
    arrays = []
    for i, t in enumerate(types):
        values = [r[i] for r in rows]
        if pa.types.is_floating(t):
            values = [None if v is None else float(v) for v in values]
        elif pa.types.is_string(t):
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        arrays.append(pa.array(values, type=t))
    return pa.RecordBatch.from_arrays(arrays, names=names)


def postgres_backends(secrets: SecretStore, *, pool_size: int, statement_timeout: float,
                      temp_max_rows: int) -> Callable[[str | None], PostgresBackend]:
    """The ``postgres`` factory of :class:`taphouse.engine.routing.BackendRouter`: the
    backend of a registered database, from its query DSN sealed in ``secrets`` (a
    :class:`taphouse.secrets.SecretStore`) under ``postgres:<ref>``."""

    def make(ref: str | None) -> PostgresBackend:
        from taphouse.engine.pg_register import secret_name

        sealed = secrets.get(secret_name(ref)) if ref else None
        if sealed is None:
            raise PostgresError(f"no connection is stored for the PostgreSQL database"
                                f" {ref!r}: register it again (taphouse db add-postgres)",
                                503)
        return PostgresBackend(sealed.reveal(), pool_size=pool_size,
                               statement_timeout=statement_timeout,
                               temp_max_rows=temp_max_rows, name=ref or "postgres")

    return make
