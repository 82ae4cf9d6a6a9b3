"""Errors of the remotes package: each names the remote service it is about."""

from __future__ import annotations

from taphouse.errors import ServiceError


class RemoteError(ServiceError):
    """A remote TAP service could not be registered, described or queried.

    The message names the remote (``remote 'gavo' (https://...)``) and says what failed;
    ``status`` is 502 when the remote failed us, 400 when the request was wrong.
    """

    status = 400


class RemoteUnavailable(RemoteError):
    """The remote could not be reached, timed out, or answered something unusable."""

    status = 502

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        #: The HTTP status the remote answered, when that was the failure.
        self.http_status: int | None = None


class RemoteQueryFailed(RemoteError):
    """The remote refused or failed a query: its own error message is quoted."""

    status = 400


class RemoteOverflow(RemoteError):
    """The remote truncated an answer (QUERY_STATUS=OVERFLOW) where a complete one was
    needed."""

    status = 400


class RemoteNotFound(RemoteError):
    """No remote of that name (for this caller)."""

    status = 404


__all__ = ["RemoteError", "RemoteUnavailable", "RemoteQueryFailed", "RemoteOverflow",
           "RemoteNotFound"]
