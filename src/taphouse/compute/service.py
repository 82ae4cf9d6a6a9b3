"""Compute jobs: the ``"compute"`` job kind and the sandboxes it runs in.

:class:`ComputeService` owns the compute directories (``data_dir/compute``: ``homes/``
per user, ``run/`` with the API socket and pid files, ``lib/`` with the client the
sandbox imports, ``env/`` the default job environment), checks at start-up that a real
sandbox works (otherwise compute is refused with the reason, never run unsandboxed), and
is the :class:`~taphouse.jobs.JobRunner` of compute jobs.

A job's parameters: ``script`` (Python source), ``args`` (a JSON array), ``timeout``
(seconds) and ``memory`` (bytes); its request parts are input files, copied into the
work directory (``/job/work``, the current directory of the script). Every regular file
there that is new or changed when the script ends is an output file. The job's
``summary.json`` (its result) records the exit status, output files and the user tables
written while it ran; stdout and stderr are kept beside it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taphouse.auth.authenticator import NOTEBOOK_JOB_PREFIX
from taphouse.compute import cgroups
from taphouse.compute.files import MAX_DEPTH, TreeTooDeep, regular_files, tree_usage
from taphouse.compute.sandbox import (
    ENV_MOUNT,
    JOB_DIR,
    LIB_MOUNT,
    SOCKET_MOUNT,
    Limits,
    Sandbox,
    SandboxProcess,
    SandboxRun,
    SandboxUnavailable,
)
from taphouse.errors import ServiceError
from taphouse.jobs.model import Job, JobResult

if TYPE_CHECKING:
    from taphouse.auth.authenticator import Authenticator
    from taphouse.query.cancel import CancelHandle
    from taphouse.settings import Settings
    from taphouse.userspace import UserSpace

log = logging.getLogger("taphouse.compute")

KIND = "compute"
SUMMARY = "summary.json"
STDOUT = "stdout.txt"
STDERR = "stderr.txt"
TAIL = 2000
MAX_OUTPUTS = 10_000  # output files listed (and served) per job
TOO_DEEP = 2**62  # the usage of a tree deeper than the walk goes


class ComputeError(ServiceError):
    """A compute request or run that failed; ``message`` says why."""

    status = 400


@dataclass(frozen=True)
class ComputeSettings:
    """The compute part of :class:`~taphouse.settings.Settings`, resolved."""

    mode: str
    env_dir: Path
    uid_base: int
    timeout_default: float
    timeout_limit: float
    memory_default: int
    memory_limit: int
    home_quota: int
    tmp_size: int
    processes: int
    open_files: int
    file_size: int
    memory_cgroup: str = "auto"

    @classmethod
    def from_settings(cls, s: Settings) -> ComputeSettings:
        # Absolute: bubblewrap binds it from "/" (the default data dir is relative).
        env = (Path(s.compute_env) if s.compute_env else s.data_dir / "compute" / "env").absolute()
        return cls(mode=s.compute.lower(), env_dir=env, uid_base=s.compute_uid_base,
                   timeout_default=s.compute_timeout_default,
                   timeout_limit=s.compute_timeout_limit,
                   memory_default=s.compute_memory_default,
                   memory_limit=s.compute_memory_limit, home_quota=s.compute_home_quota,
                   tmp_size=s.compute_tmp_size, processes=s.compute_processes,
                   open_files=s.compute_open_files, file_size=s.compute_file_size,
                   memory_cgroup=s.compute_memory_cgroup)


class ComputeService:
    """Sandboxed user code for one server (see the module docstring).

    Parameters
    ----------
    settings
        Server settings.
    authenticator
        Issues and revokes job tokens; resolves job owners.
    userspace
        Lists the owner's tables before and after a run.
    """

    def __init__(self, settings: Settings, authenticator: Authenticator,
                 userspace: UserSpace) -> None:
        self.settings = settings
        self.config = ComputeSettings.from_settings(settings)
        self.auth = authenticator
        self.userspace = userspace
        self.data_dir = Path(settings.data_dir).absolute()  # bubblewrap binds from "/"
        self.root = self.data_dir / "compute"
        self.homes = self.root / "homes"
        self.run_dir = self.root / "run"
        self.lib_dir = self.root / "lib"
        self.socket_path = self.run_dir / "api.sock"
        self.jobs_dir = Path(settings.jobs_dir)
        self.sandbox = Sandbox(env_dir=self.config.env_dir, lib_dir=self.lib_dir,
                               socket_path=self.socket_path, run_dir=self.run_dir,
                               uid_base=self.config.uid_base)
        #: Why compute is not available (None: it is).
        self.unavailable: str | None = "compute has not been started"
        #: What bounds a job's memory (a cgroup, or RLIMIT_DATA and the watchdog, and
        #: why no cgroup), set by :meth:`start`.
        self.memory_bound = "not started"
        #: The API socket, listening once :meth:`start` succeeded (served by
        #: :class:`~taphouse.compute.listener.SandboxListener`).
        self.socket: socket.socket | None = None

    @property
    def available(self) -> bool:
        return self.unavailable is None

    # --- start-up -----------------------------------------------------------------------
    def start(self) -> None:
        """Set up and check the sandbox. With ``compute=on`` a failure stops the server;
        with ``auto`` compute is refused with the reason; ``off`` never starts it."""
        if self.config.mode == "off":
            self.unavailable = "compute is disabled on this server (TAPHOUSE_COMPUTE=off)"
            return
        if self.config.mode == "auto" and not (self.config.env_dir / "bin" / "python").exists():
            # Not set up: say so cheaply, without probing (most test servers, plain demos).
            self.unavailable = (f"compute is not set up on this server: no job environment"
                                f" at {self.config.env_dir} (run `taphouse compute setup`)")
            return
        try:
            self.sandbox.preflight()
            self._prepare()
            from taphouse.compute.listener import bind_socket

            self.socket = bind_socket(self.socket_path, self.sandbox.gid)
            self.sandbox.check_paths()
            self.sandbox.cgroups, self.memory_bound = cgroups.detect(
                cgroups.server_name(self.data_dir), setting=self.config.memory_cgroup)
            if self.sandbox.cgroups is None:
                self.memory_bound = ("RLIMIT_DATA per process + resident memory watchdog"
                                     f" (no memory cgroup: {self.memory_bound})")
            self.sandbox.kill_leftovers()
            if self.sandbox.cgroups is not None:
                self.sandbox.cgroups.remove_leftovers()
                self.sandbox.cgroups.sweep()
            # Notebook tokens belong to the hub's servers, which outlive this server.
            self.auth.tokens.revoke_all_jobs(keep_prefix=NOTEBOOK_JOB_PREFIX)
            probe = self.run_dir / "probe"
            shutil.rmtree(probe, ignore_errors=True)
            self.sandbox.probe(probe / "work", probe / "home")
            shutil.rmtree(probe, ignore_errors=True)
        except SandboxUnavailable as exc:
            self.stop()  # no jobs will run: no cgroup left behind
            self.sandbox.cgroups = None
            self.unavailable = f"compute is not available on this server: {exc.message}"
            if self.config.mode == "on":
                raise
            log.error("%s", self.unavailable)
            return
        self.unavailable = None
        log.info("compute: sandbox ready (job environment %s); job memory bounded by %s",
                 self.config.env_dir, self.memory_bound)

    def stop(self) -> None:
        """At server shutdown: remove this server's memory cgroup (jobs are over)."""
        if self.sandbox.cgroups is not None:
            self.sandbox.cgroups.close()

    def _prepare(self) -> None:
        gid = self.sandbox.gid
        # The sandbox group may traverse (never list or read) the way down to what
        # bubblewrap binds; each home and work directory belongs to its user alone.
        for d in (self.data_dir, self.root, self.homes, self.run_dir, self.jobs_dir):
            d.mkdir(parents=True, exist_ok=True)
            _own(d, 0, gid, 0o710)
        _copy_client(self.lib_dir, gid)

    def require(self) -> None:
        if self.unavailable is not None:
            raise SandboxUnavailable(self.unavailable)

    # --- the job runner ------------------------------------------------------------------
    def validate(self, params: dict[str, str]) -> None:
        self.require()
        script = params.get("script")
        if not script or not script.strip():
            raise ComputeError("give the Python code to run as 'script' (or 'notebook')")
        _json_args(params.get("args"))
        self.timeout(params)
        self.memory(params)

    def timeout(self, params: dict[str, str]) -> float:
        return _number(params.get("timeout"), "timeout", self.config.timeout_default,
                       self.config.timeout_limit, "seconds")

    def memory(self, params: dict[str, str]) -> int:
        return int(_number(params.get("memory"), "memory", self.config.memory_default,
                           self.config.memory_limit, "bytes", minimum=64 * 1024**2))

    def home_of(self, user_id: int) -> Path:
        return self.homes / str(user_id)

    def ensure_home(self, user_id: int) -> tuple[Path, bool]:
        """The user's home (the same for compute jobs and notebooks), owned by the user's
        uid, mode 0700; and whether it was created just now."""
        uid = self.sandbox.uid_for(user_id)
        home = self.home_of(user_id)
        created = False
        if not home.is_dir():
            home.mkdir(parents=True)
            created = True
        _own(home, uid, uid, 0o700)
        return home, created

    def run(self, job: Job, cancel: CancelHandle, workdir: Path) -> JobResult:
        self.require()
        if job.owner_id is None:
            raise ComputeError("compute jobs need a login")
        self.auth.identity_for(job.owner_id)  # refuses a disabled or deleted account
        user = self.auth.accounts.user_by_id(job.owner_id)
        if user is None:  # deleted since identity_for (a job ERROR, as a deleted owner)
            raise ComputeError("the account that owns this job is disabled or deleted")
        uid = self.sandbox.uid_for(user.id)
        gid = self.sandbox.gid
        home, _created = self.ensure_home(user.id)
        _own(workdir, 0, gid, 0o710)
        work = workdir / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        inputs = self._place_inputs(job, workdir, work, uid)
        _own(work, uid, uid, 0o700)
        script = workdir / "script.py"
        args = workdir / "args.json"
        script.write_text(job.params["script"])
        args.write_text(json.dumps(_json_args(job.params.get("args"))))
        for f in (script, args):
            _own(f, 0, gid, 0o640)
        identity = self.auth.identity_for(job.owner_id)
        before = {t.name: t.version_id for t in self.userspace.tables(identity)}
        used_before = _usage(home)
        allowed = max(self.config.home_quota, used_before)
        timeout = job.execution_duration
        memory = self.memory(job.params)
        token = self.auth.tokens.issue_job(user.id, job.id, lifetime=timeout + 60.0)
        env = {
            "PATH": f"{ENV_MOUNT}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": f"/home/{user.name}",
            "USER": user.name, "LOGNAME": user.name, "LANG": "C.UTF-8", "TMPDIR": "/tmp",
            "PYTHONPATH": LIB_MOUNT, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "MPLBACKEND": "Agg", "TAPHOUSE_URL": self.settings.public_url,
            "TAPHOUSE_SOCKET": SOCKET_MOUNT, "TAPHOUSE_TOKEN": token.secret,
            "TAPHOUSE_JOB_ID": job.id, "TAPHOUSE_ARGS": f"{JOB_DIR}/args.json",
        }
        limits = Limits(memory=memory, cpu_seconds=int(timeout) + 5,
                        processes=self.config.processes, open_files=self.config.open_files,
                        file_size=self.config.file_size, tmp_size=self.config.tmp_size)
        stdout, stderr = workdir / STDOUT, workdir / STDERR
        for f in (stdout, stderr):
            f.write_bytes(b"")
        run = SandboxRun(uid=uid, username=user.name, home=home, workdir=work,
                         argv=[f"{ENV_MOUNT}/bin/python", f"{JOB_DIR}/script.py"], env=env,
                         stdout=stdout, stderr=stderr, limits=limits,
                         files={f"{JOB_DIR}/script.py": script, f"{JOB_DIR}/args.json": args})
        started = time.time()
        status: int | None = None
        over_quota: int | None = None
        over_memory: int | None = None
        memory_bound = "not started"
        try:
            proc = self.sandbox.start(run, job.id)
            memory_bound = proc.memory_bound
            try:
                cancel.attach(proc)
                status, over_quota, over_memory = self._watch(proc, cancel, home, work,
                                                              allowed, memory)
            finally:
                proc.forget()
                cancel.detach()
        finally:
            self.auth.tokens.revoke_job(job.id)
        elapsed = time.time() - started
        if not workdir.is_dir():  # deleted while it ran: nothing left to describe
            raise ComputeError(f"the job was stopped: {cancel.reason or 'it was deleted'}")
        used_after = _usage(home)
        outputs = self._outputs(work, inputs)
        after = self.userspace.tables(identity)
        written = [f"mydb.{t.name}" for t in after if before.get(t.name) != t.version_id]
        summary = {"exit_status": status, "seconds": round(elapsed, 3),
                   "outputs": outputs, "tables": sorted(written),
                   "memory_bound": memory_bound,
                   "home_bytes": used_after, "home_quota": self.config.home_quota,
                   "stdout_bytes": stdout.stat().st_size,
                   "stderr_bytes": stderr.stat().st_size}
        final = workdir / SUMMARY
        final.write_text(json.dumps(summary))
        failure = None
        if over_memory is not None:
            how = (f"the job's processes used {over_memory // 1024**2} MiB together"
                   if over_memory > 0 else "the kernel's OOM killer stopped a process")
            failure = (f"memory limit of {memory // 1024**2} MiB exceeded ({how}): the job"
                       " was stopped (ask for more with memory=...)")
        elif over_quota is not None and over_quota >= TOO_DEEP:
            failure = (f"the job nested directories deeper than {MAX_DEPTH} levels in its home"
                       " or work directory, which the quota cannot measure: it was stopped")
        elif over_quota is not None:
            failure = (f"the home directory grew past its quota ({over_quota} bytes of"
                       f" {allowed} allowed): the job was stopped; delete files to make room")
        elif cancel.reason:
            failure = f"the job was stopped: {cancel.reason}"
        elif status != 0:
            failure = f"the script ended with exit status {_describe(status)}"
        elif used_after > allowed:
            failure = (f"the home directory is over its quota ({used_after} bytes of"
                       f" {allowed} allowed); delete files to make room")
        if failure is not None:
            tail = _tail(stderr)
            raise ComputeError(failure + (f"; stderr ends with:\n{tail}" if tail else ""))
        return JobResult(file=SUMMARY, mime="application/json", size=final.stat().st_size,
                         name="summary")

    def _watch(self, proc: SandboxProcess, cancel: CancelHandle, home: Path, work: Path,
               allowed: int, memory: int) -> tuple[int | None, int | None, int | None]:
        """Wait for the run, checking the home quota (home + work directory) and the
        memory of all its processes together as it goes; returns (exit status, usage
        when killed for the quota, memory when killed for memory: the peak, or 0 when
        the cgroup's OOM killer acted and the peak is unknown).

        In a memory cgroup the kernel bounds the memory; one OOM kill ends the whole job
        (also when only a child process was killed). Without one, RLIMIT_DATA bounds
        each process and this loop their sum, every 0.2 s."""
        period = 0.5
        next_check = time.monotonic() + period
        next_memory = time.monotonic() + 0.2
        in_cgroup = proc.cgroup is not None
        while True:
            status = proc.poll()
            if status is not None:
                if in_cgroup and proc.oom_kills():
                    return status, None, proc.memory_peak() or 0
                return status, None, None
            if cancel.reason:
                proc.kill()
            now = time.monotonic()
            if now >= next_memory:
                next_memory = now + 0.2
                if in_cgroup:
                    if proc.oom_kills():
                        proc.kill()
                        proc.wait()
                        return proc.poll(), None, proc.memory_peak() or 0
                else:
                    # RLIMIT_DATA bounds each process; this bounds their sum (many
                    # processes of the memory limit each would otherwise add up past it).
                    used_memory = proc.memory()
                    if used_memory > memory:
                        proc.kill()
                        proc.wait()
                        return proc.poll(), None, used_memory
            if now >= next_check:
                t0 = time.monotonic()
                used = _usage(home) + _usage(work)
                cost = time.monotonic() - t0
                # Walking a large home is not free: check less often when it is slow.
                next_check = time.monotonic() + max(period, 20 * cost)
                if used > allowed:
                    proc.kill()
                    proc.wait()
                    return proc.poll(), used, None
            try:
                proc.wait(0.05)
            except Exception:  # noqa: BLE001  (subprocess.TimeoutExpired)
                pass

    def _place_inputs(self, job: Job, workdir: Path, work: Path,
                      uid: int) -> dict[str, tuple[int, int]]:
        inputs: dict[str, tuple[int, int]] = {}
        for name, info in job.parts.items():
            target = work / check_file_name(name)
            shutil.copyfile(workdir / info["file"], target)
            _own(target, uid, uid, 0o600)
            st = target.stat()
            inputs[target.name] = (st.st_size, st.st_mtime_ns)
        return inputs

    def _outputs(self, work: Path, inputs: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
        out = []
        try:
            for rel, st in regular_files(work):
                if inputs.get(rel) == (st.st_size, st.st_mtime_ns):
                    continue
                try:
                    rel.encode("utf-8")
                except UnicodeEncodeError:  # not UTF-8: no name to give it in JSON or a URL
                    continue
                out.append({"name": rel, "size": st.st_size})
                if len(out) >= MAX_OUTPUTS:
                    break
        except TreeTooDeep:
            pass
        return sorted(out, key=lambda o: o["name"])


# --- helpers ----------------------------------------------------------------------------
def _usage(root: Path) -> int:
    """Bytes under ``root``; a tree deeper than the walk goes counts as a huge one: a job
    in it is stopped unless the home was already that way (so a job can clean it up)."""
    try:
        return tree_usage(root)
    except TreeTooDeep:
        return TOO_DEEP


def check_file_name(name: str) -> str:
    """An input file name as given (a plain name: no directories, no dot-only names)."""
    if (not name or len(name) > 200 or "/" in name or "\\" in name or name in (".", "..")
            or not name.isprintable() or name.startswith(".")):
        raise ComputeError(f"input file name {name[:60]!r}: use a plain name such as"
                           " 'targets.csv'")
    return name


def notebook_source(text: str) -> str:
    """The code cells of a Jupyter notebook as one script (magics and shell lines
    become comments)."""
    try:
        nb = json.loads(text)
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError):
        raise ComputeError("'notebook' is not a Jupyter notebook (.ipynb JSON)") from None
    parts = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        lines = [f"# {line}" if line.lstrip().startswith(("%", "!")) else line
                 for line in src.splitlines()]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _json_args(text: str | None) -> list[Any]:
    if text is None or text == "":
        return []
    try:
        value = json.loads(text)
    except ValueError:
        raise ComputeError("'args' must be a JSON array, e.g. [1, \"gaia\"]") from None
    if not isinstance(value, list):
        raise ComputeError("'args' must be a JSON array, e.g. [1, \"gaia\"]")
    return value


