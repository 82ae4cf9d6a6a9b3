"""The root of the packages' error hierarchies.

Each package has its own error class (``CatalogueError``, ``JobError``,
``UserSpaceError`` ...) deriving from :class:`ServiceError`: a message a user can act
on and the HTTP status it maps to. ``taphouse.server`` maps them to HTTP in one place.
"""

from __future__ import annotations


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
