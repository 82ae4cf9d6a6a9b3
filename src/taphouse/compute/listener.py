"""The sandbox API listener: the same application on a Unix socket, for job tokens only.

The socket (``data_dir/compute/run/api.sock``, mode 0660, group = the sandbox group)
is bind-mounted into every sandbox; it is the sandbox's only way out. Requests arriving
on it are marked in the ASGI scope (:data:`taphouse.auth.authenticator.LISTENER`), and
the authenticator then accepts nothing but a live job token, while the TCP listener
refuses job tokens. It runs in its own thread and event loop, so sandboxes hammering it
do not hold up the main listener's loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from taphouse.auth.authenticator import LISTENER, SANDBOX_LISTENER

log = logging.getLogger("taphouse.compute")


class _MarkSandbox:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope[LISTENER] = SANDBOX_LISTENER
        await self.app(scope, receive, send)


def bind_socket(path: Path, gid: int) -> socket.socket:
    """A listening Unix socket at ``path`` that only root and the group ``gid`` (the
    sandboxes) may connect to."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(128)
    return sock


class SandboxListener:
    """Serves ``app`` on the listening Unix socket ``sock`` until :meth:`stop`."""

    def __init__(self, app: Any, sock: socket.socket, path: Path) -> None:
        self.app = app
        self.sock = sock
        self.path = Path(path)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        sock = self.sock
        config = uvicorn.Config(_MarkSandbox(self.app), lifespan="off", log_level="warning",
                                access_log=False, timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            ready.set()
            try:
                loop.run_until_complete(self._server.serve(sockets=[sock]))
            finally:
                loop.close()
                sock.close()

        self._thread = threading.Thread(target=serve, name="taphouse-sandbox-api",
                                        daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.path.unlink(missing_ok=True)
