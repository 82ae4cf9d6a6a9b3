"""The per-job memory cgroup holds every process of a job, however it was started: the
server moves the sandbox's outer process into the cgroup while it waits on a gate (its
stdin) before it execs nice/prlimit/bwrap, so nothing of the job runs, let alone forks,
outside it (no window between exec and the pid written to cgroup.procs). Children that
fork, start a new session or double-fork are born inside; together they cannot use more
than the job's memory, and a fork bomb is bounded and ends with the job."""

from __future__ import annotations

import time

import pytest
from compute_helpers import login, pids_of, uid_of

from accounts import new_user

pytestmark = pytest.mark.slow


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as f:
            state = [x for x in f.read().splitlines() if x.startswith(("State", "PPid"))]
        with open(f"/proc/{pid}/cgroup") as f:
            memory = [x for x in f.read().splitlines() if ":memory:" in x]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ")[:200].decode()
        return f"{state} {memory} {cmd!r}"
    except OSError as exc:
        return str(exc)


def _wait_for(job, text: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while text not in job.stdout:
        assert time.monotonic() < deadline, (job.stdout, job.stderr)
        time.sleep(0.1)


HOGS = """
import os, sys, time
def hog():
    blocks = []
    for i in range(12):
        blocks.append(b'x' * (20 * 1024 * 1024))  # written: resident, charged
        time.sleep(0.05)
    print('hog', os.getpid(), 'holds 240 MiB', flush=True)
    time.sleep(120)
kids = []
for n in range(3):
    pid = os.fork()
    if pid == 0:
        if n == 2:  # a new session, then a grandchild of its own: a daemon's way out
            os.setsid()
            if os.fork():
                os._exit(0)
        hog()
        os._exit(0)
    kids.append(pid)
print('forked', flush=True)
time.sleep(120)
"""


def test_children_that_fork_and_detach_share_the_jobs_memory(compute_server):
    """Three children (one in a session of its own, double-forked) each write 240 MiB:
    each fits the job's 400 MiB, together they do not; the cgroup stops the job."""
    cgroups = compute_server.platform.compute.sandbox.cgroups
    assert cgroups is not None, compute_server.platform.compute.memory_bound
    client = login(compute_server, new_user(compute_server))
    try:
        job = client.run(HOGS, memory="400MiB", timeout=120, wait=False)
        info = job.wait(120)
        assert info["phase"] == "ERROR", (info, job.stdout, job.stderr)
        assert "memory limit of 400 MiB exceeded" in info["error"]["message"]
        assert job.stdout.count("holds 240 MiB") <= 1, job.stdout
        assert not (cgroups.root / f"job-{job.id}").exists()
    finally:
        client.close()


def test_detached_children_are_in_the_cgroup_and_a_fork_bomb_ends_with_the_job(
        compute_server):
    cgroups = compute_server.platform.compute.sandbox.cgroups
    assert cgroups is not None, compute_server.platform.compute.memory_bound
    client = login(compute_server, new_user(compute_server))
    script = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork():
        os._exit(0)
    while True:  # a fork bomb, detached from the job's process
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)
print('up', flush=True)
time.sleep(120)
"""
    try:
        job = client.run(script, memory="300MiB", timeout=120, wait=False)
        _wait_for(job, "up")
        time.sleep(2)  # the bomb at its RLIMIT_NPROC
        path = cgroups.root / f"job-{job.id}"
        uid = next(uid_of(int(p)) for p in (path / "cgroup.procs").read_text().split())
        mine = set(pids_of(uid))
        inside = {int(p) for p in (path / "cgroup.procs").read_text().split()}  # after
        assert len(mine) > 10, "the bomb did not fork"
        assert len(mine) <= compute_server.platform.settings.compute_processes + 2
        # Still there and outside (a zombie has left every cgroup: it holds no memory).
        outside = {p for p in mine - inside if uid_of(p) == uid and not _zombie(p)}
        assert not outside, ("processes of the job outside its cgroup:",
                             {p: _describe(p) for p in sorted(outside)})
        job.abort()
        job.wait(60)
        deadline = time.monotonic() + 30
        while path.exists() or pids_of(uid):
            assert time.monotonic() < deadline, (path.exists(), len(pids_of(uid)))
            time.sleep(0.1)
        assert client.run("print('after')").stdout == "after\n"
    finally:
        client.close()


def test_nothing_of_the_job_runs_before_the_server_placed_it_in_its_cgroup(
        compute_server, monkeypatch):
    """The server is slow to write the sandbox's pid into cgroup.procs (2 s here, as
    under load): the job must not start meanwhile — a launcher that wrote the pid after
    exec would have bubblewrap, the script and its children running, and forking,
    outside the cgroup by then."""
    sandbox = compute_server.platform.compute.sandbox
    cgroups = sandbox.cgroups
    assert cgroups is not None, compute_server.platform.compute.memory_bound
    joined: dict[str, float] = {}
    join = cgroups.join

    def slow_join(path, pid):
        time.sleep(2)
        join(path, pid)
        joined[path.name] = time.time()

    monkeypatch.setattr(cgroups, "join", slow_join)
    client = login(compute_server, new_user(compute_server))
    try:
        job = client.run("import os, time\nstarted = time.time()\nif os.fork() == 0:\n"
                         "    time.sleep(60)\nprint('up', repr(started), flush=True)\n"
                         "time.sleep(60)", memory="300MiB", timeout=120, wait=False)
        _wait_for(job, "up")
        started = float(job.stdout.split()[1])
        path = cgroups.root / f"job-{job.id}"
        assert started >= joined[path.name] - 0.05, (started, joined)
        inside = {int(p) for p in (path / "cgroup.procs").read_text().split()}
        uid = uid_of(next(iter(inside)))
        alive = {p for p in pids_of(uid) if not _zombie(p)}
        assert len(alive) >= 4 and alive <= inside, {p: _describe(p) for p in alive - inside}
        job.abort()
        job.wait(60)
    finally:
        client.close()
