"""TAP errors and their one mapping to HTTP: a DALI error VOTable with QUERY_STATUS=ERROR."""

from __future__ import annotations

from taphouse.query.errors import QueryError

#: A request the service cannot answer; ``status`` is the HTTP status for sync. The
#: query path raises it as :class:`~taphouse.query.errors.QueryError` (the same class).
TapError = QueryError


class NotFound(TapError):
    def __init__(self, message: str = "not found") -> None:
        super().__init__(message, 404)
