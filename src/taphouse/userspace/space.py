"""Each user's own schema ``user_<name>``: stored query results, uploads, quotas.

A user table is a table of the catalogue store in the database ``user_<name>`` (kind
``user``), so it is queried, versioned and garbage-collected exactly like a catalogue
table: every write goes to a new immutable version file (written under a temporary
name, renamed when complete) and is switched in with one metadata transaction. A crash
or a refused write therefore leaves the previous version, never half a table.

Quotas (``Settings.quota_rows`` / ``quota_bytes``) count every table in the schema,
**including the ``job_<jobid>`` tables** that keep async results: they occupy the same
disk. The row quota counts the current versions; the byte quota counts every version
still on disk, so a replaced or dropped version counts until its file is deleted (after
the maintenance grace period, or the retention period for replaced versions). Both are
enforced *while writing*: the write stops one row past what fits, or as soon as its file
grows past the bytes left, and leaves nothing; the publishing transaction checks them
again, so concurrent writes cannot add up past the quota. A job whose result would not
fit is still completed; only its ``job_<id>`` table is not kept (the job's result
document is unaffected).

A full disk fails a write with :class:`~taphouse.storage.StorageFull` (HTTP 507),
leaving the previous version.

Concurrent writes to one table are serialised by a per-table lock: a second writer gets
:class:`~taphouse.userspace.errors.TableConflict` at once rather than waiting, and a
``create`` that loses a race to another process is refused by the store's publish.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from taphouse.auth.identity import Identity
from taphouse.catalogue.model import (
    CatalogueError,
    ColumnMeta,
    DatabaseMeta,
    TableMeta,
)
from taphouse.catalogue.store import CatalogueStore, Holding
from taphouse.errors import ServiceError
from taphouse.metadata import MetadataDB
from taphouse.storage import StorageFull
from taphouse.userspace.errors import (
    TableConflict,
    UnknownTable,
    UserSpaceError,
)
from taphouse.userspace.names import (
    check_identifier,
    check_table_name,
    parse_dest,
    user_schema,
)
from taphouse.userspace.shares import remove_table_shares
from taphouse.userspace.writer import UserTableWriter

if TYPE_CHECKING:
    from taphouse.engine.duckdb import DuckDBEngine

MODES = ("create", "replace", "append")

@dataclass(frozen=True)
class Usage:
    """What a user's schema holds, against their quota."""

    rows_used: int
    rows_limit: int
    bytes_used: int
    bytes_limit: int
    tables: int
    #: Of ``bytes_used``: replaced or dropped versions still on disk.
    bytes_retained: int = 0
    #: When the next of those may be deleted (ISO time), if any.
    retained_until: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


log = logging.getLogger("taphouse")


