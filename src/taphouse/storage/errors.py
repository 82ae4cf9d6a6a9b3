"""Errors of storage itself: a full disk, mapped to HTTP 507 in ``taphouse.server``."""

from __future__ import annotations

import errno
import sqlite3

from taphouse.errors import ServiceError

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_FULL_TEXTS = ("no space left on device", "disk quota exceeded", "database or disk is full")


class StorageFull(ServiceError):
    """The server's disk (or the data directory's file-system quota) is full: the
    write did not happen and left nothing behind (HTTP 507 Insufficient Storage)."""

    status = 507

    def __init__(self, message: str | None = None, what: str = "nothing was stored") -> None:
        super().__init__(message or (
            f"the server's disk is full: {what}. Try again later; the operator has been"
            " told in the server log"))


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) means "no space left":
    ENOSPC/EDQUOT, SQLite's SQLITE_FULL, or DuckDB's I/O error saying so."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, StorageFull):
            return True
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == 13:
            return True
        if any(t in str(exc).lower() for t in _FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
