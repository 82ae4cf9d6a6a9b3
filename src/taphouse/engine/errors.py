"""Errors every backend raises for what it refuses itself (its driver's own exceptions
become messages through ``Backend.describe_error``)."""

from __future__ import annotations

from taphouse.errors import ServiceError


class EngineError(ServiceError):
    """The backend failed to run a query; the message is safe to show a user."""


class QueryCancelled(EngineError):
    """The query was cancelled (abort, time limit or client gone)."""


class WriteLimitExceeded(EngineError):
    """A table version being written grew past its byte limit; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the table file grew past {limit} bytes")
        self.limit = limit


class TempTableTooLarge(EngineError):
    """A temporary table (rows of another source, an upload) has more rows than a query
    may load; nothing was loaded."""

    def __init__(self, table: str, max_rows: int) -> None:
        super().__init__(f"table {table} has more than {max_rows} rows, the most this"
                         " service loads into one query; select fewer rows (add"
                         " conditions or TOP) or store the table first")
        self.table, self.max_rows = table, max_rows
