"""Memory cgroups for sandboxes: an exact bound on the memory of all a job's processes.

Each sandbox gets its own cgroup, ``<base>/taphouse-<server>/job-<name>``, with the job's
memory as its limit (and no swap beyond it). The kernel charges every page the job's
processes touch (heap, tmpfs, page cache) to it and stops the job with its OOM killer at
the limit; the server reads the OOM count to say why the job ended.

Two layouts, one set of small functions over a cgroup directory for each:

- **cgroup v2** (``memory.max``, ``memory.swap.max``, ``memory.events``, ``cgroup.kill``)
  in a subtree delegated to the server (systemd ``Delegate=yes``; systemd marks such a
  cgroup with the ``trusted.delegate`` extended attribute). v2 lets only leaf cgroups hold
  processes, so when the server itself sits in the delegated cgroup it moves into a
  ``server`` leaf below it first (``DelegateSubgroup=server`` does that for it).
- **cgroup v1** (``memory.limit_in_bytes``, ``memory.memsw.limit_in_bytes``,
  ``memory.oom_control``) at the root of the memory hierarchy when it is mounted writable.

Without either, :func:`detect` says why and the sandbox falls back to ``RLIMIT_DATA`` per
process plus a watchdog over the resident memory of the sandbox's processes (a polling
bound: it can overshoot by what is allocated in one interval).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("taphouse.compute")

JOB_PREFIX = "job-"


# --- cgroup v2: functions over one cgroup directory ------------------------------------
def v2_has_memory(path: Path) -> bool:
    """Whether the memory controller is available in this cgroup."""
    try:
        return "memory" in (path / "cgroup.controllers").read_text().split()
    except OSError:
        return False


def v2_enable_memory(path: Path) -> None:
    """Give this cgroup's children the memory controller (raises OSError EBUSY when the
    cgroup itself holds processes: v2 lets only leaves hold them)."""
    control = path / "cgroup.subtree_control"
    if "memory" not in control.read_text().split():
        control.write_text("+memory\n")


def v2_set_limit(path: Path, limit: int) -> None:
    """The job's memory is ``limit`` bytes, swap none; one OOM kill takes the whole job."""
    (path / "memory.max").write_text(f"{limit}\n")
    for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
        if (path / name).exists():
            (path / name).write_text(value + "\n")


def v2_oom_kills(path: Path) -> int:
    return _keyed(path / "memory.events", "oom_kill") or 0


def v2_peak(path: Path) -> int | None:
    return _number(path / "memory.peak")


def v2_kill(path: Path) -> None:
    kill = path / "cgroup.kill"
    if kill.exists():
        kill.write_text("1\n")
    else:  # kernels before 5.14
        _kill_procs(path)


# --- cgroup v1: functions over one cgroup directory of the memory hierarchy -------------
def v1_set_limit(path: Path, limit: int) -> None:
    """The job's memory is ``limit`` bytes; with swap accounting, memory plus swap too
    (set after the memory limit: memsw may never be below it)."""
    (path / "memory.limit_in_bytes").write_text(f"{limit}\n")
    memsw = path / "memory.memsw.limit_in_bytes"
    if memsw.exists():
        memsw.write_text(f"{limit}\n")


def v1_oom_kills(path: Path) -> int:
    """OOM kills in the cgroup (``oom_kill`` of memory.oom_control, kernel 4.13+; older
    kernels do not count them: 0, and such a job ends killed by SIGKILL)."""
    return _keyed(path / "memory.oom_control", "oom_kill") or 0


def v1_peak(path: Path) -> int | None:
    return _number(path / "memory.max_usage_in_bytes")


def v1_kill(path: Path) -> None:
    _kill_procs(path)


