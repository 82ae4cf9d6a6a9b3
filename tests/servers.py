"""Real servers for tests, on free 127.0.0.1 ports with temporary data directories.

- :func:`start_live`: a server in this process (uvicorn in a thread), so a test can reach
  ``server.platform`` (e.g. move the token clock);
- :class:`ServerProcess`: the real ``taphouse serve`` in a subprocess, for kill/restart
  tests and for reading the server's own log.

Fixtures built on these live in ``conftest.py``; import plain helpers from here
(``from servers import ServerProcess``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


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


def start_live(data_dir: Path, demo: bool = False, **overrides: Any) -> LiveServer:
    import uvicorn

    from taphouse.admission.connections import uvicorn_options
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
                            access_log=False, lifespan="on", **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url)
    return LiveServer(url=url, platform=platform, data_dir=data_dir, _server=server,
                      _thread=thread)


class ServerProcess:
    """``taphouse serve`` in a subprocess, for tests that kill and restart the server."""

    def __init__(self, data_dir: Path, port: int | None = None, env: dict | None = None,
                 log_level: str = "info") -> None:
        self.data_dir = Path(data_dir)
        self.log_level = log_level
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
               "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--log-level", self.log_level, *extra]
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


def publish_tiny_tables(store: Any, database: str, count: int, seed_dir: Path, *,
                        description: str = "", prefix: str = "t") -> list[str]:
    """Publish ``count`` one-row tables ``<prefix>00000``... in ``database`` through the
    catalogue store, fast: every version file is a hard link to one small DuckDB file
    (in ``seed_dir``, on the data directory's file system), so 10,000 tables cost
    seconds and no disk. Each table has an id, a position and a magnitude with units,
    UCDs and descriptions; its description says which field it covers."""
    import duckdb

    from taphouse.catalogue.model import ColumnMeta, TableMeta

    seed = Path(seed_dir) / "tiny-table.duckdb"
    if not seed.exists():
        con = duckdb.connect(str(seed))
        con.execute("CREATE TABLE data AS SELECT 1::BIGINT AS id, 56.75::DOUBLE AS ra,"
                    " 24.12::DOUBLE AS dec, 12.5::FLOAT AS mag")
        con.close()
    columns = [
        ColumnMeta("id", "long", ucd="meta.id;meta.main", description="Source identifier"),
        ColumnMeta("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main",
                   description="Right ascension (ICRS)"),
        ColumnMeta("dec", "double", unit="deg", ucd="pos.eq.dec;meta.main",
                   description="Declination (ICRS)"),
        ColumnMeta("mag", "float", unit="mag", ucd="phot.mag;em.opt.V",
                   description="V magnitude"),
    ]
    store.create_database(database, description or f"{count:,} generated tables")
    names = []
    for i in range(count):
        name = f"{prefix}{i:05d}"
        path = store.new_version_path(database, name)
        os.link(seed, path)
        store.publish(TableMeta(database=database, name=name, columns=columns, nrows=1,
                                ra_column="ra", dec_column="dec", epoch=2000.0,
                                description=f"Field {i} of {database}"), path)
        names.append(name)
    return names


def raw_store_bytes(data_dir: Path) -> bytes:
    """The raw bytes of a live store's metadata database and its write-ahead log (to
    check that something is never stored in clear), read in a *separate process*.

    Never ``open()`` the metadata database of a server running in this process:
    SQLite's locks on it are POSIX record locks, held per process, and closing any
    descriptor of the file drops them all. The server then looks gone to the next
    ``taphouse`` command, whose last connection checkpoints and deletes the -wal and
    -shm under the server (its later connections: ``disk I/O error``).
    """
    code = ("import sys; from pathlib import Path; p = Path(sys.argv[1]);"
            " sys.stdout.buffer.write(b''.join(q.read_bytes() for q in"
            " (p, p.with_name(p.name + '-wal')) if q.exists()))")
    done = subprocess.run([sys.executable, "-c", code, str(Path(data_dir) / "meta.sqlite")],
                          capture_output=True, timeout=60, check=True)
    return done.stdout
