"""Attacks from inside a job: every way out we know of, each shown to be detectable by
running the same probe unsandboxed on the host first (the control), then shown closed
inside the sandbox while the server keeps answering other callers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import pytest
from attacks import ATTACKS, CONTROL_ESCAPES
from compute_helpers import HOME_QUOTA, JOB_ENV, login, pids_of, uid_of

from accounts import new_user
from taphouse.client import ComputeError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def listeners():
    """A TCP listener on all addresses and an abstract Unix socket, both on the host."""
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", 0))
    tcp.listen(16)
    abstract_name = f"taphouse-test-{os.getpid()}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + abstract_name)
    unix.listen(16)
    stop = threading.Event()

    def accept(s):
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = s.accept()
                conn.close()
            except OSError:
                pass

    threads = [threading.Thread(target=accept, args=(s,), daemon=True) for s in (tcp, unix)]
    for t in threads:
        t.start()
    yield tcp.getsockname()[1], abstract_name
    stop.set()
    for t in threads:
        t.join(2)
    tcp.close()
    unix.close()


def _host_ip() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent for a UDP connect
            return s.getsockname()[0]
        except OSError:
            return socket.gethostbyname(socket.gethostname())


@pytest.fixture(scope="module")
def targets(compute_server, listeners):
    """What the attack script aims at: another user's home with a secret in it, the
    server's files, ports and process."""
    platform = compute_server.platform
    other = new_user(compute_server, "victim")
    with login(compute_server, other) as c:
        c.run("open(__import__('os').environ['HOME'] + '/secret.txt', 'w').write('s3cret')")
    other_id = platform.authenticator.accounts.user(other).id
    other_home = platform.compute.home_of(other_id)
    assert (other_home / "secret.txt").read_text() == "s3cret"
    port = int(compute_server.url.rsplit(":", 1)[1])
    return {"http_port": port, "other_port": listeners[0], "abstract_name": listeners[1],
            "host_ip": _host_ip(), "meta_path": str(platform.settings.meta_path),
            "tables_dir": str(platform.settings.tables_dir),
            "jobs_dir": str(platform.settings.jobs_dir), "other_home": str(other_home),
            "other_user": other, "server_pid": os.getpid()}


def _results(stdout: str) -> dict[str, str]:
    return json.loads(stdout.strip().splitlines()[-1])


