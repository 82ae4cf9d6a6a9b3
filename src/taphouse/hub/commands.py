"""``taphouse hub`` (write the hub's files and run JupyterHub with
configurable-http-proxy next to the taphouse server), ``taphouse hub setup`` (the Python
environment of the users' Jupyter servers), and the hub half of
``taphouse serve --hub``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taphouse.settings import Settings


#: The users' Jupyter servers: JupyterLab and the hub's single-user server (the same
#: JupyterHub version as the hub's own).
def hub_packages() -> list[str]:
    try:
        from importlib.metadata import version

        pinned = f"jupyterhub=={version('jupyterhub')}"
    except Exception:  # noqa: BLE001  (the hub extra is not installed here)
        pinned = "jupyterhub"
    return [pinned, "jupyter_server", "jupyterlab"]


#: What kernels need in the compute job environment besides JOB_PACKAGES.
KERNEL_PACKAGES = ("ipykernel", "matplotlib")


class HubUnavailable(RuntimeError):
    """The hub cannot start here; the message says what to install or run."""


def add_commands(sub: argparse._SubParsersAction) -> None:
    hub = sub.add_parser(
        "hub", help="run JupyterHub next to the taphouse server",
        description="Write the hub's configuration and secrets into <data dir>/hub and"
                    " run JupyterHub (with configurable-http-proxy) on 127.0.0.1; log in"
                    " with a taphouse account. The taphouse server must be running (with"
                    " compute set up): `taphouse serve --hub` starts both.")
    hub.add_argument("--port", type=int, default=None,
                     help="the hub's port (default $TAPHOUSE_HUB_PORT or 8001; the hub's"
                          " API and the proxy's use the next two)")
    hub.set_defaults(handler=_hub)
    hsub = hub.add_subparsers(dest="hub_command", metavar="ACTION")
    setup = hsub.add_parser(
        "setup", help="build the Python environment of the users' Jupyter servers",
        description="A virtual environment with JupyterLab and the hub's single-user"
                    " server (default: <data dir>/hub/env). Kernels run in the compute job"
                    " environment (`taphouse compute setup`).")
    setup.add_argument("--env", type=Path, default=None)
    setup.add_argument("--job-env", type=Path, default=None,
                       help="the compute job environment, where kernels run and get"
                            " ipykernel and matplotlib (default: the server's)")
    setup.add_argument("--python", default=None,
                       help="base interpreter (default /usr/bin/python3 when this one is"
                            " not reachable by sandboxed users)")
    setup.set_defaults(handler=_setup, store_access="none")


def _setup(args: argparse.Namespace) -> int:
    from taphouse.compute.commands import _default_python
    from taphouse.hub.config import hub_env_dir

    env = Path(os.path.abspath(args.env or hub_env_dir(args.settings)))
    python = args.python or _default_python()
    if not (env / "bin" / "python").exists():
        print(f"creating the hub environment {env} with {python}", file=sys.stderr)
        env.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([python, "-m", "venv", str(env)], check=True)
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", *hub_packages()], check=True)
    os.chmod(env, 0o755)
    print(f"hub environment ready: {env}")
    from taphouse.compute.service import ComputeSettings

    job_env = Path(args.job_env or ComputeSettings.from_settings(args.settings).env_dir)
    if not (job_env / "bin" / "python").exists():
        print(f"no compute job environment at {job_env}: run `taphouse compute setup`, then"
              " this again (kernels run there)", file=sys.stderr)
        return 1
    subprocess.run([str(job_env / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", *KERNEL_PACKAGES], check=True)
    print(f"kernels ready in the job environment {job_env}")
    return 0


def _hub(args: argparse.Namespace) -> int:
    settings = args.settings
    if args.port is not None:
        settings = settings.replace(hub_port=args.port)
    try:
        command, env, cwd = prepare(settings)
    except HubUnavailable as exc:
        print(f"taphouse hub: {exc}", file=sys.stderr)
        return 1
    print(f"taphouse hub at {settings.hub_url}/ (log in with a taphouse account; taphouse"
          f" at {settings.public_url})", file=sys.stderr, flush=True)
    os.chdir(cwd)
    os.umask(0o077)
    os.execve(command[0], command, env)
    return 0  # not reached


def check_machine(settings: Settings) -> str:
    """What the hub needs from the machine (not the Python environments); returns the
    proxy's command, or raises :class:`HubUnavailable` saying what to install."""
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        raise HubUnavailable("JupyterHub is not installed: pip install 'taphouse[hub]'") from None
    proxy: str | None = shutil.which(settings.hub_proxy)
    if proxy is None:
        raise HubUnavailable(
            f"{settings.hub_proxy} is not installed: npm install -g configurable-http-proxy"
            " (node and npm from Debian: apt-get install nodejs npm)")
    if os.geteuid() != 0:
        raise HubUnavailable("the hub runs each user's server as that user's own uid:"
                             " run it as root")
    if shutil.which("bwrap") is None:
        raise HubUnavailable("bubblewrap is not installed: apt-get install bubblewrap")
    return proxy


