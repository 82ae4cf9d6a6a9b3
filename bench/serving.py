"""A taphouse server for a benchmark: the real CLI (``taphouse serve``) in a subprocess on
a free 127.0.0.1 port, over a prepared data directory (shared by the bench/ scripts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path, env: dict[str, str] | None = None, *, demo: bool = False,
          default_settings: bool = False, log: Path | None = None,
          timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """``taphouse serve`` on ``data_dir``, once it answers: the process (the caller
    terminates it) and the base URL.

    ``env``: settings as TAPHOUSE_* variables on top of this process's environment (with
    ``default_settings``, on top of it without its TAPHOUSE_* variables: the server's
    defaults). ``demo``: ``serve --demo`` (the demo catalogues, loaded on first use).
    ``log``: the server's stdout and stderr are appended to this file (otherwise they are
    this process's). Raises RuntimeError (with the log's end) if the server exits or does
    not answer within ``timeout`` seconds."""
    port = free_port()
    base_env = {k: v for k, v in os.environ.items()
                if not (default_settings and k.startswith("TAPHOUSE_"))}
    cmd = [sys.executable, "-m", "taphouse.cli", "--data-dir", str(data_dir), "serve",
           *(["--demo"] if demo else []), "--port", str(port), "--log-level", "warning"]
    if log is None:
        proc = subprocess.Popen(cmd, env={**base_env, **(env or {})})
    else:
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, env={**base_env, **(env or {})}, stdout=out,
                                    stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(base + "/tap/availability", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    tail = f"; its log ends with:\n{log.read_text(errors='replace')[-4000:]}" if log else ""
    raise RuntimeError(f"taphouse serve on {data_dir} did not start{tail}")