class UserSpace:
    """Reads and writes the user schemas of one platform.

    Parameters
    ----------
    meta, catalogue, engine
        The platform's metadata database, catalogue store and DuckDB engine.
    quota_rows, quota_bytes
        Per-user limits on the rows and bytes of all their stored tables.
    """

    def __init__(self, meta: MetadataDB, catalogue: CatalogueStore, engine: DuckDBEngine, *,
                 quota_rows: int, quota_bytes: int) -> None:
        self.meta = meta
        self.catalogue = catalogue
        self.engine = engine
        self.quota_rows = quota_rows
        self.quota_bytes = quota_bytes
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # --- schemas -------------------------------------------------------------------
    def schema_of(self, identity: Identity) -> str:
        """The caller's schema name; anonymous callers have none.

        A schema of that name left by a deleted account (another owner id: ids are
        never reused) is archived first, so a re-created name inherits nothing."""
        if identity.username is None or identity.user_id is None:
            from taphouse.auth.errors import AuthError

            raise AuthError("log in to use a user space (send a token or Basic credentials)")
        check_identifier(identity.username, "user")
        name = user_schema(identity.username)
        db = self.catalogue.database(name)
        if db is not None and db.owner_id != identity.user_id:
            self._archive(db)
        return name

    def ensure_schema(self, identity: Identity) -> DatabaseMeta:
        """The caller's schema, created on first use."""
        name = self.schema_of(identity)
        db = self.catalogue.database(name)
        if db is None:
            db = self.catalogue.create_database(
                name, f"User space of {identity.username}", kind="user", public=False,
                owner_id=identity.user_id)
        return db

    def remove_owner(self, owner_id: int, *, archive: bool) -> str | None:
        """Drop, or archive for the operator, the schema of the user with id
        ``owner_id`` (the account is being deleted). Returns the archive's name."""
        archived = None
        for db in self.catalogue.databases("user"):
            if db.owner_id != owner_id:
                continue
            if archive:
                archived = self._archive(db)
            else:
                self.catalogue.drop_database(db.name)
        return archived

    def _archive(self, db: DatabaseMeta) -> str:
        # Readable by administrators only (ReadPolicy), shared with nobody, named so
        # that no account can ever own it: archived_<name>_<old owner id>.
        base = f"archived_{db.name[len('user_'):]}_{db.owner_id or 0}"
        target, n = base, 1
        while self.catalogue.database(target) is not None:
            n += 1
            target = f"{base}_{n}"
        remove_table_shares(self.meta, self.catalogue.table_ids(db.name))
        self.catalogue.rename_database(db.name, target, kind="archived")
        log.info("user schema %s archived as %s", db.name, target)
        return target

    # --- reading -------------------------------------------------------------------
    def tables(self, identity: Identity) -> list[TableMeta]:
        """The caller's own tables."""
        return self.catalogue.tables(self.schema_of(identity))

    def table(self, identity: Identity, name: str) -> TableMeta:
        """One of the caller's own tables; :class:`UnknownTable` if there is none."""
        schema = self.schema_of(identity)
        t = self.catalogue.table(schema, name) if isinstance(name, str) else None
        if t is None:
            raise UnknownTable(f"unknown table {schema}.{name}")
        return t

    def usage(self, identity: Identity) -> Usage:
        """The caller's usage and limits: rows of their tables, bytes of every version
        still on disk (replaced and dropped ones until deleted)."""
        held = self.catalogue.holding(self.schema_of(identity))
        return Usage(rows_used=held.rows - held.retained_rows, rows_limit=self.quota_rows,
                     bytes_used=held.nbytes, bytes_limit=self.quota_bytes,
                     tables=held.tables, bytes_retained=held.retained_bytes,
                     retained_until=held.next_release)

    # --- writing -------------------------------------------------------------------
    def open_table(self, identity: Identity, name: str, columns: list[ColumnMeta], *,
                   mode: str = "create", cancel: Any = None,
                   provenance: dict[str, Any] | None = None,
                   description: str | None = None, keep_order: bool = False,
                   epoch: float | None = None,
                   interrupt_also: Callable[[], None] | None = None) -> UserTableWriter:
        """Start writing the table ``name`` of the caller's schema from Arrow batches:
        push them with ``write``/``write_all``, then ``close()`` publishes (or
        ``abort()``; an exception in a ``with`` block aborts). Nothing is visible
        before ``close``; the table is locked against other writers until then.

        Parameters
        ----------
        columns
            Metadata of the batches' columns, in order (units, UCDs and descriptions
            are kept); names are made ADQL-regular and unique. A HEALPix index column
            is added when the columns hold a position (UCD ``pos.eq.ra``/``pos.eq.dec``
            or a common name such as ``ra``/``dec``).
        mode
            ``create`` (the table must not exist), ``replace`` or ``append`` (same
            column names required).
        cancel
            A :class:`~taphouse.query.cancel.CancelHandle` that may interrupt the write
            (and ``interrupt_also``: the query producing the batches).
        keep_order
            Keep the rows in the order written (the query has an ORDER BY); otherwise
            tables with positions are stored sorted by their HEALPix index.

        Raises
        ------
        UserSpaceError
            Bad name or mode, :class:`TableConflict` (exists, or being written),
            :class:`QuotaExceeded` (nothing stored), from here or from the writer.
        """
        if mode not in MODES:
            raise UserSpaceError(f"mode must be create, replace or append, not {mode!r}")
        name = check_table_name(name)
        schema = self.ensure_schema(identity).name
        lock = self._table_lock(schema, name)
        lock.__enter__()
        return UserTableWriter(self, identity, schema, name, columns, mode=mode,
                               cancel=cancel, provenance=provenance,
                               description=description, keep_order=keep_order,
                               epoch=epoch, lock=lock, interrupt_also=interrupt_also)

    def write(self, identity: Identity, name: str,
              data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
              columns: list[ColumnMeta], *, mode: str = "create", cancel: Any = None,
              provenance: dict[str, Any] | None = None, description: str | None = None,
              keep_order: bool = False, epoch: float | None = None) -> TableMeta:
        """Store every row of ``data`` (Arrow batches whose columns are ``columns``) as
        the table ``name`` of the caller's schema; see :meth:`open_table`."""
        with self.open_table(identity, name, columns, mode=mode, cancel=cancel,
                             provenance=provenance, description=description,
                             keep_order=keep_order, epoch=epoch) as table:
            table.write_all(_as_batches(data))
            return table.close()

    @contextmanager
    def _table_lock(self, schema: str, name: str) -> Iterator[None]:
        # Writers never wait: a table being written is a conflict. Taking and dropping
        # the lock under the guard lets the entry be forgotten after each write (one
        # lock per table ever written would leak) without two writers slipping in.
        with self._locks_guard:
            lock = self._locks.setdefault((schema, name), threading.Lock())
            if not lock.acquire(blocking=False):
                raise TableConflict(f"table {schema}.{name} is being written by another"
                                    " request; try again when that has finished")
        try:
            yield
        finally:
            with self._locks_guard:
                self._locks.pop((schema, name), None)
                lock.release()

    # --- management ----------------------------------------------------------------
    def rename(self, identity: Identity, name: str, new_name: str) -> TableMeta:
        self.table(identity, name)
        new_name = check_table_name(new_name)
        schema = self.schema_of(identity)
        if new_name == name:
            return self.table(identity, name)
        with self._table_lock(schema, name), self._table_lock(schema, new_name):
            if self.catalogue.table(schema, new_name) is not None:
                raise TableConflict(f"table {schema}.{new_name} already exists")
            try:
                return self.catalogue.rename_table(schema, name, new_name)
            except CatalogueError as exc:
                raise TableConflict(str(exc)) from None

    def set_description(self, identity: Identity, name: str, description: str) -> TableMeta:
        t = self.table(identity, name)
        self.catalogue.set_table_description(t.database, t.name, str(description))
        return self.table(identity, name)

    def drop(self, identity: Identity, name: str) -> None:
        schema = self.schema_of(identity)
        self.table(identity, name)
        with self._table_lock(schema, name):
            if not self.catalogue.drop_table(schema, name):
                raise UnknownTable(f"unknown table {schema}.{name}")

    # --- query results (DEST, async jobs) -------------------------------------------
    def store_query(self, prepared: Any, cancel: Any = None) -> tuple[TableMeta, int, str]:
        """Store every row of a prepared query as its ``DEST`` table: the query runs
        once, its batches go straight into the table.

        Returns the published table, the number of rows this write added, and SQL that
        reads the query's result back from it (MAXREC-limited) for the response.
        """
        spec = prepared.spec
        identity = prepared.identity
        if identity.username is None:
            from taphouse.auth.errors import AuthError

            raise AuthError("DEST stores results in your own schema: log in first")
        visible = set(prepared.scope.schemas())
        catalogues = {d.name for d in self.catalogue.databases("catalogue")}
        name = parse_dest(spec.dest, identity.username, visible=visible,
                          catalogues=catalogues)
        plan = getattr(prepared, "remote", None)  # remotes hook: say where rows came from
        description = None if plan is None else (
            f"Rows of the remote TAP service {plan.remote.name}"
            f" ({plan.remote.url}), query: {plan.adql[:1000]}")
        engine = getattr(prepared, "backend", None) or self.engine
        from taphouse.formats.result import BATCH_BYTES

        # [spark] a shared cluster runs the query in the user's own pool
        user_cursor = getattr(engine, "user_cursor", None)
        with (user_cursor(prepared.inline, identity.username) if user_cursor is not None
              else engine.cursor(prepared.inline)) as cur:
            with self.open_table(identity, name, prepared.columns, mode=spec.dest_mode,
                                 cancel=cancel, provenance=provenance_of(prepared),
                                 keep_order=(has_order_by(spec.query)
                                             or spec.dest_mode == "append"),
                                 description=description,
                                 interrupt_also=lambda: engine.interrupt(cur)) as writer:
                if cancel is not None and cancel.reason:
                    raise UserSpaceError(f"write cancelled: {cancel.reason}; nothing was"
                                         " stored")
                writer.write_all(_Deferred(
                    lambda: engine.stream(cur, prepared.sql, 65536, BATCH_BYTES),
                    # [postgres] another backend's errors in its own words
                    describe=None if engine is self.engine else engine.describe_error))
                table = writer.close()
        added = int(table.extra.get("provenance", {}).get("rows_added", table.nrows))
        sql = response_sql(table, prepared.columns, prepared.relation(table),
                           limit=prepared.limit, offset=table.nrows - added)
        return table, added, sql

    def open_job_table(self, job: Any, prepared: Any) -> UserTableWriter | None:
        """The table ``job_<id>`` of a logged-in owner, to be written from the same
        batches as the job's result document (at most MAXREC rows; sorted by HEALPix
        index where it has positions and the query set no order). None for an
        anonymous owner, or when the table cannot be started (logged; the job runs)."""
        from taphouse.userspace.names import job_table

        identity = prepared.identity
        if identity.username is None:
            return None
        prov = provenance_of(prepared)
        prov["job_id"] = job.id
        try:
            return self.open_table(identity, job_table(job.id), prepared.columns,
                                   mode="replace", provenance=prov,
                                   keep_order=has_order_by(prepared.spec.query),
                                   description=f"Result of async job {job.id}")
        except UserSpaceError as exc:
            log.warning("job %s: result table not kept: %s", job.id, exc.message)
            return None

    def finish_job_table(self, job: Any, writer: UserTableWriter) -> TableMeta | None:
        """Publish ``job_<id>`` once the result document is written. A table that does
        not fit the quota (or the disk) is not kept: the job itself succeeded."""
        try:
            return writer.close()
        except (UserSpaceError, StorageFull) as exc:
            log.warning("job %s: result table not kept: %s", job.id, exc.message)
            return None

    # --- uploads and downloads -----------------------------------------------------
    def store_upload(self, identity: Identity, name: str, data: bytes | Path, *,
                     content_type: str | None, mode: str = "create", max_rows: int,
                     description: str | None = None) -> TableMeta:
        """Store an uploaded table file (VOTable, CSV, Parquet or FITS; its bytes or the
        file they were spooled to) as ``name``."""
        from taphouse.formats import FormatError, read_upload

        name = check_table_name(name)
        try:
            arrow, columns = read_upload(data, content_type=content_type, name=name,
                                         max_rows=max_rows)
        except FormatError as exc:
            raise UserSpaceError(str(exc)) from None
        prov = {"created": _now(), "uploaded": {"content_type": content_type or "",
                                                "bytes": data.stat().st_size
                                                if isinstance(data, Path) else len(data)}}
        return self.write(identity, name, arrow, columns, mode=mode, provenance=prov,
                          description=description)

    def download(self, table: TableMeta, fmt: str, *,
                 max_bytes: int | None = None) -> tuple[Any, Iterator[bytes]]:
        """A writer for ``fmt`` (any TAP RESPONSEFORMAT) and the chunks of the table in it
        (at most ``max_bytes`` of them, as for a query result)."""
        from taphouse.formats import FormatError, ResultInfo, get_writer
        from taphouse.formats.result import BATCH_BYTES

        try:
            writer = get_writer(fmt)
        except FormatError as exc:
            raise UserSpaceError(str(exc)) from None
        def chunks() -> Iterator[bytes]:
            # The lease is taken when the first chunk is asked for and let go when the
            # stream ends or is closed (a generator never started holds nothing).
            with self.engine.lease() as lease, self.engine.cursor() as cur:
                names = ", ".join(_quote(c.name) for c in table.columns)
                reader = self.engine.stream(cur, f"SELECT {names} FROM {lease.relation(table)}",
                                            batch_bytes=BATCH_BYTES)
                info = ResultInfo(query=None, limit=None, table_name=table.name,
                                  spool_dir=self.engine.temp_dir, max_bytes=max_bytes)
                yield from writer.write(reader, table.columns, info)

        return writer, chunks()

    # --- async job results ---------------------------------------------------------
    def drop_job_table(self, owner_id: int | None, job_id: str) -> bool:
        """Remove ``job_<job_id>`` from the schema of the user with id ``owner_id`` (the
        job was destroyed)."""
        if owner_id is None:
            return False
        from taphouse.userspace.names import job_table

        for db in self.catalogue.databases("user"):
            if db.owner_id == owner_id:
                return self.catalogue.drop_table(db.name, job_table(job_id))
        return False