def ensure_environments(settings: Settings) -> None:
    """For ``taphouse serve --hub``: build what is missing of the compute job environment
    (where kernels run) and the hub environment (the users' Jupyter servers), as
    ``taphouse compute setup`` and ``taphouse hub setup`` would. Only the first start
    takes minutes (pip); later starts find both ready."""
    from taphouse.compute import commands as compute_commands
    from taphouse.compute.service import ComputeSettings
    from taphouse.hub.config import hub_env_dir
    from taphouse.storage import datadir

    # Private from the start, as the server makes them (their packages set the modes the
    # sandboxes need); else the server's first start warns that they were readable.
    datadir.prepare(settings.data_dir)
    for sub in ("compute", "hub"):
        datadir.make_private_dir(Path(settings.data_dir) / sub)
    job_env = ComputeSettings.from_settings(settings).env_dir
    if not (job_env / "bin" / "python").exists():
        print(f"taphouse serve --hub: building the compute job environment {job_env}"
              " (first start only; a few minutes)", file=sys.stderr, flush=True)
        if compute_commands._setup(argparse.Namespace(
                settings=settings, env=job_env, python=None, packages=[])) != 0:
            raise HubUnavailable(f"the compute job environment {job_env} could not be built")
    if not (hub_env_dir(settings) / "bin" / "python").exists() or not _has(job_env,
                                                                           "ipykernel"):
        print(f"taphouse serve --hub: building the hub environment {hub_env_dir(settings)}"
              " (first start only; a few minutes)", file=sys.stderr, flush=True)
        if _setup(argparse.Namespace(settings=settings, env=None, job_env=job_env,
                                     python=None)) != 0:
            raise HubUnavailable("the hub environment could not be built")


def _has(env: Path, package: str) -> bool:
    return any(env.glob(f"lib/python3*/site-packages/{package}/__init__.py"))


def prepare(settings: Settings) -> tuple[list[str], dict[str, str], Path]:
    """Check what the hub needs, write its files and say how to start it:
    (command, environment, working directory)."""
    from taphouse.hub.config import hub_env_dir, internal_url, write_files

    proxy = check_machine(settings)
    hub_env = hub_env_dir(settings)
    if not (hub_env / "bin" / "python").exists():
        raise HubUnavailable(f"no hub environment at {hub_env}: run `taphouse hub setup`"
                             " (or set TAPHOUSE_HUB_ENV)")
    files, secrets_env = write_files(settings, sandbox_gid=settings.compute_uid_base,
                                     proxy=proxy)
    _revoke_old_notebook_tokens(internal_url(settings), files.service_token)
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "VIRTUAL_ENV")}
    env.update(secrets_env)
    env["PATH"] = os.path.dirname(proxy) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    command = [sys.executable, "-m", "jupyterhub", "-f", str(files.config)]
    return command, env, files.root


def _revoke_old_notebook_tokens(url: str, token_file: Path) -> None:
    """The hub's servers died with its last run: their notebook tokens end now."""
    request = urllib.request.Request(
        url + "/api/hub/notebook-tokens/revoke-all", data=b"{}", method="POST",
        headers={"X-Taphouse-Hub": token_file.read_text().strip(),
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            json.loads(r.read() or b"{}")
    except OSError as exc:
        print(f"taphouse hub: could not reach taphouse at {url} ({exc}); notebook tokens"
              " of an earlier run stay valid until they expire", file=sys.stderr)


class HubProcess:
    """``taphouse hub`` as a child of ``taphouse serve --hub``, started once the server
    answers and stopped with it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen | None = None
        self._stop = threading.Event()

    def start_when_up(self) -> None:
        threading.Thread(target=self._run, name="taphouse-hub", daemon=True).start()

    def _run(self) -> None:
        from taphouse.hub.config import internal_url

        url = internal_url(self.settings) + "/tap/availability"
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        if self._stop.is_set():
            return
        s = self.settings
        env = dict(os.environ, TAPHOUSE_HOST=s.host, TAPHOUSE_PORT=str(s.port),
                   TAPHOUSE_BASE_URL=s.base_url)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "taphouse.cli", "--data-dir", str(s.data_dir), "hub"],
            env=env)

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
