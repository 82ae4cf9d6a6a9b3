"""The root of the packages' error hierarchies.

Each package has its own error class (``CatalogueError``, ``JobError``,
``UserSpaceError`` ...) deriving from :class:`ServiceError`: a message a user can act
on and the HTTP status it maps to. ``taphouse.server`` maps them to HTTP in one place.
"""

from __future__ import annotations

import re

# An absolute file path in a library's message: quoted, or a run of at least two
# directories ending in a file name (not preceded by a host or another path character,
# so URLs and our own "/auth/token" hints are left alone).
_QUOTED_PATH = re.compile(r"""(["'])/[^"'\n]*\1""")
_BARE_PATH = re.compile(r"(?<![\w:/.<>{}-])/(?:[\w.+@-]+/){2,}[\w.+@-]*")


class ServiceError(Exception):
    """An operation the service cannot carry out; ``status`` is the HTTP status."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


def without_paths(text: str) -> str:
    """``text`` (a message from a library: DuckDB, the OS) with absolute file paths
    replaced by ``<file>``: error messages tell users nothing about the server's disk."""
    text = _QUOTED_PATH.sub(lambda m: f"{m.group(1)}<file>{m.group(1)}", text)
    return _BARE_PATH.sub("<file>", text)
