"""The one error hierarchy of :mod:`taphouse.client` and the MAXREC warning."""

from __future__ import annotations


class ClientError(Exception):
    """A request to the taphouse server failed; ``message`` is the server's own words.

    Attributes
    ----------
    message
        What went wrong (the server's message where there is one).
    status
        The HTTP status, when the failure came from an HTTP answer.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


class AuthError(ClientError):
    """Not logged in, wrong credentials, an expired or revoked token, or no permission."""


class NotFoundError(ClientError):
    """The server does not know the table, job or workspace asked for (HTTP 404)."""


class ServerError(ClientError):
    """The server failed (HTTP 5xx) or could not be reached after the retries."""


class QueryError(ClientError):
    """The server refused or failed a query.

    When the server names a position, ``str(error)`` shows the query with a caret
    under that position.

    Attributes
    ----------
    query
        The ADQL text.
    line, column
        1-based position of the error in ``query``, when the server gave one.
    job_id
        The async job that ran the query, if any.
    """

    def __init__(self, message: str, *, query: str | None = None, line: int | None = None,
                 column: int | None = None, status: int | None = None,
                 job_id: str | None = None) -> None:
        super().__init__(message, status=status)
        self.query = query
        self.line = line
        self.column = column
        self.job_id = job_id

    def __str__(self) -> str:
        out = self.message
        if self.job_id:
            out += f" [job {self.job_id}]"
        if self.query and self.line:
            out += "\n" + render_caret(self.query, self.line, self.column)
        return out


class QueryAborted(ClientError):
    """The job was aborted (by the user, an operator, or the execution time limit)."""


class QueryTimeout(ClientError, TimeoutError):
    """The query did not finish within the ``timeout`` budget; its job was aborted."""


class MaxrecWarning(UserWarning):
    """The result was truncated at MAXREC rows (the service said ``QUERY_STATUS=OVERFLOW``)."""


def render_caret(query: str, line: int, column: int | None) -> str:
    """The query's lines with a caret under ``line``/``column`` (both 1-based).

    Lines are numbered; lines far from the error are elided.
    """
    lines = query.splitlines() or [""]
    line = max(1, min(line, len(lines)))
    width = len(str(len(lines)))
    first, last = max(1, line - 3), min(len(lines), line + 2)
    out = []
    for n in range(first, last + 1):
        out.append(f"{n:>{width}} | {lines[n - 1]}")
        if n == line:
            col = max(1, min(column or 1, len(lines[n - 1]) + 1))
            out.append(" " * width + " | " + " " * (col - 1) + "^")
    return "\n".join(out)


__all__ = ["ClientError", "AuthError", "NotFoundError", "ServerError", "QueryError",
           "QueryAborted", "QueryTimeout", "MaxrecWarning", "render_caret"]
