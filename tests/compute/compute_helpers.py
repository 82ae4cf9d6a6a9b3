"""Helpers of the compute tests (fixtures are in conftest.py).

The job Python environment is built once per machine by ``scripts/test.sh`` with the
real ``taphouse compute setup`` (``$TAPHOUSE_TEST_JOB_ENV``, default
/var/cache/taphouse-test/jobenv) and mounted read-only into every sandbox, like any job
environment. Building it per test session would cost ~25 s and a network round per run;
the test venv itself cannot serve: its interpreter lives under /root, which sandboxed
uids cannot traverse (bubblewrap opens bind sources as the user's uid).

A machine without bubblewrap, user namespaces or root fails these tests with what to
install: they are never skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import taphouse
from accounts import PASSWORD

JOB_ENV = Path(os.environ.get("TAPHOUSE_TEST_JOB_ENV", "/var/cache/taphouse-test/jobenv"))
HOME_QUOTA = 64 * 1024**2


def require_sandbox_machine() -> None:
    """Fail (not skip) with what is missing."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the compute tests run as root (the server starts each user's"
                        " code as that user's own uid)")
    if shutil.which("bwrap") is None:
        problems.append("bubblewrap is missing: apt-get install bubblewrap")
    userns = Path("/proc/sys/user/max_user_namespaces")
    if userns.exists() and userns.read_text().strip() == "0":
        problems.append("user namespaces are disabled: sysctl user.max_user_namespaces=10000")
    if not (JOB_ENV / "bin" / "python").exists():
        problems.append(f"no job environment at {JOB_ENV}: run scripts/test.sh (it runs"
                        f" `taphouse compute setup --env {JOB_ENV}`)")
    if problems:
        pytest.fail("compute tests cannot run on this machine: " + "; ".join(problems),
                    pytrace=False)


def sandbox_data_dir(prefix: str = "taphouse-compute-") -> Path:
    """A data directory sandboxed uids can be bound from: pytest's own temporary
    directories sit under a 0700 directory of root."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o711)
    return base


def login(server: Any, name: str) -> taphouse.client.Client:
    c = taphouse.connect(server.url, interactive=False, progress=False)
    c.login(name, PASSWORD)
    return c


class Responsiveness:
    """Measures the server's answer time for another (anonymous) caller while an attack
    runs: a thread asks for /tap/availability every 0.1 s."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.worst = 0.0
        self.failures: list[str] = []
        self.count = 0
        self._inflight: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                t0 = self._inflight = time.monotonic()
                try:
                    r = http.get(self.url + "/tap/availability")
                    if r.status_code != 200:
                        self.failures.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as exc:
                    self.failures.append(str(exc))
                self.worst = max(self.worst, time.monotonic() - t0)
                self._inflight = None
                self.count += 1
                self._stop.wait(0.1)

    def __enter__(self) -> Responsiveness:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(15)
        inflight = self._inflight
        if inflight is not None:  # a request still unanswered counts as slow as it is
            self.worst = max(self.worst, time.monotonic() - inflight)

    def check(self, limit: float = 5.0) -> None:
        """The worst answer time; 5 s leaves room for the other test suites that share
        this machine's two cores (unloaded it is well under 0.1 s)."""
        assert not self.failures, self.failures[:3]
        assert self.count >= 1 or self.worst >= limit
        assert self.worst < limit, f"the server took {self.worst:.2f} s to answer"


def uid_of(pid: int) -> int | None:
    """The real uid of a process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(f.read().split("Uid:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def pids_of(uid: int) -> list[int]:
    """Every live process of ``uid``."""
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()
            and uid_of(int(e.name)) == uid]
