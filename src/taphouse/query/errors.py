"""The error of a query request the service refuses (bad parameters, ADQL that does not
parse or resolve, an engine refusing the query, a cancelled run)."""

from __future__ import annotations

from taphouse.errors import ServiceError


class QueryError(ServiceError):
    """A query request the service cannot answer; ``status`` is the HTTP status of a
    sync answer. ``line``/``column`` point into ``query`` when the ADQL is at fault.

    TAP answers it as a DALI error document (``taphouse.tap.errors.TapError`` is this
    class)."""

    def __init__(self, message: str, status: int = 400, *, line: int | None = None,
                 column: int | None = None, query: str | None = None) -> None:
        super().__init__(message, status)
        self.line = line
        self.column = column
        self.query = query