# --- helpers ---------------------------------------------------------------------------
def _regular_columns(columns: list[ColumnMeta]) -> list[ColumnMeta]:
    """Copies with ADQL-regular, unique, lower-case names."""
    out: list[ColumnMeta] = []
    seen: set[str] = set()
    for c in columns:
        base = re.sub(r"[^a-z0-9_]+", "_", (c.name or "").strip().lower()).strip("_") or "col"
        if not base[0].isalpha():
            base = "col_" + base
        name, k = base, 1
        while name in seen:
            name = f"{base}_{k}"
            k += 1
        seen.add(name)
        out.append(dataclasses.replace(c, name=name, std=False))
    return out


class _Deferred:
    """Batches of a stream started when first iterated (inside the writer's error
    mapping, so a query failing at once is reported like one failing later); its
    ``schema`` once started."""

    def __init__(self, start: Callable[[], Iterable[pa.RecordBatch]],
                 describe: Callable[[BaseException], str] | None = None) -> None:
        self._start = start
        self._describe = describe
        self.schema: pa.Schema | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._describe is None:
            stream = self._start()
            self.schema = getattr(stream, "schema", None)
            return iter(stream)
        return self._described()

    def _described(self) -> Iterator[pa.RecordBatch]:
        """The stream, its failures as EngineError in the words of ``describe`` (the
        backend that ran it, not the user space's engine)."""
        from taphouse.engine.errors import EngineError

        try:
            stream = self._start()
            self.schema = getattr(stream, "schema", None)
            yield from stream
        except ServiceError:
            raise
        except Exception as exc:
            assert self._describe is not None
            raise EngineError(self._describe(exc)) from None


