"""Shared fixtures: real servers on free 127.0.0.1 ports with temporary data directories.

- ``start_server(**settings)``: a fresh server in this process (uvicorn in a thread), so
  a test can reach ``server.platform`` (e.g. move the token clock).
- ``demo_server``: one server per test session with the demo databases loaded.
- ``ServerProcess``: the real CLI in a subprocess, for kill/restart tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/tap/availability", timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server at {url} did not come up")


@dataclass
class LiveServer:
    """A running in-process server."""

    url: str
    platform: Any
    data_dir: Path
    _server: Any = None
    _thread: threading.Thread | None = None

    @property
    def tap(self) -> str:
        return self.url + "/tap"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)


def _start(data_dir: Path, demo: bool = False, **overrides: Any) -> LiveServer:
    import uvicorn

    from taphouse.server import Platform, create_app
    from taphouse.settings import Settings

    port = free_port()
    settings = Settings(data_dir=data_dir, port=port, demo=demo, **overrides)
    platform = Platform(settings)
    if demo:
        from taphouse.catalogue.demo import load_demo

        load_demo(platform.catalogue)
    app = create_app(settings, platform)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url)
    return LiveServer(url=url, platform=platform, data_dir=data_dir, _server=server,
                      _thread=thread)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``server = start_server(**settings_overrides)``; stopped after the test."""
    servers: list[LiveServer] = []

    def factory(demo: bool = False, **overrides: Any) -> LiveServer:
        server = _start(tmp_path / f"data{len(servers)}", demo=demo, **overrides)
        servers.append(server)
        return server

    yield factory
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with the demo databases loaded once per session (copied by
    users that need to modify it)."""
    from taphouse.catalogue.demo import load_demo
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB
    from taphouse.settings import Settings

    data_dir = tmp_path_factory.mktemp("demo-data")
    settings = Settings(data_dir=data_dir)
    meta = MetadataDB(settings.meta_path)
    load_demo(CatalogueStore(meta, settings.tables_dir))
    meta.close()
    return data_dir


@pytest.fixture(scope="session")
def demo_server(demo_data_dir: Path) -> Iterator[LiveServer]:
    """One server with the demo databases for the whole session. Tests must not change
    its catalogue; user-space changes go under users they create themselves."""
    server = _start(demo_data_dir)
    yield server
    server.stop()


class ServerProcess:
    """``taphouse serve`` in a subprocess, for tests that kill and restart the server."""

    def __init__(self, data_dir: Path, port: int | None = None, env: dict | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = self.data_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "taphouse.cli", "--data-dir", str(self.data_dir),
               "serve", "--port", str(self.port), *extra]
        self._logfile = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._logfile,
                                     stderr=subprocess.STDOUT)
        wait_until_up(self.url, proc=self.proc)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_logfile", None):
            self._logfile.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
