"""A remote's credentials: checked, turned into the ``Authorization`` header the client
sends (to the registered origin only), kept sealed with :mod:`taphouse.secrets`.

Nothing here puts a credential in a message: errors name the field, never its value.
"""

from __future__ import annotations

import base64
import re

from taphouse.remotes.errors import RemoteError
from taphouse.secrets import Secret

#: RFC 6750 b64token (what a bearer token may hold), with a sane length cap.
_TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]{1,4096}=*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def authorization(kind: str, *, username: str | None = None, password: str | None = None,
                  token: str | None = None) -> Secret | None:
    """The ``Authorization`` header value for ``kind`` (``none``: None); a
    :class:`RemoteError` names what is missing or malformed."""
    if kind == "none":
        if username or password or token:
            raise RemoteError("credentials were given but --auth is 'none'")
        return None
    if kind == "basic":
        if token:
            raise RemoteError("--auth basic takes a user name and a password, not a token")
        if not username or not isinstance(username, str):
            raise RemoteError("--auth basic needs a user name")
        if not password or not isinstance(password, str):
            raise RemoteError("--auth basic needs a password")
        if ":" in username or _CONTROL.search(username) or len(username) > 256:
            raise RemoteError("the user name may not contain ':' or control characters"
                              " (at most 256 characters)")
        if _CONTROL.search(password) or len(password) > 1024:
            raise RemoteError("the password may not contain control characters (at most"
                              " 1024 characters)")
        pair = f"{username}:{password}".encode()
        return Secret("Basic " + base64.b64encode(pair).decode("ascii"))
    if kind == "bearer":
        if username or password:
            raise RemoteError("--auth bearer takes a token, not a user name and password")
        if not token or not isinstance(token, str):
            raise RemoteError("--auth bearer needs a token")
        if not _TOKEN.match(token):
            raise RemoteError("the token is not a valid bearer token (letters, digits and"
                              " -._~+/ then '=' padding, at most 4096 characters)")
        return Secret("Bearer " + token)
    raise RemoteError(f"--auth must be one of none, basic, bearer, not {str(kind)[:20]!r}")


def secret_name(remote_id: int) -> str:
    """The name a remote's credential is stored under in the secret store."""
    return f"remote:{remote_id}"


__all__ = ["authorization", "secret_name"]
