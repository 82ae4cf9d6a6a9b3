"""Workspaces: a named selection of databases with its own TAP endpoint."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin

from taphouse.client.http import send
from taphouse.client.tap import TapEndpoint

if TYPE_CHECKING:
    from taphouse.client.client import Client


class Workspace(TapEndpoint):
    """A workspace: queries see only its databases (plus your user space).

    It has the client's query API (``query``, ``submit``, ``jobs``, ``job``,
    ``service``) and ``tap_url``, the TAP endpoint to paste into TOPCAT or pyvo.
    """

    _show = ("name", "databases", "tap_url")

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self.name: str = data["name"]
        self.databases: list[str] = list(data.get("databases") or [])
        tap = data.get("tap_url") or f"/ws/{client.username}/{self.name}/tap"
        super().__init__(client, urljoin(client.url + "/", tap))

    def _api(self) -> str:
        return f"{self.client.url}/api/workspaces/{quote(self.name, safe='')}"

    def update(self, databases: list[str]) -> Workspace:
        """Change the databases of the workspace."""
        r = send(self.client.session, "PATCH", self._api(), json={"databases": list(databases)},
                 timeout=self.client.timeout)
        self.databases = list(r.json().get("databases") or databases)
        return self

    def delete(self) -> None:
        """Delete the workspace (your tables and jobs stay)."""
        send(self.client.session, "DELETE", self._api(), timeout=self.client.timeout)

    def _row(self) -> list[str]:
        return [self.name, ", ".join(self.databases), self.tap_url]

    def __repr__(self) -> str:
        return f"<Workspace {self.name} databases=[{', '.join(self.databases)}] tap_url={self.tap_url}>"

    def _repr_html_(self) -> str:
        return (f"<p><b>Workspace {html.escape(self.name)}</b>: "
                f"{html.escape(', '.join(self.databases))}<br>TAP: "
                f"<code>{html.escape(self.tap_url)}</code></p>")


__all__ = ["Workspace"]
