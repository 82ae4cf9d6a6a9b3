"""TAP errors and their one mapping to HTTP: a DALI error VOTable with QUERY_STATUS=ERROR."""

from __future__ import annotations

from taphouse.errors import ServiceError


class TapError(ServiceError):
    """A request the service cannot answer; ``status`` is the HTTP status for sync."""

    def __init__(self, message: str, status: int = 400, *, line: int | None = None,
                 column: int | None = None, query: str | None = None) -> None:
        super().__init__(message, status)
        self.line = line
        self.column = column
        self.query = query


class NotFound(TapError):
    def __init__(self, message: str = "not found") -> None:
        super().__init__(message, 404)
