"""The login challenges this service sends (``WWW-Authenticate``)."""

from __future__ import annotations

from taphouse.auth.errors import AuthError

REALM = "taphouse"


def challenge_headers(exc: AuthError | None = None) -> dict[str, str]:
    """WWW-Authenticate with both Basic and Bearer challenges (TOPCAT and STILTS send
    credentials only after a Basic challenge); with ``exc``, its RFC 6750 error."""
    bearer = f'Bearer realm="{REALM}"'
    if exc is not None and exc.bearer_error:
        desc = exc.message.replace('"', "'")
        bearer += f', error="{exc.bearer_error}", error_description="{desc}"'
    return {"WWW-Authenticate": f'Basic realm="{REALM}", {bearer}'}
