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


def serve(data_dir: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """``taphouse serve`` on ``data_dir`` (``env``: settings as TAPHOUSE_* variables on top
    of this process's environment), once it answers: the process (the caller terminates
    it) and the base URL. Raises RuntimeError if it is not up within a minute."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data_dir),
                             "serve", "--port", str(port), "--log-level", "warning"],
                            env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/tap/availability", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"taphouse serve on {data_dir} did not start")
