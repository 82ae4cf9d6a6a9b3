"""What the query path asks of a backend (``DuckDBEngine`` is the embedded default).

A backend runs the SQL that :func:`taphouse.adql.translate` generated for its
``dialect`` on the table versions the catalogue records, streams the rows as Arrow
batches, writes new table versions, and provides every service function of
:func:`taphouse.engine.functions.service_functions` with the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from taphouse.catalogue.model import TableMeta
from taphouse.engine.functions import ServiceFunction


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

    def forget(self, version_id: int) -> None:
        """A retired version will not be read again: let go of it."""

    def detach_idle(self, idle_seconds: float | None = None) -> int:
        """Let go of versions no request used for a while; returns how many."""

    def functions(self) -> tuple[ServiceFunction, ...]:
        """The service functions this backend provides."""
