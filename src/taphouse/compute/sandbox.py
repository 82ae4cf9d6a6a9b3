"""The sandbox: one user's code in bubblewrap, reaching nothing but the API socket.

Each run is ``nice -n 10 prlimit ... -- bwrap ... -- python script`` started by the
server (root) as the user's own unprivileged uid (``uid_base + user id``; gid the same;
one supplementary group, ``uid_base``, that may only traverse the data directory down to
what bubblewrap binds). bubblewrap then unshares the user, network (loopback only), PID,
IPC, UTS and cgroup namespaces, forbids nested user namespaces, drops every capability,
sets no-new-privileges, mounts a read-only system and Python environment, a private
size-bounded ``/tmp`` and ``/dev/shm``, the user's home, the job's work directory and
the API socket, and loads the seccomp filter (:mod:`taphouse.compute.seccomp`).

Limits: CPU seconds, processes (per uid, so per user), open files and file size through
``prlimit``. Memory: where the server has memory cgroups (:mod:`taphouse.compute.cgroups`:
a delegated cgroup v2 subtree, else a writable v1 memory hierarchy) each sandbox runs in
its own cgroup whose limit is the job's memory, exact over all its processes; the outer
process joins it before anything is started in it (a gate in the wrapper waits until the
server has moved it). Without cgroups: RLIMIT_DATA per process (RLIMIT_AS breaks
numpy/pyarrow) plus the caller's watchdog over the resident memory of all the sandbox's
processes (:meth:`SandboxProcess.memory`). Wall time, the home quota and aborts are
handled by :class:`SandboxProcess`'s caller.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from taphouse.compute.cgroups import MemoryCgroups
from taphouse.compute.seccomp import SeccompUnsupported, build_filter
from taphouse.errors import ServiceError

log = logging.getLogger("taphouse.compute")

#: Where things are inside the sandbox.
ENV_MOUNT = "/opt/taphouse/env"
LIB_MOUNT = "/opt/taphouse/lib"
SOCKET_MOUNT = "/run/taphouse/api.sock"
JOB_DIR = "/job"
WORK_MOUNT = "/job/work"
HOSTNAME = "taphouse-job"
#: System directories bound read-only (or recreated as the same symlink).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Files and directories of /etc a Python analysis needs; nothing else of /etc is seen.
ETC_ENTRIES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
               "/etc/alternatives", "/etc/mime.types", "/etc/fonts")


class SandboxUnavailable(ServiceError):
    """Compute cannot run on this server (the reason says what to install or change)."""

    status = 503


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox (bytes, seconds, counts)."""

    memory: int = 2 * 1024**3
    cpu_seconds: int = 3600
    processes: int = 64
    open_files: int = 256
    file_size: int = 1024**3
    tmp_size: int = 256 * 1024**2


@dataclass
class SandboxRun:
    """What one run needs: who, where, what."""

    uid: int
    username: str
    home: Path
    workdir: Path | None
    argv: Sequence[str]
    env: Mapping[str, str]
    stdout: Path
    stderr: Path
    limits: Limits
    #: Extra read-only files: path inside the sandbox -> host path.
    files: Mapping[str, Path] = field(default_factory=dict)
    #: Extra writable directories: path inside the sandbox -> host path.
    binds: Mapping[str, Path] = field(default_factory=dict)
    #: The current directory inside (default: the work directory).
    cwd: str = WORK_MOUNT
    #: Share the host's network (a user's Jupyter server, which the hub's proxy must
    #: reach; never user code).
    network: bool = False
    #: Let the sandbox create namespaces of its own (a Jupyter server starting its
    #: kernels in nested sandboxes; never user code).
    nested: bool = False


