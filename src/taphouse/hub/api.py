"""The hub's calls to the taphouse server (used by the Authenticator and the Spawner,
inside the JupyterHub process): tornado's HTTP client, the hub's service token on every
call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from taphouse.hub.link import CLIENT_HEADER, HUB_HEADER


class TaphouseError(RuntimeError):
    """The taphouse server answered with an error (``status``) or could not be reached
    (``status`` 599)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"taphouse answered {status}: {message}")
        self.status = status
        self.message = message


class TaphouseAPI:
    """The taphouse server as the hub sees it.

    Parameters
    ----------
    url
        The server's base URL as reached from the hub (loopback on one machine).
    service_token_file
        The hub's service token (mode 0600, written by ``taphouse hub``).
    """

    def __init__(self, url: str, service_token_file: str | Path, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.service_token_file = Path(service_token_file)
        self.timeout = timeout

    def _service_token(self) -> str:
        return self.service_token_file.read_text().strip()

    async def call(self, method: str, path: str, *, token: str | None = None,
                   form: dict[str, str] | None = None, body: Any = None,
                   client: str | None = None) -> tuple[int, Any]:
        """(status, decoded JSON or None); never raises for an HTTP status."""
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        headers = {HUB_HEADER: self._service_token(), "X-Taphouse": "hub",
                   "Accept": "application/json"}
        if client:
            headers[CLIENT_HEADER] = client
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data: str | None = None
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(form)
        elif body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        elif method in ("POST", "PUT"):
            data = ""
        request = HTTPRequest(self.url + path, method=method, headers=headers, body=data,
                              request_timeout=self.timeout, follow_redirects=False)
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code == 599:
            raise TaphouseError(599, f"taphouse at {self.url} not reachable:"
                                     f" {response.error}")
        try:
            decoded = json.loads(response.body) if response.body else None
        except ValueError:
            decoded = None
        return response.code, decoded

    async def login(self, username: str, password: str, client: str | None) -> dict | None:
        """The token answer of a good login (None: refused)."""
        status, body = await self.call("POST", "/auth/token", client=client,
                                       form={"username": username, "password": password,
                                             "grant_type": "password"})
        if status == 200 and isinstance(body, dict):
            return body
        if status >= 500:
            raise TaphouseError(status, _message(body))
        return None

    async def whoami(self, token: str) -> dict | None:
        """Who the token belongs to (None: token or account no longer good)."""
        status, body = await self.call("GET", "/auth/whoami", token=token)
        if status == 200 and isinstance(body, dict) and body.get("username"):
            return body
        if status in (401, 403):
            return None
        raise TaphouseError(status, _message(body))

    async def refresh(self, token: str) -> dict | None:
        status, body = await self.call("POST", "/auth/refresh", token=token)
        if status == 200 and isinstance(body, dict):
            return body
        if status in (400, 401, 403):
            return None
        raise TaphouseError(status, _message(body))

    async def logout(self, token: str) -> None:
        await self.call("POST", "/auth/logout", token=token)

    async def notebook_grant(self, token: str, server: str) -> dict:
        """A notebook token and what the user's sandboxed server needs."""
        status, body = await self.call("POST", "/api/hub/notebook-tokens", token=token,
                                       body={"server": server})
        if status != 200 or not isinstance(body, dict):
            raise TaphouseError(status, _message(body))
        return body

    async def revoke_notebook(self, token_id: str) -> None:
        status, body = await self.call("DELETE", "/api/hub/notebook-tokens/"
                                       + quote(token_id, safe=""))
        if status not in (204, 404):
            raise TaphouseError(status, _message(body))

    async def account(self, name: str) -> dict | None:
        """The account (None: there is none of that name)."""
        status, body = await self.call("GET", "/api/hub/accounts/" + quote(name, safe=""))
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict):
            raise TaphouseError(status, _message(body))
        return body


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("error") or body)[:300]
    return str(body)[:300]