# --- one server's cgroups -----------------------------------------------------------------
@dataclass
class MemoryCgroups:
    """The memory cgroups of one server: ``<base>/taphouse-<server>/job-<name>``.

    ``base`` is a delegated cgroup v2 directory (``version`` 2) or the root of the v1
    memory hierarchy (``version`` 1); ``server`` tells servers on one machine apart (see
    :func:`server_name`)."""

    version: int
    base: Path
    server: str

    @property
    def root(self) -> Path:
        return self.base / f"taphouse-{self.server}"

    @property
    def mechanism(self) -> str:
        """What bounds a job's memory, for logs and job details."""
        return "cgroup v2 memory.max" if self.version == 2 else "cgroup v1 memory.limit_in_bytes"

    def setup(self) -> None:
        """Create this server's cgroup (and give its children the memory controller)."""
        if self.version == 2:
            v2_enable_memory(self.base)
        self.root.mkdir(exist_ok=True)
        if self.version == 2:
            v2_enable_memory(self.root)

    def create(self, name: str, limit: int) -> Path:
        """A new cgroup for sandbox ``name`` with a memory limit of ``limit`` bytes."""
        path = self.root / f"{JOB_PREFIX}{name}"
        if path.exists():  # a leftover of the same name
            self.remove(path)
        elif not self.root.is_dir():  # swept by another server starting (see sweep)
            self.setup()
        path.mkdir()
        try:
            if self.version == 2:
                v2_set_limit(path, limit)
            else:
                v1_set_limit(path, limit)
        except OSError:
            self.remove(path)
            raise
        return path

    def join(self, path: Path, pid: int) -> None:
        """Move process ``pid`` into the cgroup (its later children are born there)."""
        (path / "cgroup.procs").write_text(f"{pid}\n")

    def oom_kills(self, path: Path) -> int:
        try:
            return v2_oom_kills(path) if self.version == 2 else v1_oom_kills(path)
        except OSError:
            return 0

    def peak(self, path: Path) -> int | None:
        try:
            return v2_peak(path) if self.version == 2 else v1_peak(path)
        except OSError:
            return None

    def kill(self, path: Path) -> None:
        """SIGKILL every process in the cgroup."""
        try:
            if self.version == 2:
                v2_kill(path)
            else:
                v1_kill(path)
        except FileNotFoundError:  # gone already
            pass

    def remove(self, path: Path, timeout: float = 10.0) -> bool:
        """Kill what is left in the cgroup and remove it; False when it would not go."""
        deadline = time.monotonic() + timeout
        while True:
            if not path.exists():
                return True
            self.kill(path)
            try:
                path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    log.warning("could not remove the cgroup %s: %s", path, exc)
                    return False
            time.sleep(0.02)

    def remove_leftovers(self) -> int:
        """Remove the job cgroups a previous run of this server left behind (killing any
        process still in them)."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.iterdir():
            if path.is_dir() and path.name.startswith(JOB_PREFIX) and self.remove(path):
                removed += 1
                log.warning("removed leftover cgroup %s", path)
        return removed

    def sweep(self) -> int:
        """Remove the empty cgroups of other taphouse servers (left by servers that
        ended without stopping: a server killed, or failing at start-up). A cgroup with
        a job in it is busy and stays; a live server recreates its own when it next
        needs it (:meth:`create`)."""
        removed = 0
        for path in self.base.glob("taphouse-*"):
            if path == self.root or not path.is_dir():
                continue
            try:
                path.rmdir()
                removed += 1
            except OSError:  # a job cgroup inside, or gone meanwhile
                pass
        return removed

    def close(self) -> None:
        """Remove this server's cgroup at shutdown (with anything left in it)."""
        self.remove_leftovers()
        try:
            self.root.rmdir()
        except OSError:
            pass


def server_name(data_dir: Path) -> str:
    """A stable name for a server's cgroup: servers on one machine have different data
    directories, and a restarted server finds its own leftovers under the same name."""
    return hashlib.sha256(str(Path(data_dir).absolute()).encode()).hexdigest()[:12]


