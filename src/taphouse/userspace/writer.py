"""A user table being written from Arrow batches (:meth:`UserSpace.open_table`).

Every write of a user table goes through :class:`UserTableWriter`: the batches are
pushed one at a time (from a query's stream, an upload, a remote service's answer), each
gets its ADQL-regular column names and, when the columns hold a position, the internal
HEALPix index column; the rows go to a new version file through the backend's
:meth:`~taphouse.engine.backend.Backend.open_writer` (written aside, sorted by the
HEALPix index at close unless the order is kept) and are published in one metadata
transaction by :meth:`close`. The quotas are enforced while writing: one row past what
fits, or a file growing past the bytes left, stops the write and leaves nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from taphouse.auth.identity import Identity
from taphouse.catalogue.model import (
    HEALPIX_COLUMN,
    HEALPIX_ORDER,
    CatalogueError,
    ColumnMeta,
    TableMeta,
    position_columns,
)
from taphouse.catalogue.store import DatabaseFull, remove_version_file
from taphouse.engine.errors import WriteLimitExceeded
from taphouse.errors import ServiceError
from taphouse.storage import StorageFull, is_disk_full
from taphouse.userspace.errors import QuotaExceeded, TableConflict, UserSpaceError
from taphouse.userspace.lineage import record_restrictions
from taphouse.userspace.names import JOB_PREFIX

if TYPE_CHECKING:
    from taphouse.userspace.space import UserSpace

log = logging.getLogger("taphouse")


class UserTableWriter:
    """The table ``schema.name`` being written; see the module's docstring.

    Use as a context manager (an exception aborts), or call :meth:`close` / :meth:`abort`.
    :meth:`write` takes batches whose columns are, in order, ``columns``.
    """

    def __init__(self, space: UserSpace, identity: Identity, schema: str, name: str,
                 columns: list[ColumnMeta], *, mode: str, cancel: Any,
                 provenance: dict[str, Any] | None, description: str | None,
                 keep_order: bool, epoch: float | None, lock: AbstractContextManager[Any],
                 interrupt_also: Callable[[], None] | None = None) -> None:
        from taphouse.userspace.space import _regular_columns

        self.space, self.identity, self.schema, self.name = space, identity, schema, name
        self.mode, self.cancel, self.provenance = mode, cancel, provenance
        self.description, self.keep_order, self.epoch = description, keep_order, epoch
        self._lock = lock
        self._interrupt_also = interrupt_also
        self._done = False
        self._writer: Any = None
        self._cursor_cm: Any = None
        self._old_cm: AbstractContextManager[Any] | None = None
        self.cursor: Any = None
        catalogue = space.catalogue
        try:
            self.existing = existing = catalogue.table(schema, name)
            if existing is not None and mode == "create":
                raise TableConflict(f"table {schema}.{name} already exists; choose another"
                                    " name or use mode replace (DEST_MODE=replace) or append")
            self.columns = cols = _regular_columns(columns)
            self.ra, self.dec = ra, dec = position_columns(cols)
            self.positions = bool(ra and dec)
            self.stored = cols
            if existing is not None and mode == "append":
                old_names = [c.name for c in existing.columns]
                if old_names != [c.name for c in cols] or (
                        (existing.healpix_column is None) != (not self.positions)):
                    raise UserSpaceError(
                        f"cannot append to {schema}.{name}: its columns are"
                        f" ({', '.join(old_names)}), the new rows have"
                        f" ({', '.join(c.name for c in cols)})")
                self.stored = existing.columns
            # Rows of the schema's tables without the version this write replaces; bytes
            # of everything on disk, that version included (retained after the switch).
            self.held = held = catalogue.holding(schema)
            self.rows_used = held.rows - held.retained_rows
            base_rows = self.rows_used - (existing.nrows if existing is not None else 0)
            self.room = max(space.quota_rows - base_rows, 0)
            self.room_bytes = max(space.quota_bytes - held.nbytes, 0)
            self.path = catalogue.new_version_path(schema, name)
            self.rows = 0
            if cancel is not None:  # from now on: a cancel stops the write and its source
                cancel.attach(self._interrupt)
        except BaseException:
            self._done = True
            lock.__exit__(None, None, None)
            raise

    # --- errors ------------------------------------------------------------------------
    def _over_bytes(self, needed: str) -> QuotaExceeded:
        from taphouse.userspace.space import _retained_note

        return QuotaExceeded(
            f"quota exceeded: {self.held.nbytes} of {self.space.quota_bytes} used (bytes)"
            f"{_retained_note(self.held)}; {self.schema}.{self.name} would need {needed}."
            " Nothing was stored; drop tables (or use a smaller result) to make room")

    def _over_rows(self, needed: str, used: int | None = None) -> QuotaExceeded:
        return QuotaExceeded(
            f"quota exceeded: {self.rows_used if used is None else used} of"
            f" {self.space.quota_rows} used (rows); {self.schema}.{self.name} would need"
            f" {needed}. Nothing was stored; drop tables (or use a smaller result) to make"
            " room")

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """Any failure: nothing kept, and the error a user can act on."""
        if self._done:
            raise UserSpaceError(f"the write of {self.schema}.{self.name} is over")
        try:
            yield
        except BaseException as exc:
            self.abort()
            if self.cancel is not None and self.cancel.reason:
                raise UserSpaceError(f"write cancelled: {self.cancel.reason}; nothing was"
                                     " stored") from None
            if isinstance(exc, WriteLimitExceeded):
                raise self._over_bytes(f"more than the {self.room_bytes} bytes left") from None
            if isinstance(exc, (UserSpaceError, KeyboardInterrupt, SystemExit, StorageFull)):
                raise
            if is_disk_full(exc):
                raise StorageFull(what=f"{self.schema}.{self.name} was not stored; the table"
                                  " is as it was") from None
            if isinstance(exc, ServiceError):
                raise UserSpaceError(f"cannot store the table: {exc.message}",
                                     exc.status) from None
            engine = self.space.engine
            raise UserSpaceError("cannot store the table:"
                                 f" {engine.describe_error(exc)}") from None

    # --- writing -----------------------------------------------------------------------
    def _interrupt(self) -> None:
        cursor = self.cursor
        if cursor is not None:
            self.space.engine.interrupt(cursor)
        if self._interrupt_also is not None:
            self._interrupt_also()

    def start(self, schema: pa.Schema) -> None:
        """Fix the column types from ``schema`` (else the first batch's): a result of
        no rows is still a table (safe to call again)."""
        if self._writer is None:
            with self._mapped():
                self._start(schema)

    def _start(self, schema: pa.Schema) -> None:
        """Open the backend writer for batches of ``schema`` (the first batch's)."""
        engine = self.space.engine
        if len(schema) != len(self.columns):
            raise UserSpaceError(f"{len(schema)} columns of data for the"
                                 f" {len(self.columns)} columns of {self.schema}.{self.name}")
        fields = [pa.field(c.name, f.type) for c, f in zip(self.columns, schema, strict=True)]
        if self.positions:
            fields.append(pa.field(HEALPIX_COLUMN, pa.int64()))
        self.arrow_schema = pa.schema(fields)
        self._cursor_cm = engine.cursor()
        self.cursor = self._cursor_cm.__enter__()
        order_by = (f'"{HEALPIX_COLUMN}"' if self.positions and not self.keep_order
                    else None)
        write_schema = self.arrow_schema
        appending = self.existing is not None and self.mode == "append"
        if appending:
            old = self._old_rows()
            write_schema = old.schema
        self._writer = engine.open_writer(write_schema, self.path, order_by=order_by,
                                          max_bytes=self.room_bytes, cursor=self.cursor)
        if appending:
            for batch in old:  # the existing rows first (they count against the room)
                self._push(batch)

    def _old_rows(self) -> Any:
        existing, engine = self.existing, self.space.engine
        assert existing is not None
        names = [c.name for c in existing.columns]
        if existing.healpix_column is not None:
            names.append(existing.healpix_column)
        lease = engine.lease()
        self._lease = lease
        # Read on a cursor of its own: the writer's runs the inserts meanwhile.
        self._old_cm = engine.cursor()
        cur = self._old_cm.__enter__()
        select = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
        return engine.stream(cur, f"SELECT {select} FROM {lease.relation(existing)}", 65536)

    def _push(self, batch: pa.RecordBatch) -> None:
        if self.rows + batch.num_rows > self.room:
            raise self._over_rows(f"more than {self.room} rows")
        self._writer.write(batch)
        self.rows += batch.num_rows

    def write(self, batch: pa.RecordBatch) -> None:
        """Add one batch (columns in the order of ``columns``)."""
        with self._mapped():
            if self.cancel is not None and self.cancel.reason:
                raise UserSpaceError("cancelled")
            if self._writer is None:
                self._start(batch.schema)
            arrays = list(batch.columns)
            if self.positions:
                arrays.append(_healpix(batch, self.columns, str(self.ra), str(self.dec)))
            out = pa.RecordBatch.from_arrays(arrays, names=self.arrow_schema.names)
            self._push(out)

    def write_all(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Add every batch (an error reading them aborts the write, as a failed write)."""
        with self._mapped():
            for batch in batches:
                self.write(batch)
            schema = getattr(batches, "schema", None)
            if self._writer is None and schema is not None:
                self._start(schema)

    def close(self) -> TableMeta:
        """Finish the version file and publish it; returns the published table."""
        with self._mapped():
            if self._writer is None:
                raise UserSpaceError(f"no data for {self.schema}.{self.name}: no rows and"
                                     " no column types")
            nrows = self._writer.close()
            self._release()
            published = self._publish(nrows)
        self._finish()
        return published

    def abort(self) -> None:
        """Stop; nothing is kept (safe to call more than once)."""
        if self._done:
            return
        try:
            if self._writer is not None:
                self._writer.abort()
            remove_version_file(self.path)
        finally:
            self._release()
            self._finish()

    def _release(self) -> None:
        if self.cancel is not None:
            self.cancel.detach()
        if self._cursor_cm is not None:
            cm, self._cursor_cm = self._cursor_cm, None
            cm.__exit__(None, None, None)
        old_cm = getattr(self, "_old_cm", None)
        if old_cm is not None:
            self._old_cm = None
            old_cm.__exit__(None, None, None)
        lease = getattr(self, "_lease", None)
        if lease is not None:
            lease.release()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._lock.__exit__(None, None, None)

    def __enter__(self) -> UserTableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.abort()

    # --- publishing ----------------------------------------------------------------------
    def _publish(self, nrows: int) -> TableMeta:
        from taphouse.userspace.space import _now

        space, schema, name, existing = self.space, self.schema, self.name, self.existing
        mode, ra, dec = self.mode, self.ra, self.dec
        try:
            size = self.path.stat().st_size
            prov = dict(self.provenance or {})
            prov.setdefault("created", _now())
            prov["mode"] = mode
            prov["rows_added"] = nrows - (existing.nrows if existing is not None
                                          and mode == "append" else 0)
            restricted = record_restrictions(space.catalogue, prov)
            if restricted:  # they still count when a source table is dropped
                prov["restricted"] = restricted
            description = self.description
            if description is None:
                description = existing.description if existing is not None else ""
            meta = TableMeta(
                database=schema, name=name, columns=self.stored, kind="user",
                description=description,
                ra_column=ra if dec else None, dec_column=dec if ra else None,
                healpix_column=HEALPIX_COLUMN if (ra and dec) else None,
                epoch=self.epoch if self.epoch is not None
                else (existing.epoch if existing else None),
                nrows=nrows, extra={"provenance": prov})
            if existing is not None and mode == "append":
                meta.ra_column, meta.dec_column = existing.ra_column, existing.dec_column
                meta.healpix_column = existing.healpix_column
                old = existing.extra or {}
                meta.extra = {"provenance": prov,
                              "history": [*old.get("history", []), old.get("provenance")]}
            job = name[len(JOB_PREFIX):] if name.startswith(JOB_PREFIX) else None
            identity = self.identity

            def record(con: Any, table_id: int) -> None:
                con.execute("INSERT OR IGNORE INTO user_tables(table_id, owner, owner_id,"
                            " job_id) VALUES (?,?,?,?)",
                            (table_id, identity.username, identity.user_id, job))

            try:
                return space.catalogue.publish(
                    meta, self.path, replace=(mode != "create"), max_rows=space.quota_rows,
                    max_bytes=space.quota_bytes, also=record)
            except DatabaseFull as exc:
                # Another write of this user was published meanwhile.
                if exc.unit == "rows":
                    raise self._over_rows(f"{exc.adding} rows", exc.used) from None
                raise self._over_bytes(f"{size} bytes") from None
            except CatalogueError as exc:
                raise TableConflict(f"{exc}; nothing was stored") from None
        except BaseException:
            remove_version_file(self.path)
            raise


def _healpix(batch: pa.RecordBatch, columns: list[ColumnMeta], ra: str,
             dec: str) -> pa.Array:
    """The HEALPix index (nested, order HEALPIX_ORDER) of each row's position: the
    service function ``ivo_healpix_index`` itself, so the values are those a query
    computes."""
    import pyarrow.compute as pc

    from taphouse.engine.functions import healpix_index_array

    names = [c.name for c in columns]
    ra_a = batch.column(names.index(ra))
    dec_a = batch.column(names.index(dec))
    ra_a = pc.cast(ra_a, pa.float64(), safe=False)
    dec_a = pc.cast(dec_a, pa.float64(), safe=False)
    return healpix_index_array(HEALPIX_ORDER, ra_a, dec_a, threads=2)


__all__ = ["UserTableWriter"]
