"""The hub's Spawner: each user's Jupyter server in a bubblewrap sandbox of its own, as
the user's own unprivileged uid (the compute sandbox's ``uid_base + user id``).

At start it asks taphouse for a notebook token (with the user's taphouse token from
``auth_state`` and the hub's service token); the answer also names the user's uid, home,
the job environment, the client library and the API socket. The server's sandbox shares
the host network (the proxy reaches it on 127.0.0.1) and nothing else of the host's
files but the system, those environments, the hub's library and configuration and the
home; it may start nested sandboxes (its kernels, see :mod:`taphouse.hub.singleuser`).
``TAPHOUSE_URL``/``TAPHOUSE_TOKEN``/``TAPHOUSE_SOCKET`` pass on to the kernels, so
``taphouse.connect()`` needs no arguments in a notebook.

At stop the sandbox is killed and the notebook token revoked. :meth:`poll` also checks
the account (every ``poll_interval``, 30 s): a disabled, deleted or re-created account
reads as a stopped server, and the hub then stops it.
"""

from __future__ import annotations

import json
from pathlib import Path

from jupyterhub.spawner import Spawner
from jupyterhub.utils import random_port
from traitlets import Unicode

from taphouse.compute.sandbox import Limits, Sandbox, SandboxProcess, SandboxRun, _venv_home
from taphouse.hub.api import TaphouseAPI, TaphouseError
from taphouse.hub.mounts import (
    HUB_CONFIG_MOUNT,
    HUB_ENV_MOUNT,
    HUB_LIB_MOUNT,
    RUNTIME_DIR,
)

LAUNCH = (f"import sys; sys.path.insert(0, {HUB_LIB_MOUNT!r});"
          " from taphouse.hub.singleuser import main; main()")
#: Threads and processes of one user (server, kernels and compute jobs count together:
#: RLIMIT_NPROC is per uid).
SERVER_PROCESSES = 512
KERNEL_PROCESSES = 256


class SandboxSpawner(Spawner):
    """Start a user's Jupyter server in its own sandbox (see the module docstring)."""

    taphouse_url = Unicode("http://127.0.0.1:8000", config=True)
    service_token_file = Unicode(config=True)
    hub_env = Unicode(config=True, help="Python environment of the users' servers.")
    hub_lib = Unicode(config=True, help="The taphouse package for the users' servers.")
    jupyter_config = Unicode(config=True, help="Jupyter configuration directory.")
    run_dir = Unicode(config=True, help="Pid files and logs of the servers (host).")

    token_id = Unicode("")
    _proc: SandboxProcess | None = None

    @property
    def api(self) -> TaphouseAPI:
        return TaphouseAPI(self.taphouse_url, self.service_token_file)

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.token_id = state.get("token_id", "")

    def get_state(self) -> dict:
        state: dict = super().get_state()
        if self.token_id:
            state["token_id"] = self.token_id
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self.token_id = ""

    async def start(self) -> tuple[str, int]:
        state = await self.user.get_auth_state()
        if not state or not state.get("token"):
            raise RuntimeError("no taphouse login for this user: log in again")
        grant = await self.api.notebook_grant(state["token"], self.name or "")
        self.token_id = grant["token_id"]
        self.user_id = grant["user_id"]
        self.ip = "127.0.0.1"
        self.port = random_port()
        name = grant["username"]
        home_inside = f"/home/{name}"
        env = {k: v for k, v in self.get_env().items()
               if k.startswith(("JUPYTERHUB_", "JPY_"))}
        env.update({
            "HOME": home_inside, "USER": name, "LOGNAME": name, "LANG": "C.UTF-8",
            "PATH": f"{HUB_ENV_MOUNT}/bin:/usr/local/bin:/usr/bin:/bin", "TMPDIR": "/tmp",
            "SHELL": "/bin/false", "JUPYTER_CONFIG_DIR": HUB_CONFIG_MOUNT,
            "JUPYTER_CONFIG_PATH": HUB_CONFIG_MOUNT, "JUPYTER_RUNTIME_DIR": RUNTIME_DIR,
            "JUPYTER_DATA_DIR": "/tmp/jupyter/data", "JUPYTER_PATH": "/tmp/jupyter/data",
            "TAPHOUSE_URL": grant["url"], "TAPHOUSE_TOKEN": grant["token"],
            "TAPHOUSE_SOCKET": "/run/taphouse/api.sock",
            "TAPHOUSE_SANDBOX_GID": str(grant["gid"]),
            "TAPHOUSE_KERNEL_LIMITS": json.dumps(dict(grant["limits"],
                                                      processes=KERNEL_PROCESSES)),
        })
        run_dir = Path(self.run_dir)
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log = run_dir / f"{name}.log"
        files = {HUB_ENV_MOUNT: Path(self.hub_env), HUB_LIB_MOUNT: Path(self.hub_lib),
                 HUB_CONFIG_MOUNT: Path(self.jupyter_config)}
        for env_dir in (Path(self.hub_env), Path(grant["env_dir"])):
            base = _venv_home(env_dir)  # the base interpreter, where not under /usr
            if base is not None and not str(base).startswith("/usr/"):
                files[str(base)] = base
        limits = Limits(memory=grant["limits"]["memory"], cpu_seconds=2**31,
                        processes=SERVER_PROCESSES, open_files=4096,
                        file_size=grant["limits"]["file_size"],
                        tmp_size=grant["limits"]["tmp_size"])
        run = SandboxRun(uid=grant["uid"], username=name, home=Path(grant["home"]),
                         workdir=None, argv=[f"{HUB_ENV_MOUNT}/bin/python", "-I", "-c", LAUNCH,
                                             *self.get_args()],
                         env=env, stdout=log, stderr=log, limits=limits, files=files,
                         cwd=home_inside, network=True, nested=True)
        sandbox = Sandbox(env_dir=Path(grant["env_dir"]), lib_dir=Path(grant["lib_dir"]),
                          socket_path=Path(grant["socket"]), run_dir=run_dir,
                          uid_base=grant["gid"])
        try:
            self._proc = sandbox.start(run, f"server-{name}")
        except Exception:
            await self.api.revoke_notebook(self.token_id)
            raise
        self.log.info("started %s's server in its sandbox (uid %d, port %d)", name,
                      grant["uid"], self.port)
        return self.ip, self.port

    async def poll(self) -> int | None:
        if self._proc is None:
            return 0
        status = self._proc.poll()
        if status is not None:
            return status
        try:
            account = await self.api.account(self.user.name)
        except TaphouseError as exc:
            self.log.warning("could not check %s's account: %s", self.user.name, exc)
            return None
        if (account is None or account.get("disabled")
                or account.get("user_id") != getattr(self, "user_id", None)):
            self.log.info("%s's taphouse account is disabled or gone: stopping the server",
                          self.user.name)
            return 1
        return None

    async def stop(self, now: bool = False) -> None:
        if self._proc is not None:
            self._proc.forget()  # kills the sandbox (and its kernels) if still running
            self._proc = None
        if self.token_id:
            try:
                await self.api.revoke_notebook(self.token_id)
            except TaphouseError as exc:
                self.log.error("could not revoke notebook token %s: %s", self.token_id, exc)
            self.token_id = ""