def detect(server: str, *, setting: str = "auto") -> tuple[MemoryCgroups | None, str]:
    """The memory cgroups this server can use, or None and why not.

    ``setting``: ``auto`` (a delegated cgroup v2 subtree, else the v1 memory hierarchy),
    ``off``, or the path of a cgroup directory to put the server's cgroup under (v2
    when it has ``cgroup.controllers``, else v1)."""
    if setting == "off":
        return None, "cgroups are off (compute_memory_cgroup=off)"
    if os.geteuid() != 0:
        return None, "the server does not run as root"
    candidates: list[tuple[int, Path]] = []
    reasons: list[str] = []
    if setting != "auto":
        path = Path(setting)
        candidates.append((2 if (path / "cgroup.controllers").exists() else 1, path))
    else:
        v2, why = _delegated_v2()
        if v2 is not None:
            candidates.append((2, v2))
        else:
            reasons.append(why)
        v1 = _mount_point("cgroup", "memory")
        if v1 is not None:
            candidates.append((1, v1))
        else:
            reasons.append("no cgroup v1 memory hierarchy is mounted")
    for version, base in candidates:
        groups = MemoryCgroups(version, base, server)
        try:
            if version == 2 and not v2_has_memory(base):
                raise OSError(f"the memory controller is not enabled in {base}")
            if version == 1 and not (base / "memory.limit_in_bytes").exists():
                raise OSError(f"{base} is not a cgroup v1 memory hierarchy")
            groups.setup()
            # A trial job cgroup: creating it and writing its limit must work.
            trial = groups.create("trial", 1024**3)
            groups.remove(trial)
        except OSError as exc:
            reasons.append(f"cgroup v{version} at {base} is not usable: {exc}")
            continue
        return groups, f"{groups.mechanism} under {groups.root}"
    return None, "; ".join(reasons) or "no cgroup found"


# --- helpers ------------------------------------------------------------------------------
def _delegated_v2() -> tuple[Path | None, str]:
    """The cgroup v2 directory delegated to this server: its own cgroup or that cgroup's
    parent, marked delegated by systemd (``trusted.delegate``), with the memory
    controller. When the server sits in the delegated cgroup itself, it moves to a
    ``server`` leaf below it (v2: only leaves hold processes)."""
    mount = _mount_point("cgroup2", None)
    if mount is None:
        return None, "no cgroup v2 hierarchy is mounted"
    own = _own_v2_cgroup()
    if own is None:
        return None, "the server's cgroup v2 is unknown"
    mine = mount / own.lstrip("/")
    for path in (mine, mine.parent) if mine != mount else (mine,):
        if not _is_delegated(path):
            continue
        if not v2_has_memory(path):
            return None, f"the delegated cgroup {path} has no memory controller (Delegate=yes)"
        if path == mine:
            leaf = path / "server"
            try:
                leaf.mkdir(exist_ok=True)
                (leaf / "cgroup.procs").write_text(f"{os.getpid()}\n")
            except OSError as exc:
                return None, f"could not move the server into {leaf}: {exc}"
        return path, ""
    return None, (f"the server's cgroup v2 ({mine}) is not delegated to it (systemd"
                  " Delegate=yes)")


def _is_delegated(path: Path) -> bool:
    for attr in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(path, attr).strip(b"\0\n") in (b"1", b"yes", b"true"):
                return True
        except OSError:
            continue
    return False


def _own_v2_cgroup() -> str | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        pass
    return None


def _mount_point(fstype: str, option: str | None) -> Path | None:
    """Where a cgroup file system of ``fstype`` (with super option ``option``) is
    mounted writable, from /proc/self/mountinfo."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if len(fields) < 5 or len(rest) < 3 or rest[0] != fstype:
            continue
        opts = rest[2].split(",")
        if option is not None and option not in opts:
            continue
        if "ro" in opts or "ro" in fields[5].split(","):
            continue
        return Path(fields[4].replace("\\040", " "))
    return None


def _kill_procs(path: Path) -> None:
    for text in (path / "cgroup.procs").read_text().split():
        try:
            os.kill(int(text), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _keyed(path: Path, key: str) -> int | None:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


def _number(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