class Sandbox:
    """Starts sandboxes for one server.

    Parameters
    ----------
    env_dir
        The job Python environment (a venv with numpy, astropy, pandas, pyarrow, pyvo,
        requests), bound read-only at :data:`ENV_MOUNT`.
    lib_dir
        A directory holding the ``taphouse`` client package, bound at :data:`LIB_MOUNT`
        and put on ``PYTHONPATH``.
    socket_path
        The API socket (bound at :data:`SOCKET_MOUNT`).
    run_dir
        Where the pid files of running sandboxes are kept (for start-up clean-up).
    uid_base
        User ``n`` runs as uid ``uid_base + n``; ``uid_base`` is the sandbox group.
    bwrap
        The bubblewrap executable.
    cgroups
        Memory cgroups to run each sandbox in (None: RLIMIT_DATA per process, and the
        caller watches the sandbox's resident memory).
    """

    UID_RANGE = 1_000_000

    def __init__(self, *, env_dir: Path, lib_dir: Path, socket_path: Path, run_dir: Path,
                 uid_base: int, bwrap: str | None = None,
                 cgroups: MemoryCgroups | None = None) -> None:
        self.cgroups = cgroups
        self.env_dir = Path(env_dir)
        self.lib_dir = Path(lib_dir)
        self.socket_path = Path(socket_path)
        self.run_dir = Path(run_dir)
        self.uid_base = int(uid_base)
        self.gid = self.uid_base
        self.bwrap = bwrap or shutil.which("bwrap") or "bwrap"
        self._filter: bytes | None = None

    # --- identities -------------------------------------------------------------------
    def uid_for(self, user_id: int) -> int:
        """The host uid of a user's code (never root, never the server's)."""
        if not 0 < user_id < self.UID_RANGE:
            raise SandboxUnavailable(f"user id {user_id} is outside the sandbox uid range")
        return self.uid_base + user_id

    # --- checks -------------------------------------------------------------------------
    def preflight(self) -> None:
        """Raise :class:`SandboxUnavailable` with what to do when sandboxes cannot start
        here (before any directory is touched)."""
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "compute needs the server to run as root, so that each user's code runs as"
                " that user's own unprivileged uid; start the server as root or disable"
                " compute (TAPHOUSE_COMPUTE=off)")
        if self.uid_base < 1000 or self.uid_base + self.UID_RANGE > 2**32 - 2:
            raise SandboxUnavailable(f"compute_uid_base {self.uid_base} is out of range")
        if shutil.which(self.bwrap) is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed: compute runs user code only inside its"
                " sandbox (Debian/Ubuntu: apt-get install bubblewrap)")
        try:
            self._filter = build_filter()
        except SeccompUnsupported as exc:
            raise SandboxUnavailable(str(exc)) from None
        python = self.env_dir / "bin" / "python"
        if not python.exists():
            raise SandboxUnavailable(
                f"no job Python environment at {self.env_dir}: run `taphouse compute setup`"
                " (or set TAPHOUSE_COMPUTE_ENV to an environment with numpy, astropy,"
                " pandas, pyarrow and pyvo)")
        userns = Path("/proc/sys/user/max_user_namespaces")
        if userns.exists() and userns.read_text().strip() == "0":
            raise SandboxUnavailable("user namespaces are disabled"
                                     " (sysctl user.max_user_namespaces=0); bubblewrap"
                                     " needs them")

    def check_paths(self) -> None:
        """Raise :class:`SandboxUnavailable` when a bind source cannot be reached by a
        sandboxed uid (bubblewrap opens them as that uid)."""
        for p in self._reachable_paths():
            _check_reachable(p, self.gid)

    def probe(self, workdir: Path, home: Path, timeout: float = 60.0) -> None:
        """Run a trivial job in a real sandbox; raise :class:`SandboxUnavailable` with
        bubblewrap's complaint when it does not work."""
        uid = self.uid_base + self.UID_RANGE - 1
        for d in (workdir, home):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, uid, uid)
            os.chmod(d, 0o700)
        out, err = workdir.parent / "probe.out", workdir.parent / "probe.err"
        code = ("import os, sys, json, taphouse.client.client, numpy;"
                " print(json.dumps([os.getuid(), sys.prefix]))")
        run = SandboxRun(uid=uid, username="probe", home=home, workdir=workdir,
                         argv=[f"{ENV_MOUNT}/bin/python", "-c", code],
                         env={"PYTHONPATH": LIB_MOUNT, "PATH": "/usr/bin:/bin"},
                         stdout=out, stderr=err, limits=Limits(cpu_seconds=60))
        proc = self.start(run, "probe")
        try:
            status = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SandboxUnavailable("the sandbox probe did not finish in"
                                     f" {timeout:g} s") from None
        finally:
            proc.forget()
        text = out.read_text(errors="replace").strip()
        if status != 0 or not text:
            tail = err.read_text(errors="replace")[-2000:].strip()
            raise SandboxUnavailable(f"a test sandbox failed (exit status {status}): {tail}")
        uid_inside, prefix = json.loads(text.splitlines()[-1])
        if uid_inside != uid or prefix != ENV_MOUNT:
            raise SandboxUnavailable(f"the test sandbox ran as uid {uid_inside} with prefix"
                                     f" {prefix}, expected {uid} and {ENV_MOUNT}")

    def _reachable_paths(self) -> list[Path]:
        return [self.env_dir, self.lib_dir, self.socket_path.parent]

    # --- running ------------------------------------------------------------------------
    def start(self, run: SandboxRun, name: str, *, switch_user: bool = True) -> SandboxProcess:
        """Start ``run``; the returned process is the outer bubblewrap (its death takes
        the whole sandbox with it). ``switch_user=False``: the caller already is the
        user (a kernel started from inside the user's own Jupyter server sandbox)."""
        if self._filter is None:
            self._filter = build_filter()
        program = build_filter(nested=True) if run.nested else self._filter
        fds: list[int] = []
        try:
            seccomp_fd = _memfd("seccomp", program)
            fds.append(seccomp_fd)
            data = {
                "/etc/passwd": f"{run.username}:x:{run.uid}:{run.uid}::/home/{run.username}:"
                               "/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
                "/etc/group": f"{run.username}:x:{run.uid}:\nnogroup:x:65534:\n",
                "/etc/hosts": f"127.0.0.1 localhost {HOSTNAME}\n::1 localhost\n",
                "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
            }
            data_fds = {}
            for dest, text in data.items():
                fd = _memfd(dest, text.encode())
                fds.append(fd)
                data_fds[dest] = fd
            argv = self._argv(run, seccomp_fd, data_fds)
            cgroup = self._cgroup(name, run.limits.memory)
            gate: int | None = None
            stdout = open(run.stdout, "ab")  # noqa: SIM115 (handed to the child)
            stderr = open(run.stderr, "ab")  # noqa: SIM115
            try:
                lim = run.limits
                # With a cgroup the kernel bounds the sandbox's memory exactly; the
                # per-process RLIMIT_DATA would only stop a process earlier and
                # differently (it counts address space reserved, not memory used).
                data_limit = "unlimited" if cgroup is not None else str(lim.memory)
                command = [
                    "nice", "-n", "10", "prlimit",
                    f"--cpu={lim.cpu_seconds}", f"--nproc={lim.processes}",
                    f"--nofile={lim.open_files}", f"--fsize={lim.file_size}",
                    f"--data={data_limit}", "--core=0", "--", *argv]
                if cgroup is not None:
                    # The outer process waits for a line on a pipe before it becomes
                    # nice/prlimit/bwrap (same pid): the server moves it into the
                    # cgroup first, so everything bwrap starts is born inside.
                    # (The pipe is its stdin: dash cannot name descriptors above 9.)
                    gate, ready = os.pipe()
                    command = ["/bin/sh", "-c", 'read -r go || exit 125; exec "$@" </dev/null',
                               "sandbox", *command]
                who: dict = {}
                if switch_user:
                    who = {"user": run.uid, "group": run.uid, "extra_groups": [self.gid]}
                try:
                    proc = subprocess.Popen(
                        command, stdin=subprocess.DEVNULL if gate is None else gate,
                        stdout=stdout, stderr=stderr,
                        pass_fds=tuple(fds), env=dict(run.env), close_fds=True,
                        start_new_session=True, cwd="/", **who)
                except BaseException:
                    if gate is not None:
                        os.close(ready)
                    if cgroup is not None and self.cgroups is not None:
                        self.cgroups.remove(cgroup)
                    raise
            finally:
                stdout.close()
                stderr.close()
                if gate is not None:
                    os.close(gate)  # the child's stdin now, not passed on as a descriptor
        finally:
            for fd in fds:
                os.close(fd)
        sp = SandboxProcess(proc, self.run_dir / f"{name}.pid")
        sp.record()
        if cgroup is not None and self.cgroups is not None:
            try:
                self.cgroups.join(cgroup, proc.pid)
                os.write(ready, b"go\n")
            except OSError as exc:  # never let it run outside its cgroup
                sp.kill()
                sp.forget()
                self.cgroups.remove(cgroup)
                raise SandboxUnavailable(f"the sandbox could not join its memory cgroup"
                                         f" {cgroup}: {exc}") from None
            finally:
                os.close(ready)
            sp.cgroups, sp.cgroup = self.cgroups, cgroup
        return sp

    def _cgroup(self, name: str, memory: int) -> Path | None:
        """A memory cgroup for sandbox ``name``; None without cgroups, or when this one
        cannot be made (then the run falls back to RLIMIT_DATA and the watchdog)."""
        if self.cgroups is None:
            return None
        try:
            return self.cgroups.create(name, memory)
        except OSError as exc:
            log.warning("sandbox %s: no memory cgroup (%s); bounding its memory with"
                        " RLIMIT_DATA and the watchdog", name, exc)
            return None

    def _argv(self, run: SandboxRun, seccomp_fd: int, data_fds: Mapping[str, int]) -> list[str]:
        a = [self.bwrap, "--unshare-user", "--unshare-ipc", "--unshare-pid"]
        if not run.network:
            a += ["--unshare-net", "--unshare-uts", "--hostname", HOSTNAME]
        a += ["--unshare-cgroup-try"]
        if not run.nested:
            a += ["--disable-userns"]
        a += ["--die-with-parent", "--new-session", "--uid", str(run.uid), "--gid", str(run.uid)]
        for d in SYSTEM_DIRS:
            if os.path.islink(d):
                a += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                a += ["--ro-bind", d, d]
        for e in ETC_ENTRIES:
            a += ["--ro-bind-try", e, e]
        for dest, fd in data_fds.items():
            a += ["--perms", "0444", "--ro-bind-data", str(fd), dest]
        a += ["--proc", "/proc", "--dev", "/dev",
              "--size", str(run.limits.tmp_size), "--tmpfs", "/tmp",
              "--size", str(run.limits.tmp_size), "--tmpfs", "/dev/shm",
              "--ro-bind", str(self.env_dir), ENV_MOUNT]
        base = _venv_home(self.env_dir)
        if base is not None and not any(base == Path(d) or Path(d) in base.parents
                                        for d in SYSTEM_DIRS):
            a += ["--ro-bind", str(base), str(base)]
        a += ["--ro-bind", str(self.lib_dir), LIB_MOUNT,
              "--ro-bind", str(self.socket_path), SOCKET_MOUNT,
              "--bind", str(run.home), f"/home/{run.username}"]
        if run.workdir is not None:
            a += ["--bind", str(run.workdir), WORK_MOUNT]
        for dest, src in run.binds.items():
            a += ["--bind", str(src), dest]
        for dest, src in run.files.items():
            a += ["--ro-bind", str(src), dest]
        a += ["--remount-ro", "/", "--chdir", run.cwd, "--seccomp", str(seccomp_fd),
              "--", *run.argv]
        return a

    # --- clean-up -----------------------------------------------------------------------
    def kill_leftovers(self) -> int:
        """Kill sandboxes a previous run of this server left behind (by their pid files,
        checked against the process start time so a reused pid is left alone)."""
        killed = 0
        if not self.run_dir.is_dir():
            return 0
        for pidfile in self.run_dir.glob("*.pid"):
            try:
                pid_text, start_text = pidfile.read_text().split()
                pid, start = int(pid_text), start_text
            except (OSError, ValueError):
                pidfile.unlink(missing_ok=True)
                continue
            if _start_time(pid) == start:
                try:
                    os.killpg(pid, signal.SIGKILL)
                    killed += 1
                    log.warning("killed leftover sandbox %s (pid %d)", pidfile.stem, pid)
                except ProcessLookupError:
                    pass
            pidfile.unlink(missing_ok=True)
        return killed


