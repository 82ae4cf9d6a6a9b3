"""End to end: a job reads a catalogue through the client, computes, writes a table to
mydb, and the user reads it with stock pyvo; then the server's life cycle (kill -9
mid-job, restart, start-up refusal)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import pyvo
import requests
from compute_helpers import JOB_ENV, sandbox_data_dir

import taphouse
from accounts import PASSWORD
from servers import ServerProcess

pytestmark = pytest.mark.slow


def colour_table(limit):
    import taphouse

    client = taphouse.connect()
    stars = client.query(f"SELECT TOP {limit} source_id, ra, dec, phot_g_mean_mag,"
                         " phot_bp_mean_mag, phot_rp_mean_mag FROM gaia.dr3_bright"
                         " WHERE phot_bp_mean_mag IS NOT NULL ORDER BY source_id",
                         output="pandas")
    stars["bp_rp"] = stars["phot_bp_mean_mag"] - stars["phot_rp_mean_mag"]
    red = stars[stars["bp_rp"] > 1.5][["source_id", "ra", "dec", "bp_rp"]]
    client.mydb.upload("red_stars", red)
    return {"read": len(stars), "red": len(red)}


def test_job_reads_computes_writes_mydb_and_pyvo_reads_it(compute_server, user_client):
    result = user_client.run(colour_table, 5000)
    assert result.value["read"] == 5000
    assert 0 < result.value["red"] < 5000
    assert "mydb.red_stars" in result.tables
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + user_client.auth.token
    tap = pyvo.dal.TAPService(compute_server.url + "/tap", session=session)
    table = tap.run_sync("SELECT COUNT(*) AS n, MIN(bp_rp) AS lo FROM mydb.red_stars").to_table()
    assert table["n"][0] == result.value["red"]
    assert table["lo"][0] > 1.5


def _bwrap_pids(uid: int) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "status").read_text().split("Uid:")[1].split()[0] == str(uid):
                    pids.append(int(p.name))
            except (OSError, IndexError):
                pass
    return pids


def test_kill_9_mid_job_then_restart(tmp_path):
    base = sandbox_data_dir()
    env = {"TAPHOUSE_COMPUTE": "on", "TAPHOUSE_COMPUTE_ENV": str(JOB_ENV),
           "TAPHOUSE_COMPUTE_UID_BASE": "3000000"}
    server = ServerProcess(base / "data", env=env).start()
    try:
        from taphouse.auth.accounts import AccountStore
        from taphouse.auth.passwords import PasswordHashing
        from taphouse.metadata import MetadataDB

        meta = MetadataDB(base / "data" / "meta.sqlite")
        user = AccountStore(meta, PasswordHashing()).add_user("killer", PASSWORD)
        meta.close()
        c = taphouse.connect(server.url, interactive=False, progress=False)
        c.login("killer", PASSWORD)
        job = c.run("import time\nprint('up', flush=True)\ntime.sleep(600)", wait=False)
        deadline = time.monotonic() + 60
        while "up" not in job.stdout:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        uid = 3000000 + user.id
        assert _bwrap_pids(uid)
        cgroup = _job_cgroup(base / "data", job.id)
        assert set(_bwrap_pids(uid)) <= set(map(int, (cgroup / "cgroup.procs").read_text().split()))
        server.kill()
        # --die-with-parent: the sandbox dies with the server.
        deadline = time.monotonic() + 10
        while _bwrap_pids(uid):
            assert time.monotonic() < deadline, _bwrap_pids(uid)
            time.sleep(0.1)
        assert cgroup.exists()  # left behind by the killed server...
        server.start()
        assert not cgroup.exists()  # ...and removed when it starts again
        c = taphouse.connect(server.url, interactive=False, progress=False)
        c.login("killer", PASSWORD)
        info = c.compute_job(job.id).info()
        assert info["phase"] == "ERROR"
        assert "restarted" in info["error"]["message"]
        # The work goes on after a restart.
        assert c.run("print('again')").stdout == "again\n"
    finally:
        server.stop()
    assert not cgroup.parent.exists()  # a server's cgroup goes when it stops


def _job_cgroup(data_dir: Path, job_id: str) -> Path:
    """Where the server of ``data_dir`` puts job ``job_id``'s memory cgroup on this
    machine (cgroup v1: the memory hierarchy's root)."""
    from taphouse.compute import cgroups

    mount = cgroups._mount_point("cgroup", "memory")
    assert mount is not None, "this machine has no cgroup v1 memory hierarchy"
    return (cgroups.MemoryCgroups(1, mount, cgroups.server_name(data_dir)).root
            / f"job-{job_id}")


def test_without_cgroups_rlimit_and_watchdog_bound_memory():
    """compute_memory_cgroup=off (as on a machine with no usable cgroup): RLIMIT_DATA
    stops one process, the watchdog the sum of many; the job details say so."""
    base = sandbox_data_dir()
    env = {"TAPHOUSE_COMPUTE": "on", "TAPHOUSE_COMPUTE_ENV": str(JOB_ENV),
           "TAPHOUSE_COMPUTE_UID_BASE": "3100000", "TAPHOUSE_COMPUTE_MEMORY_CGROUP": "off"}
    server = ServerProcess(base / "data", env=env).start()
    try:
        assert "RLIMIT_DATA per process + resident memory watchdog (no memory cgroup:" \
            in server.log_text()
        from taphouse.auth.accounts import AccountStore
        from taphouse.auth.passwords import PasswordHashing
        from taphouse.metadata import MetadataDB

        meta = MetadataDB(base / "data" / "meta.sqlite")
        AccountStore(meta, PasswordHashing()).add_user("nocgroup", PASSWORD)
        meta.close()
        c = taphouse.connect(server.url, interactive=False, progress=False)
        c.login("nocgroup", PASSWORD)
        one = c.run("blocks = []\nwhile True:\n    blocks.append(b'x' * 50 * 1024**2)",
                    memory="400MiB", timeout=60, wait=False).result(check=False)
        assert one.phase == "ERROR" and "MemoryError" in one.stderr
        many = c.run("""
import os, time
for i in range(8):
    if os.fork() == 0:
        block = b'x' * (150 * 1024 * 1024)
        time.sleep(60)
        os._exit(0)
time.sleep(60)
""", memory="400MiB", timeout=60, wait=False)
        info = many.wait(60)
        assert "memory limit of 400 MiB exceeded (the job's processes used" \
            in info["error"]["message"]
        assert info["memory_bound"].startswith("RLIMIT_DATA")
    finally:
        server.stop()
    assert not list(Path("/sys/fs/cgroup/memory").glob(
        f"taphouse-{_server_name(base / 'data')}"))


def _server_name(data_dir: Path) -> str:
    from taphouse.compute.cgroups import server_name

    return server_name(data_dir)


def test_leftover_sandbox_is_killed_at_start_up(compute_server):
    """A sandbox whose pid file survived (here: a stand-in process) is killed when the
    server starts; a pid file naming a reused pid is left alone."""
    import subprocess

    from taphouse.compute.sandbox import Sandbox, _start_time

    sandbox: Sandbox = compute_server.platform.compute.sandbox
    run_dir = sandbox.run_dir
    stray = subprocess.Popen(["sleep", "300"], start_new_session=True)
    (run_dir / "jstale.pid").write_text(f"{stray.pid} {_start_time(stray.pid)}\n")
    (run_dir / "jreused.pid").write_text(f"{os.getpid()} 1\n")
    assert sandbox.kill_leftovers() == 1
    assert stray.wait(10) == -signal.SIGKILL
    assert not list(run_dir.glob("j*.pid"))


def test_start_up_refuses_compute_without_a_sandbox():
    base = sandbox_data_dir()
    # compute=on without a job environment: the server does not start.
    server = ServerProcess(base / "data", env={"TAPHOUSE_COMPUTE": "on",
                                               "TAPHOUSE_COMPUTE_ENV": str(base / "none")})
    with pytest.raises(RuntimeError):
        server.start()
    server.stop()
    assert "taphouse compute setup" in server.log_text()
    # auto without bubblewrap on PATH: the server runs, compute answers 503 and why.
    server = ServerProcess(base / "data2", env={"TAPHOUSE_COMPUTE": "auto",
                                                "TAPHOUSE_COMPUTE_ENV": str(JOB_ENV),
                                                "PATH": "/nonexistent"}).start()
    try:
        from taphouse.auth.accounts import AccountStore
        from taphouse.auth.passwords import PasswordHashing
        from taphouse.metadata import MetadataDB

        meta = MetadataDB(base / "data2" / "meta.sqlite")
        AccountStore(meta, PasswordHashing()).add_user("nobwrap", PASSWORD)
        meta.close()
        tok = httpx.post(server.url + "/auth/token",
                         data={"username": "nobwrap", "password": PASSWORD}).json()
        r = httpx.post(server.url + "/api/compute", json={"script": "print(1)"},
                       headers={"Authorization": "Bearer " + tok["access_token"]})
        assert r.status_code == 503
        assert "bubblewrap is not installed" in r.json()["error"]
        assert "apt-get install bubblewrap" in r.json()["error"]
    finally:
        server.stop()


def test_home_persists_between_jobs_and_is_private(compute_server, user_client):
    user_client.run("import os; open(os.environ['HOME'] + '/notes.txt', 'w').write('kept')")
    assert user_client.run("import os; print(open(os.environ['HOME'] + '/notes.txt').read())"
                           ).stdout == "kept\n"
    platform = compute_server.platform
    uid = platform.compute.sandbox.uid_for(
        platform.authenticator.accounts.user(user_client.username).id)
    home = platform.compute.home_of(platform.authenticator.accounts.user(user_client.username).id)
    st = home.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (uid, 0o700)
    assert uid != os.getuid() and uid != 0


def test_symlinks_planted_by_a_job_are_not_followed(compute_server, user_client):
    """Outputs that are links to server files are neither listed nor served, and a link
    in the home does not count the target against the quota."""
    meta = compute_server.platform.settings.meta_path
    result = user_client.run(
        f"import os\nos.symlink({str(meta)!r}, 'meta.sqlite')\n"
        f"os.symlink('/etc/passwd', 'passwd')\nos.mkdir('d')\n"
        f"os.symlink({str(meta.parent)!r}, 'd/data')\nopen('real.txt', 'w').write('ok')")
    assert set(result.outputs) == {"real.txt"}
    h = {"Authorization": "Bearer " + user_client.auth.token}
    base = f"{compute_server.url}/api/compute/{result.job_id}/files"
    for name in ("meta.sqlite", "passwd", "d/data/meta.sqlite", "../summary.json",
                 "..%2fsummary.json"):
        assert httpx.get(f"{base}/{name}", headers=h).status_code == 404, name
    assert httpx.get(f"{base}/real.txt", headers=h).text == "ok"
