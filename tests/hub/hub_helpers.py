"""Helpers of the hub tests (fixtures are in conftest.py): a real taphouse server with
compute on, a real ``taphouse hub`` (JupyterHub + configurable-http-proxy) next to it,
a browser-like client for the hub's login form, and cells run through the Jupyter
REST and websocket API.

The Python environments are built once per machine by ``scripts/test.sh``: the users'
Jupyter servers' (``$TAPHOUSE_TEST_HUB_ENV``, by ``taphouse hub setup``) and the
kernels' (``$TAPHOUSE_TEST_KERNEL_ENV``: the compute job environment with ipykernel and
matplotlib). Nothing here is skipped: a machine that cannot run them fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from accounts import PASSWORD, new_user

HUB_ENV = Path(os.environ.get("TAPHOUSE_TEST_HUB_ENV", "/var/cache/taphouse-test/hubenv"))
KERNEL_ENV = Path(os.environ.get("TAPHOUSE_TEST_KERNEL_ENV",
                                 "/var/cache/taphouse-test/kernelenv"))
CHECK_INTERVAL = 10  # seconds between account checks in the test hub (60 by default)


def require_hub_machine() -> None:
    """Fail (not skip) with what is missing."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the hub tests run as root (each user's server runs as its own uid)")
    for tool, advice in (("bwrap", "apt-get install bubblewrap"),
                         ("configurable-http-proxy",
                          "npm install -g configurable-http-proxy")):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is missing: {advice}")
    if not (HUB_ENV / "bin" / "python").exists():
        problems.append(f"no hub environment at {HUB_ENV}: run scripts/test.sh")
    if not (KERNEL_ENV / "bin" / "python").exists():
        problems.append(f"no kernel environment at {KERNEL_ENV}: run scripts/test.sh")
    if problems:
        pytest.fail("hub tests cannot run on this machine: " + "; ".join(problems),
                    pytrace=False)


def free_ports(count: int) -> int:
    """A port p such that p .. p+count-1 are free on 127.0.0.1 now."""
    import socket

    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count > 65000:
            continue
        ok = True
        for p in range(base + 1, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def sandbox_data_dir(prefix: str = "taphouse-hub-") -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o711)
    return base


@dataclass
class HubProcess:
    """``taphouse hub`` in a subprocess."""

    url: str
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        # Kept for a look after the data directory is gone.
        shutil.copyfile(self.log, Path(tempfile.gettempdir()) / "taphouse-hub-tests.log")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_hub(server: Any, hub_port: int, log: Path, **settings: Any) -> HubProcess:
    s = server.platform.settings
    env = dict(os.environ, TAPHOUSE_PORT=str(s.port), TAPHOUSE_HOST="127.0.0.1",
               TAPHOUSE_COMPUTE_ENV=s.compute_env, TAPHOUSE_HUB_ENV=str(HUB_ENV),
               TAPHOUSE_HUB_PORT=str(hub_port))
    env.update({f"TAPHOUSE_{k.upper()}": str(v) for k, v in settings.items()})
    out = open(log, "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "taphouse.cli", "--data-dir",
                             str(s.data_dir), "hub"], env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    out.close()
    url = f"http://127.0.0.1:{hub_port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited ({proc.returncode}):\n"
                               + log.read_text(errors="replace")[-4000:])
        try:
            if httpx.get(url + "/hub/login", timeout=2).status_code == 200:
                return HubProcess(url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise TimeoutError("the hub did not come up:\n" + log.read_text(errors="replace")[-4000:])


def add_user(server: Any, prefix: str = "h", **kwargs: Any) -> str:
    """A fresh account (:func:`accounts.new_user` with the hub tests' prefix)."""
    return new_user(server, prefix, **kwargs)


def browser(hub_url: str, source: str | None = None) -> httpx.Client:
    """A client with a cookie jar, optionally from another loopback address."""
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(base_url=hub_url, transport=transport, timeout=60,
                        follow_redirects=False)


def login_form(client: httpx.Client, name: str, password: str = PASSWORD,
               headers: dict | None = None) -> httpx.Response:
    """Log in through the hub's login page, as a browser does (its _xsrf field)."""
    page = client.get("/hub/login", headers=headers or {})
    assert page.status_code == 200, page.text[:300]
    match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    form = {"username": name, "password": password}
    if match:
        form["_xsrf"] = match.group(1)
    return client.post("/hub/login", data=form, headers=headers or {})


def api_token(client: httpx.Client, name: str) -> str:
    """An API token for the logged-in user, made through the hub's API with the
    browser's cookies (and its xsrf token)."""
    xsrf = client.cookies.get("_xsrf", path="/hub/") or client.cookies.get("_xsrf") or ""
    r = client.post(f"/hub/api/users/{name}/tokens", json={"note": "tests"},
                    headers={"X-XSRFToken": xsrf})
    assert r.status_code in (200, 201), r.text[:300]
    return r.json()["token"]


@dataclass
class UserServer:
    """A running Jupyter server of one user, reached with an API token."""

    hub_url: str
    name: str
    token: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.hub_url, timeout=120,
                                 headers={"Authorization": f"token {self.token}"})

    @property
    def prefix(self) -> str:
        return f"/user/{self.name}"

    def start(self, timeout: float = 120.0) -> float:
        """Ask the hub for the server and wait until it is up; returns seconds taken."""
        t0 = time.monotonic()
        r = self.http.post(f"/hub/api/users/{self.name}/server")
        assert r.status_code in (201, 202, 400), r.text[:300]
        self.wait_ready(timeout)
        return time.monotonic() - t0

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.http.get(f"/hub/api/users/{self.name}").json()
            server = info.get("servers", {}).get("", {})
            if server.get("ready"):
                return
            if not server.get("pending") and not server:
                raise AssertionError(f"the server did not start: {info}")
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}'s server did not become ready")

    def stop(self) -> None:
        r = self.http.delete(f"/hub/api/users/{self.name}/server")
        assert r.status_code in (202, 204), r.text[:300]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = self.http.get(f"/hub/api/users/{self.name}").json()
            if not info.get("servers"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}'s server did not stop")

    def new_kernel(self) -> Kernel:
        r = self.http.post(f"{self.prefix}/api/kernels", json={"name": "python3"})
        assert r.status_code == 201, r.text[:500]
        return Kernel(self, r.json()["id"])


class Kernel:
    """One kernel of a user's server, driven over the Jupyter websocket protocol."""

    def __init__(self, server: UserServer, kernel_id: str) -> None:
        import websocket

        self.server = server
        self.id = kernel_id
        url = server.hub_url.replace("http://", "ws://") + \
            f"{server.prefix}/api/kernels/{kernel_id}/channels"
        self.ws = websocket.create_connection(
            url, header=[f"Authorization: token {server.token}"], timeout=120)
        self.session = uuid.uuid4().hex

    def run(self, code: str, timeout: float = 120.0) -> tuple[str, dict | None]:
        """Execute ``code``; returns (stdout, error or None)."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": self.session,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False,
                        "stop_on_error": True}}))
        out: list[str] = []
        error = None
        replied = idle = False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell did not finish: {code[:80]!r}; so far {out}")
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                error = msg["content"]
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        return "".join(out), error

    def value(self, code: str, timeout: float = 120.0) -> Any:
        """Run ``code`` whose last line prints one JSON document; return it decoded."""
        out, error = self.run(code, timeout)
        assert error is None, f"{error['ename']}: {error['evalue']}\n" + \
            "\n".join(error.get("traceback", []))[-3000:]
        return json.loads(out.strip().splitlines()[-1])

    def close(self) -> None:
        self.ws.close()
