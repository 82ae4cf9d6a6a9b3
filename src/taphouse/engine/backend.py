"""What the query path asks of a backend (``DuckDBEngine`` is the embedded default).

A backend runs the SQL that :func:`taphouse.adql.translate` generated for its
``dialect`` on the table versions the catalogue records, streams the rows as Arrow
batches, writes new table versions (from SQL or from Arrow batches), loads Arrow data as
per-query temporary tables (another backend's rows, uploads), stops a running query
(cancel, time limit), turns its own errors into messages a user can read, and provides
every service function of :func:`taphouse.engine.functions.service_functions` with the
same answers.

Errors: a backend raises :class:`~taphouse.engine.errors.EngineError` subclasses for what
it refuses itself (:class:`~taphouse.engine.errors.WriteLimitExceeded`,
:class:`~taphouse.engine.errors.TempTableTooLarge`); its driver's own exceptions are
passed to :meth:`Backend.describe_error` for the user's message.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from taphouse.catalogue.model import TableMeta
from taphouse.engine.errors import EngineError, TempTableTooLarge
from taphouse.engine.functions import ServiceFunction


class TableWriter(Protocol):
    """A table version being written from Arrow batches, pushed one at a time
    (:meth:`Backend.open_writer`). Nothing is visible at ``path`` until :meth:`close`
    returns; :meth:`abort` (or an exception inside a ``with`` block) leaves nothing."""

    #: Rows written so far.
    rows: int

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch (its schema is the writer's)."""

    def close(self) -> int:
        """Finish (sort when asked), move the file in at ``path``; returns the rows."""

    def abort(self) -> None:
        """Stop and remove everything written (safe to call more than once)."""

    def __enter__(self) -> TableWriter: ...

    def __exit__(self, *exc: object) -> None: ...


class Lease(Protocol):
    """The table versions one request reads, held until it ends."""

    def relation(self, table: TableMeta) -> str:
        """The backend relation (SQL text) of a stored table, held by this lease."""

    def release(self) -> None:
        """Let go of every version (safe to call more than once)."""


@runtime_checkable
class Backend(Protocol):
    """A SQL engine the query path can run on."""

    #: The sqlglot dialect the translator generates for (``"duckdb"``, ``"postgres"``).
    dialect: str

    def lease(self) -> Lease:
        """A lease for the versions one request uses."""

    def relation(self, table: TableMeta) -> str:
        """The relation of a stored table, not held (tests, tools)."""

    def cursor(self, inline: dict[str, Any] | None = None) -> AbstractContextManager[Any]:
        """A cursor of its own for one query, with per-request tables (uploads,
        TAP_SCHEMA) registered under their names; it has ``interrupt()`` (cancel)."""

    def stream(self, cur: Any, sql: str, batch_rows: int = 65536,
               batch_bytes: int | None = None) -> Iterable[pa.RecordBatch]:
        """Run ``sql`` and stream its rows (never materialised whole)."""

    def write_table(self, sql: str, path: Path, *, order_by: str | None = None,
                    inline: dict[str, Any] | None = None, cursor: Any = None,
                    max_bytes: int | None = None) -> int:
        """Store every row of ``sql`` as a new version file at ``path`` (written
        aside, moved in when complete; at most ``max_bytes``); returns the rows."""

    def open_writer(self, schema: pa.Schema, path: Path, *, order_by: str | None = None,
                    max_bytes: int | None = None, cursor: Any = None) -> TableWriter:
        """A new version file at ``path`` written from Arrow batches of ``schema``
        (written aside, moved in by ``close``). ``order_by``: SQL ordering over the
        column names (the rows are sorted at ``close``); ``max_bytes``: a file growing
        past it stops the write (:class:`WriteLimitExceeded`, nothing kept);
        ``cursor``: run on the caller's cursor (so it can interrupt the write)."""

    def write_arrow(self, batches: Iterable[pa.RecordBatch], schema: pa.Schema,
                    path: Path, *, order_by: str | None = None,
                    max_bytes: int | None = None, cursor: Any = None) -> int:
        """Store every batch as a new version file at ``path`` (:meth:`open_writer`,
        every batch written, closed); returns the rows. An exception from ``batches``
        or the write leaves nothing at ``path``."""

    def load_temp_table(self, cur: Any, name: str,
                        data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
                        max_rows: int) -> int:
        """Make ``data`` readable as the table ``name`` by queries on ``cur`` only, until
        the cursor closes; returns its rows. More than ``max_rows`` rows:
        :class:`TempTableTooLarge` (naming the table and the cap), nothing loaded.
        ``name`` is a regular identifier (letters, digits, ``_``)."""

    def interrupt(self, cur: Any) -> None:
        """Stop the query running on ``cur`` (any thread); it then fails with an error
        :meth:`describe_error` reports as interrupted. Safe when nothing runs."""

    def limit(self, cur: Any, *, seconds: float | None = None,
              memory_bytes: int | None = None) -> None:
        """Bound the queries run on ``cur`` from now until it closes: stopped after
        ``seconds`` (as by :meth:`interrupt`); ``memory_bytes`` of working memory
        where the backend can bound one query (DuckDB cannot: its one engine-wide
        ``memory_limit`` applies to every query)."""

    def describe_error(self, exc: BaseException) -> str:
        """A message a user can act on for an exception raised by this backend while
        running a query, chosen by the exception's type: never a file path, a backend
        class name or internal detail."""

    def forget(self, version_id: int) -> None:
        """A retired version will not be read again: let go of it."""

    def detach_idle(self, idle_seconds: float | None = None) -> int:
        """Let go of versions no request used for a while; returns how many."""

    def functions(self) -> tuple[ServiceFunction, ...]:
        """The service functions this backend provides."""


def capped_table(data: Any, name: str, max_rows: int) -> pa.Table:
    """``data`` (an Arrow table, a batch, batches or a reader) as one Arrow table for
    :meth:`Backend.load_temp_table`, reading at most ``max_rows`` + 1 rows of it; more
    than ``max_rows``: :class:`TempTableTooLarge` naming ``name``."""
    if isinstance(data, pa.Table):
        if data.num_rows > max_rows:
            raise TempTableTooLarge(name, max_rows)
        return data
    if isinstance(data, pa.RecordBatch):
        data = [data]
    batches: list[pa.RecordBatch] = []
    rows = 0
    schema = getattr(data, "schema", None)
    for batch in data:
        rows += batch.num_rows
        if rows > max_rows:
            raise TempTableTooLarge(name, max_rows)
        batches.append(batch)
        schema = batch.schema
    if schema is None:
        raise EngineError(f"temporary table {name}: no schema and no rows")
    return pa.Table.from_batches(batches, schema=schema)
