"""Errors of the user space, mapped to HTTP in ``taphouse.server`` (JSON on /api, a DALI
error document on TAP)."""

from __future__ import annotations

from taphouse.errors import ServiceError


class UserSpaceError(ServiceError):
    """A user-space operation failed; ``status`` is the HTTP status, the message says
    what to do."""


class UnknownTable(UserSpaceError):
    """The table does not exist *for this caller* (another user's private table answers
    exactly like this)."""

    status = 404


class TableConflict(UserSpaceError):
    """The table exists already, or another request is writing it (HTTP 409)."""

    status = 409


class WriteForbidden(UserSpaceError):
    """The caller can see the database but may not write into it (HTTP 403)."""

    status = 403


class QuotaExceeded(UserSpaceError):
    """A write would go over the user's quota; nothing was stored (HTTP 413 on /api,
    400 on TAP)."""

    status = 413