def test_control_run_on_the_host_escapes(targets):
    """Unsandboxed, the probes do get out: each one can fail."""
    proc = subprocess.run([str(JOB_ENV / "bin" / "python"), "-c", ATTACKS,
                           json.dumps(targets)], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    results = _results(proc.stdout)
    not_escaped = {k: results[k] for k in CONTROL_ESCAPES if not results[k].startswith("ESCAPED")}
    assert not not_escaped


def test_no_way_out_of_the_sandbox(compute_server, user_client, targets, responsive):
    with responsive() as r:
        result = user_client.run(ATTACKS, targets, timeout=120)
    results = _results(result.stdout)
    escaped = {k: v for k, v in results.items() if not v.startswith("blocked")}
    assert not escaped
    assert set(CONTROL_ESCAPES) <= set(results)
    r.check()


def test_fork_bomb_is_bounded(compute_server, user_client, responsive):
    script = """
import os, time
n = 0
try:
    for _ in range(2000):
        if os.fork() == 0:
            time.sleep(120)
            os._exit(0)
        n += 1
except OSError as exc:
    print("fork failed after", n, type(exc).__name__)
print("forks", n)
"""
    with responsive() as r:
        t0 = time.monotonic()
        result = user_client.run(script, timeout=60)
        elapsed = time.monotonic() - t0
    forks = int(result.stdout.split("forks")[-1])
    assert forks < compute_server.platform.settings.compute_processes
    assert "fork failed" in result.stdout
    # The sleeping children die with the sandbox: the job does not wait 120 s for them.
    assert elapsed < 60
    r.check()


def _rss(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_memory_bomb_is_stopped_by_the_cgroup(compute_server, user_client, responsive):
    """On this machine (cgroup v1 memory hierarchy, root) the job's memory cgroup stops
    the bomb at its limit, not RLIMIT_DATA (which is left unlimited in a cgroup) nor the
    watchdog; the server's memory and another user's job are unaffected."""
    cgroups = compute_server.platform.compute.sandbox.cgroups
    assert cgroups is not None, ("no usable memory cgroup on this machine:"
                                 f" {compute_server.platform.compute.memory_bound}")
    script = """
import time
blocks = []
print('start', flush=True)
time.sleep(1)
while True:
    blocks.append(b'x' * (50 * 1024 * 1024))  # written: resident, charged to the cgroup
    print('MB', len(blocks) * 50, flush=True)
"""
    other = login(compute_server, new_user(compute_server))
    rss_before = _rss(os.getpid())  # the server runs in this process
    with responsive() as r:
        bomb = user_client.run(script, memory="400MiB", timeout=60, wait=False)
        assert other.run("print('fine')").stdout == "fine\n"
        info = bomb.wait(60)
    assert info["phase"] == "ERROR"
    assert "memory limit of 400 MiB exceeded" in info["error"]["message"]
    assert info["memory_bound"] == cgroups.mechanism
    written = int(bomb.stdout.split()[-1])
    # Exact: stopped by the 400 MiB limit, after well more than half of it was used.
    assert 250 <= written <= 400
    assert "MemoryError" not in bomb.stderr
    assert _rss(os.getpid()) - rss_before < 150 * 1024**2
    assert not (cgroups.root / f"job-{bomb.id}").exists()
    r.check()
    assert other.run("print('still fine')").stdout == "still fine\n"
    other.close()


def test_every_process_of_a_job_is_in_its_cgroup_and_it_goes_after(compute_server,
                                                                   user_client):
    """The outer process joins the cgroup before bubblewrap starts anything: every
    process of the job's uid is in it; the limit is the job's memory; it is removed when
    the job ends."""
    cgroups = compute_server.platform.compute.sandbox.cgroups
    assert cgroups is not None, compute_server.platform.compute.memory_bound
    job = user_client.run("import os, time\nif os.fork() == 0:\n    time.sleep(60)\n"
                          "print('up', flush=True)\ntime.sleep(60)", memory="300MiB",
                          timeout=120, wait=False)
    deadline = time.monotonic() + 60
    while "up" not in job.stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    path = cgroups.root / f"job-{job.id}"
    limit = "memory.max" if cgroups.version == 2 else "memory.limit_in_bytes"
    assert int((path / limit).read_text()) == 300 * 1024**2
    inside = {int(p) for p in (path / "cgroup.procs").read_text().split()}
    uids = {uid_of(p) for p in inside}
    assert len(uids) == 1
    uid = uids.pop()
    assert uid > compute_server.platform.compute.sandbox.uid_base
    mine = set(pids_of(uid))
    assert len(mine) >= 4  # bwrap, bwrap (init), python, its child
    assert mine <= inside
    job.abort()
    job.wait(60)
    # ABORTED is recorded at once; the worker removes the cgroup as the run ends.
    deadline = time.monotonic() + 20
    while path.exists() or pids_of(uid):
        assert time.monotonic() < deadline, (path.exists(), pids_of(uid))
        time.sleep(0.1)


def test_tmp_is_bounded(user_client):
    script = """
import os
try:
    with open('/tmp/big', 'wb') as f:
        for _ in range(1000):
            f.write(b'x' * 1024 * 1024)
except OSError as exc:
    print('tmp full', exc.errno, os.path.getsize('/tmp/big') // 1024**2)
"""
    result = user_client.run(script)
    assert "tmp full 28" in result.stdout  # ENOSPC
    assert int(result.stdout.split()[-1]) <= 256


def test_writing_past_the_home_quota_kills_the_job(compute_server, user_client, responsive):
    script = """
import os, time
home = os.environ['HOME']
with open(home + '/fill.bin', 'wb') as f:
    for i in range(400):
        f.write(b'x' * 1024 * 1024)
        f.flush()
        print('MB', i + 1, flush=True)
        time.sleep(0.02)
print('finished writing')
"""
    with responsive() as r, pytest.raises(ComputeError) as err:
        user_client.run(script, timeout=60)
    res = err.value.result
    assert "quota" in res.error
    assert "finished writing" not in res.stdout
    written = int(res.stdout.split()[-1])
    assert HOME_QUOTA // 1024**2 <= written < 400
    r.check()
    # Over quota, the next job still runs (to clean up) but may not grow the home.
    result = user_client.run("import os; os.remove(os.environ['HOME'] + '/fill.bin')")
    assert result.phase == "COMPLETED"
    assert result.exit_status == 0


def test_wall_time_ends_the_job(user_client, responsive):
    with responsive() as r, pytest.raises(ComputeError) as err:
        t0 = time.monotonic()
        user_client.run("import time\nprint('start', flush=True)\ntime.sleep(600)",
                        timeout=3)
    elapsed = time.monotonic() - t0
    res = err.value.result
    assert res.phase == "ERROR"
    assert "execution duration" in res.error
    assert res.stdout.strip() == "start"
    assert elapsed < 40  # generous for a loaded machine; the script would sleep 600 s
    r.check()


def test_cpu_spin_in_many_processes_leaves_the_server_responsive(user_client, responsive):
    script = """
import multiprocessing, time
def spin(_):
    t = time.time()
    while time.time() - t < 4:
        pass
with multiprocessing.Pool(8) as p:
    p.map(spin, range(8))
print('done')
"""
    with responsive() as r:
        result = user_client.run(script, timeout=60)
    assert result.stdout.strip() == "done"
    r.check()


def test_memory_of_many_processes_together_is_bounded(user_client, responsive):
    """Each process stays under the per-process limit; together they pass the job's
    memory, and the job is stopped."""
    script = """
import os, time
for i in range(8):
    if os.fork() == 0:
        block = bytearray(150 * 1024 * 1024)
        for j in range(0, len(block), 4096):
            block[j] = 1
        time.sleep(60)
        os._exit(0)
time.sleep(60)
print('never')
"""
    with responsive() as r, pytest.raises(ComputeError) as err:
        t0 = time.monotonic()
        user_client.run(script, memory="400MB", timeout=60)
    res = err.value.result
    assert "memory limit" in res.error
    assert "never" not in res.stdout
    assert time.monotonic() - t0 < 50  # the children would sleep 60 s
    r.check()


def test_deep_directory_chain_and_odd_file_names(user_client):
    """A directory chain deeper than the server's walk stops the job with a clear error
    (it cannot hide bytes from the quota there), and the next job can remove it; a file
    name that is not UTF-8 does not break the job's summary."""
    deep = """
import os
fd = os.open('.', os.O_RDONLY)
for _ in range(400):
    os.mkdir('d', dir_fd=fd)
    nxt = os.open('d', os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nxt
import time
time.sleep(5)
print('not stopped')
"""
    with pytest.raises(ComputeError) as err:
        user_client.run(deep, timeout=60)
    assert "deeper than 256 levels" in err.value.result.error
    assert "not stopped" not in err.value.result.stdout
    odd = "open(b'\\xff-odd.bin', 'wb').write(b'x'); open('fine.txt', 'w').write('ok')"
    result = user_client.run(odd)
    assert set(result.outputs) == {"fine.txt"}