def _as_batches(data: Any) -> Iterable[pa.RecordBatch]:
    """Batches of a pa.Table, a reader or an iterable of batches (a schema kept)."""
    if isinstance(data, pa.Table):
        reader: Iterable[pa.RecordBatch] = pa.RecordBatchReader.from_batches(
            data.schema, data.to_batches(65536))
        return reader
    batches: Iterable[pa.RecordBatch] = data
    return batches


def _retained_note(held: Holding) -> str:
    if not held.retained_bytes:
        return ""
    return (f", of which {held.retained_bytes} by replaced or dropped versions kept until"
            f" {held.next_release} or later")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- storing query results ---------------------------------------------------------------
def has_order_by(adql: str) -> bool:
    """Whether the query's result is ordered (an ORDER BY on the outermost query): then
    a stored table keeps the query's order instead of being sorted by HEALPix index."""
    from taphouse.adql import AdqlError, parse

    try:
        tree = parse(adql or "")
    except AdqlError:
        return False
    return tree.args.get("order") is not None

def provenance_of(prepared: Any) -> dict[str, Any]:
    """The provenance record of a stored query result: ADQL, time, source tables."""
    sources = sorted({f"{t.database}.{t.name}" for t in getattr(prepared, "tables", [])
                      if getattr(t, "kind", "") not in ("upload",)})
    uploads = sorted({t.name for t in getattr(prepared, "tables", [])
                      if getattr(t, "kind", "") == "upload"})
    prov: dict[str, Any] = {"adql": prepared.spec.query, "created": _now(),
                            "source_tables": sources}
    if uploads:
        prov["uploads"] = uploads
    scope = getattr(prepared, "scope", None)
    if scope is not None and any(getattr(t, "kind", "") == "tap_schema"
                                 for t in getattr(prepared, "tables", [])):
        # TAP_SCHEMA's rows describe every table the writer saw, restricted ones too
        # (lineage.record_restrictions counts those databases as the table's sources).
        prov["describes"] = list(scope.schemas())
    plan = getattr(prepared, "remote", None)
    if plan is not None:  # remotes hook: the service that answered, and what it ran
        prov["remote"] = {"name": plan.remote.name, "url": plan.remote.url,
                          "adql": plan.adql, **_remote_access(plan.remote)}
    joined = getattr(getattr(getattr(prepared, "federated", None), "plan", None),
                     "remote", None)
    if joined is not None:  # federation hook: the remote table a join read
        prov["remote"] = {"name": joined.name, "url": joined.url,
                          **_remote_access(joined)}
    return prov


def _remote_access(remote: Any) -> dict[str, Any]:
    """Whose rows a remote gives (federation/trust.py reads it): a user's own remote
    (``owner_id``), or the operator's restricted to ``groups`` when it is."""
    if remote.owner_id is not None:
        return {"owner_id": remote.owner_id}
    return {"groups": sorted(remote.groups)} if remote.groups else {}


def response_sql(table: TableMeta, columns: list[ColumnMeta], relation: str, *,
                 limit: int | None, offset: int = 0) -> str:
    """SQL that reads the query's own columns back from a stored table, MAXREC-limited
    (one extra row, so the writer can tell an overflow)."""
    names = ", ".join(_quote(c.name) for c in _regular_columns(columns))
    sql = f"SELECT {names} FROM {relation}"
    if limit is not None:
        sql += f" LIMIT {limit + 1}"
    if offset:
        sql += f" OFFSET {offset}"
    return sql
