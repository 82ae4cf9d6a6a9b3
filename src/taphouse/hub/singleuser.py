"""A user's Jupyter server, inside its sandbox (imported there only).

The hub's spawner (:mod:`taphouse.hub.spawner`) starts ``python -I`` with
:func:`main` in a bubblewrap sandbox as the user's own uid; the sandbox shares the host's
network (the hub's proxy must reach the server) but sees only the system, the Python
environments, this package, the user's home and a private ``/tmp``: no data directory,
no other home. Jupyter's configuration comes from :func:`configure` (the generated
``jupyter_server_config.py`` calls it), never from the home, where the user's own code
could plant one:

- the contents API is rooted at the home and refuses any path whose real location
  leaves it (:class:`HomeContentsManager`; links in the home are how a kernel would try);
- terminals are off and every server extension not on :data:`ALLOWED_EXTENSIONS` is
  disabled (the language-server extension, for one, starts processes);
- the only kernel spec is :class:`SandboxKernelSpecManager`'s, whose provisioner
  (:class:`SandboxProvisioner`) starts each kernel in the compute sandbox (no network but
  the API socket), talking to this server over ZeroMQ ``ipc`` sockets in a per-kernel
  directory bound into that sandbox.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from jupyter_client.provisioning import LocalProvisioner
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web

from taphouse.compute.sandbox import (
    ENV_MOUNT,
    LIB_MOUNT,
    SOCKET_MOUNT,
    Limits,
    Sandbox,
    SandboxRun,
)
from taphouse.hub.mounts import DATA_DIR, HUB_CONFIG_MOUNT, KERNELS_DIR, RUNTIME_DIR

PROVISIONER = "taphouse-sandbox"
KERNEL_NAME = "python3"
#: Server extensions that may load: they serve pages and files, none runs a process.
ALLOWED_EXTENSIONS = frozenset({"jupyterlab", "notebook_shim", "jupyterhub",
                                "jupyterhub.singleuser", "nbclassic", "notebook"})
#: Run at kernel start: the taphouse client (pyvo, astropy: seconds on a loaded machine)
#: is imported in the background while the user reads the notebook, so the first
#: ``taphouse.connect()`` finds it loaded (an import of it meanwhile waits for this one).
WARM_UP = ("import threading, importlib; threading.Thread(target=importlib.import_module,"
           " args=('taphouse.client.client',), name='taphouse-warm-up', daemon=True).start()")
#: The environment variables a kernel gets from its server (nothing else passes).
KERNEL_ENV_KEEP = ("TAPHOUSE_URL", "TAPHOUSE_TOKEN", "TAPHOUSE_SOCKET", "HOME", "USER",
                   "LOGNAME", "LANG", "TZ")


class _OutsideHome(OSError, web.HTTPError):
    """A contents path whose real location is outside the home: 404 to the API, and
    skipped (EACCES) in a directory listing."""

    def __init__(self, path: str) -> None:
        OSError.__init__(self, errno.EACCES, "outside the home directory")
        web.HTTPError.__init__(self, 404, "%s is outside the home directory", path)


class HomeContentsManager(AsyncLargeFileManager):
    """Jupyter's file manager, confined to ``root_dir``: a path (or a link in it) whose
    real location is outside is refused."""

    def _get_os_path(self, path: str) -> str:
        os_path: str = super()._get_os_path(path)
        root = os.path.realpath(self.root_dir)
        real = os.path.realpath(os_path)
        if real != root and not real.startswith(root.rstrip("/") + "/"):
            raise _OutsideHome(path)
        return os_path


class SandboxKernelSpecManager(KernelSpecManager):
    """One kernel, Python in the compute sandbox; kernel specs in the home or anywhere
    else are ignored (a spec names the command that runs)."""

    def _spec(self) -> KernelSpec:
        return KernelSpec(
            argv=[f"{ENV_MOUNT}/bin/python", "-m", "ipykernel_launcher", "-f",
                  "{connection_file}", f"--IPKernelApp.exec_lines={[WARM_UP]!r}"],
            display_name="Python 3 (taphouse)", language="python",
            interrupt_mode="message", env={},
            metadata={"kernel_provisioner": {"provisioner_name": PROVISIONER},
                      "debugger": False},
            resource_dir=HUB_CONFIG_MOUNT)

    def find_kernel_specs(self) -> dict[str, str]:
        return {KERNEL_NAME: HUB_CONFIG_MOUNT}

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        if kernel_name.lower() != KERNEL_NAME:
            raise NoSuchKernel(kernel_name)
        return self._spec()

    def get_all_specs(self) -> dict[str, Any]:
        return {KERNEL_NAME: {"resource_dir": HUB_CONFIG_MOUNT,
                              "spec": self._spec().to_dict()}}


class SandboxProvisioner(LocalProvisioner):  # type: ignore[misc]
    """Starts a kernel in the compute sandbox (nested in this server's own), with its
    connection file and ``ipc`` sockets in a directory bound into both."""

    kernel_dir: Path | None = None
    exit_status: int | None = None

    async def poll(self) -> int | None:
        status = await super().poll()
        if status is not None:
            self.exit_status = status
        return status

    async def wait(self) -> int | None:
        if self.process is not None:
            self.exit_status = await super().wait()
            return self.exit_status
        return await super().wait()

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km: Any = self.parent  # the kernel manager (traitlets: typed Any | None)
        kdir = Path(KERNELS_DIR) / str(km.kernel_id or self.kernel_id)
        kdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.kernel_dir = kdir
        km.transport = "ipc"
        km.connection_file = str(kdir / "connection.json")
        km.ip = str(kdir / "ipc")
        return await super().pre_launch(**kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        assert self.kernel_dir is not None
        home = os.environ["HOME"]
        cwd = os.path.realpath(str(kwargs.get("cwd") or home))
        if cwd != home and not cwd.startswith(home + "/"):
            cwd = home
        given = kwargs.get("env") or {}
        env = {k: os.environ[k] for k in KERNEL_ENV_KEEP if k in os.environ}
        env.update({k: v for k, v in given.items() if k.startswith("JPY_")})
        env.update({"PATH": f"{ENV_MOUNT}/bin:/usr/local/bin:/usr/bin:/bin",
                    "PYTHONPATH": LIB_MOUNT, "TMPDIR": "/tmp",
                    "TAPHOUSE_SOCKET": SOCKET_MOUNT})
        limits = Limits(**json.loads(os.environ.get("TAPHOUSE_KERNEL_LIMITS", "{}")))
        sandbox = Sandbox(env_dir=Path(ENV_MOUNT), lib_dir=Path(LIB_MOUNT),
                          socket_path=Path(SOCKET_MOUNT), run_dir=self.kernel_dir,
                          uid_base=int(os.environ.get("TAPHOUSE_SANDBOX_GID", "2000000")))
        log = self.kernel_dir / "kernel.log"
        # The directory is the kernel's too (a restarted kernel's was): never follow a link.
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        run = SandboxRun(uid=os.getuid(), username=os.environ.get("USER", "user"),
                         home=Path(home), workdir=None, argv=cmd, env=env, stdout=log,
                         stderr=log, limits=limits,
                         binds={str(self.kernel_dir): self.kernel_dir}, cwd=cwd)
        started = sandbox.start(run, "kernel", switch_user=False)
        self.process = started.proc
        self.pid = started.pid
        try:
            self.pgid = os.getpgid(started.pid)
        except OSError:
            self.pgid = None
        self.cwd = cwd
        return self.connection_info

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if self.kernel_dir is None:
            return
        if self.exit_status not in (None, 0):
            # The kernel's own output (and bubblewrap's complaints) into the server's log;
            # never through a link the kernel left (to the server's secrets, say).
            tail = _tail(self.kernel_dir / "kernel.log", 3000)
            self.log.warning("kernel %s ended with status %s:\n%s", self.kernel_id,
                             self.exit_status, tail)
        if not restart:
            shutil.rmtree(self.kernel_dir, ignore_errors=True)


def _tail(path: Path, size: int) -> str:
    """The end of a regular file, not followed if it is a link ('' when unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        end = f.seek(0, os.SEEK_END)
        f.seek(max(0, end - size))
        return f.read(size).decode("utf-8", "replace")


def _installed_extensions() -> set[str]:
    """Server extensions enabled by the environment's own configuration files."""
    from jupyter_core.paths import jupyter_config_path

    names: set[str] = set()
    for d in jupyter_config_path():
        for f in glob.glob(os.path.join(d, "jupyter_server_config.d", "*.json")):
            try:
                with open(f) as fh:
                    data = json.load(fh)
                names.update(data.get("ServerApp", {}).get("jpserver_extensions", {}))
            except (OSError, ValueError, AttributeError):
                continue
    return names


def configure(c: Any) -> None:
    """The Jupyter server configuration inside the sandbox (``c`` is Jupyter's config)."""
    home = os.environ["HOME"]
    c.ServerApp.root_dir = home
    c.ServerApp.terminals_enabled = False
    c.ServerApp.contents_manager_class = HomeContentsManager
    c.ServerApp.kernel_spec_manager_class = SandboxKernelSpecManager
    c.ServerApp.open_browser = False
    c.ContentsManager.allow_hidden = False
    c.FileContentsManager.delete_to_trash = False
    c.FileContentsManager.always_delete_dir = True
    c.KernelManager.transport = "ipc"
    c.KernelProvisionerFactory.default_provisioner_name = PROVISIONER
    c.MappingKernelManager.default_kernel_name = KERNEL_NAME
    c.ServerApp.jpserver_extensions = {
        name: False for name in _installed_extensions() - ALLOWED_EXTENSIONS}
    # No process from the server, which shares the host's network: JupyterLab's
    # extension manager would pip-install (and build) packages from PyPI, and
    # nbconvert reads Jinja templates from the working directory (see main(): not the
    # home, where a kernel could plant one).
    c.LabApp.extension_manager = "readonly"
    c.TemplateExporter.extra_template_basedirs = []
    # JupyterLab keeps its settings beside the home's files, not in the read-only config.
    c.LabApp.user_settings_dir = f"{home}/.jupyter/lab/user-settings"
    c.LabApp.workspaces_dir = f"{home}/.jupyter/lab/workspaces"


def main() -> None:
    """Start the single-user server (the sandbox's command)."""
    for d in (RUNTIME_DIR, KERNELS_DIR, DATA_DIR):
        os.makedirs(d, mode=0o700, exist_ok=True)
    # Not the home: what a kernel writes there must never be read as the server's own
    # files (nbconvert's templates come from the working directory, for one).
    os.chdir(RUNTIME_DIR)
    from jupyterhub.singleuser import main as singleuser_main

    sys.exit(singleuser_main())