class SandboxProcess:
    """A running sandbox (its outer bubblewrap process)."""

    def __init__(self, proc: subprocess.Popen, pidfile: Path) -> None:
        self.proc = proc
        self.pidfile = pidfile
        #: The memory cgroup the sandbox runs in (None: RLIMIT_DATA and the watchdog).
        self.cgroups: MemoryCgroups | None = None
        self.cgroup: Path | None = None

    @property
    def memory_bound(self) -> str:
        """What bounds this sandbox's memory (for job details)."""
        if self.cgroups is not None and self.cgroup is not None:
            return self.cgroups.mechanism
        return "RLIMIT_DATA per process + resident memory watchdog"

    def oom_kills(self) -> int:
        """Processes of the sandbox its memory cgroup's OOM killer has killed."""
        if self.cgroups is None or self.cgroup is None:
            return 0
        return self.cgroups.oom_kills(self.cgroup)

    def memory_peak(self) -> int | None:
        if self.cgroups is None or self.cgroup is None:
            return None
        return self.cgroups.peak(self.cgroup)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def record(self) -> None:
        start = _start_time(self.proc.pid)
        if start is not None:
            self.pidfile.write_text(f"{self.proc.pid} {start}\n")

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Kill the whole sandbox: bubblewrap's process group (the namespace's init
        follows through --die-with-parent, and with it every process inside)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.cgroups is not None and self.cgroup is not None:
            self.cgroups.kill(self.cgroup)  # and whatever else is in its cgroup

    def memory(self) -> int:
        """Resident bytes of every process inside the sandbox (those in the PID
        namespace of bubblewrap's child), tmpfs pages included through shared memory."""
        init = _children(self.proc.pid)
        if not init:
            return 0
        try:
            ns = os.readlink(f"/proc/{init[0]}/ns/pid")
        except OSError:
            return 0
        total = 0
        page = os.sysconf("SC_PAGE_SIZE")
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry.name}/ns/pid") != ns:
                    continue
                with open(f"/proc/{entry.name}/statm") as f:
                    total += int(f.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                continue
        return total

    def interrupt(self) -> None:
        """What :class:`~taphouse.query.cancel.CancelHandle` calls on abort or time-out."""
        self.kill()

    def forget(self) -> None:
        """The run is over: reap the process, remove its cgroup (killing anything left
        in it) and drop its pid file."""
        if self.proc.poll() is None:
            self.kill()
            self.proc.wait()
        if self.cgroups is not None and self.cgroup is not None:
            self.cgroups.remove(self.cgroup)
        self.pidfile.unlink(missing_ok=True)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name.strip("/").replace("/", "-"), 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _venv_home(env_dir: Path) -> Path | None:
    """The prefix of a venv's base interpreter (``home`` in pyvenv.cfg is its bin dir)."""
    cfg = env_dir / "pyvenv.cfg"
    if not cfg.exists():
        return None
    for line in cfg.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            return Path(value.strip()).parent
    return None


def _check_reachable(path: Path, gid: int) -> None:
    """bubblewrap opens bind sources as the user's uid (with the sandbox group): every
    directory above ``path`` must let it pass."""
    path = Path(os.path.abspath(path))
    for parent in [*reversed(path.parents)][1:]:
        st = parent.stat()
        if st.st_mode & 0o001 or (st.st_gid == gid and st.st_mode & 0o010):
            continue
        raise SandboxUnavailable(
            f"{parent} (mode {st.st_mode & 0o777:o}) cannot be traversed by sandboxed"
            f" users, so {path} cannot be bound into their sandbox; allow o+x on it, or"
            " move the data directory / job environment somewhere they can reach")
