"""The taphouse server's side of its JupyterHub: the hub's service token, and the
browser address the hub forwards.

The hub is a client of taphouse like any other, with one privilege: a login it relays
counts against the *browser's* address (so login throttling works per browser, and one
attacker behind the hub cannot lock out every hub user), and it may mint notebook
tokens. Both need the hub's service token (``X-Taphouse-Hub``), a random secret that
``taphouse hub`` writes into the data directory (mode 0600) and the server reads from
there; a loopback address alone proves nothing (every user's Jupyter server runs on
this machine too).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from taphouse.auth.authenticator import PEER_SCOPE

#: Headers of hub requests: the service token and the browser's address.
HUB_HEADER = "x-taphouse-hub"
CLIENT_HEADER = "x-taphouse-client"
#: ASGI scope key set on requests the hub vouched for.
HUB_SCOPE = "taphouse.hub"


def service_token_path(data_dir: Path) -> Path:
    return Path(data_dir) / "hub" / "service-token"


def write_secret(path: Path, nbytes: int = 32, *, hex_text: bool = False) -> str:
    """The secret in ``path``, created (mode 0600, owner only) when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = path.read_text().strip()
        if text:
            os.chmod(path, 0o600)
            return text
    except FileNotFoundError:
        pass
    text = secrets.token_hex(nbytes) if hex_text else secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
    return text


class HubLink:
    """The hub's service token as the server knows it (re-read when the file changes,
    so ``taphouse hub`` may create it after the server started)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._cached: tuple[tuple[int, int], str] | None = None

    def token(self) -> str | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self.path.read_text().strip())
        return self._cached[1] or None

    def is_hub(self, presented: str | None) -> bool:
        """Whether ``presented`` is the hub's service token."""
        expected = self.token()
        if not presented or not expected:
            return False
        return hmac.compare_digest(presented.encode(), expected.encode())


class HubForwarding:
    """ASGI middleware: a request carrying the hub's service token has its client address
    replaced by the browser address the hub forwards (the peer is kept under
    :data:`PEER_SCOPE`, for the transport check); a wrong service token is refused."""

    def __init__(self, app: Any, link: HubLink, refuse: Any) -> None:
        self.app = app
        self.link = link
        self.refuse = refuse

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            presented = forwarded = None
            for name, value in scope.get("headers", ()):
                if name == HUB_HEADER.encode():
                    presented = value.decode("latin-1").strip()
                elif name == CLIENT_HEADER.encode():
                    forwarded = value.decode("latin-1").strip()
            if presented is not None:
                if not self.link.is_hub(presented):
                    response = self.refuse(scope["path"], "invalid hub service token")
                    await response(scope, receive, send)
                    return
                scope = dict(scope)
                scope[HUB_SCOPE] = True
                scope[PEER_SCOPE] = (scope.get("client") or ("-", 0))[0]
                if forwarded:
                    from taphouse.admission.addresses import parse_address

                    if parse_address(forwarded) is not None:
                        scope["client"] = (forwarded, 0)
        await self.app(scope, receive, send)


def from_hub(scope: Any) -> bool:
    """Whether the request carried the hub's valid service token."""
    return bool(scope.get(HUB_SCOPE))