def _number(text: str | None, name: str, default: float, limit: float, unit: str, *,
            minimum: float = 1) -> float:
    if text is None or str(text).strip() == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ComputeError(f"{name!r} must be a number of {unit}") from None
    if not minimum <= value <= limit:
        raise ComputeError(f"{name!r} must be from {minimum:g} to {limit:g} {unit}")
    return value


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _copy_client(lib_dir: Path, gid: int) -> None:
    """This server's own client package (and nothing of the server) for the sandbox."""
    import taphouse

    src = Path(taphouse.__file__).parent
    staging = lib_dir.with_name(lib_dir.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    pkg = staging / "taphouse"
    pkg.mkdir(parents=True)
    shutil.copyfile(src / "__init__.py", pkg / "__init__.py")
    # the client's one module from outside client/ (its STREAM href check)
    shutil.copyfile(src / "votable_links.py", pkg / "votable_links.py")
    shutil.copytree(src / "client", pkg / "client",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for root, _dirs, files in os.walk(staging):
        os.chown(root, 0, gid)
        os.chmod(root, 0o750)
        for f in files:
            p = os.path.join(root, f)
            os.chown(p, 0, gid)
            os.chmod(p, 0o640)
    shutil.rmtree(lib_dir, ignore_errors=True)
    os.replace(staging, lib_dir)


def _tail(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - TAIL))
        return f.read().decode("utf-8", "replace").strip()


def _describe(status: int | None) -> str:
    if status is None:
        return "unknown"
    if status > 128:
        import signal

        try:
            return f"{status} (killed by {signal.Signals(status - 128).name})"
        except ValueError:
            pass
    return str(status)

