"""The optional per-user token store: ``$XDG_CONFIG_HOME/taphouse/tokens.json``
(``~/.config/taphouse/tokens.json``), readable by its owner only (mode 0600)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def default_path() -> Path:
    """Where tokens are kept: ``$XDG_CONFIG_HOME/taphouse/tokens.json``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "taphouse" / "tokens.json"


class TokenStore:
    """Session tokens by server URL, so that a later Python session can reuse one.

    Parameters
    ----------
    path
        The JSON file; default :func:`default_path` (evaluated when the store is made).
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def load(self, url: str, *, min_valid: float = 60.0) -> dict[str, Any] | None:
        """The stored entry for ``url`` (keys ``username``, ``token``, ``expires``), if it
        is still valid for ``min_valid`` seconds."""
        entry = self._read().get(url.rstrip("/"))
        if not isinstance(entry, dict) or not entry.get("token"):
            return None
        expires = entry.get("expires")
        if expires is not None and float(expires) < time.time() + min_valid:
            return None
        return entry

    def save(self, url: str, *, username: str | None, token: str, expires: float | None) -> None:
        data = self._read()
        data[url.rstrip("/")] = {"username": username, "token": token, "expires": expires}
        self._write(data)

    def forget(self, url: str) -> None:
        data = self._read()
        if data.pop(url.rstrip("/"), None) is not None:
            self._write(data)


__all__ = ["TokenStore", "default_path"]
