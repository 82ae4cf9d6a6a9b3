"""HTTP over a Unix socket for requests: inside a compute sandbox the server is reached
only through ``$TAPHOUSE_SOCKET``. Mounted on a session for ``http://`` and
``https://``, every request of that session (including pyvo's, which shares it) goes to
the socket whatever host its URL names: the server's own URLs stay valid inside."""

from __future__ import annotations

import socket
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool


class _UnixConnection(HTTPConnection):
    def __init__(self, *args: Any, socket_path: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if isinstance(self.timeout, (int, float)):
            sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        return sock


class _UnixPool(HTTPConnectionPool):
    ConnectionCls = _UnixConnection  # type: ignore[assignment]

    def __init__(self, socket_path: str, **kwargs: Any) -> None:
        super().__init__("localhost", **kwargs)
        self.conn_kw["socket_path"] = socket_path


class UnixSocketAdapter(HTTPAdapter):
    """A requests adapter sending every request to the Unix socket ``path``."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        self.socket_path = path
        super().__init__(**kwargs)
        self._pool = _UnixPool(path, maxsize=self._pool_maxsize, block=self._pool_block)

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> HTTPConnectionPool:
        return self._pool

    def get_connection(self, url: Any, proxies: Any = None) -> HTTPConnectionPool:
        return self._pool

    def request_url(self, request: Any, proxies: Any) -> str:
        path: str = request.path_url
        return path

    def close(self) -> None:
        self._pool.close()
        super().close()


def use_unix_socket(session: Any, path: str, adapter: HTTPAdapter | None = None) -> None:
    """Route every request of ``session`` through the Unix socket ``path``."""
    adapter = adapter or UnixSocketAdapter(path, max_retries=_retries_of(session))
    session.mount("http://", adapter)
    session.mount("https://", adapter)


def _retries_of(session: Any) -> Any:
    current = session.adapters.get("http://")
    return getattr(current, "max_retries", 0)
