"""Errors of the auth package, mapped to HTTP in ``taphouse.server``."""

from __future__ import annotations

from taphouse.errors import ServiceError


class AuthError(ServiceError):
    """Authentication failed or is required (HTTP 401 with Basic and Bearer challenges).

    ``bearer_error`` is the RFC 6750 error code (``invalid_token``) where it applies.
    """

    status = 401

    def __init__(self, message: str, *, bearer_error: str | None = None) -> None:
        super().__init__(message)
        self.bearer_error = bearer_error


class Forbidden(AuthError):
    """The caller can see the object but may not do this (HTTP 403)."""

    status = 403


class InsecureTransport(AuthError):
    """Credentials sent over plain HTTP from a non-loopback client (HTTP 403)."""

    status = 403


class TooManyAttempts(AuthError):
    """Login throttled (HTTP 429 with Retry-After)."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LoginBusy(AuthError):
    """Too many password checks at once (HTTP 503 with Retry-After); nothing was checked."""

    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AccountError(AuthError):
    """A request about accounts, groups or tokens that cannot be done as asked (HTTP 400):
    a weak password, a name already taken, an invalid name."""

    status = 400


class UnknownObject(AuthError):
    """A user, group, token or database named in an operator or owner request does not
    exist (HTTP 404)."""

    status = 404
