"""The command line: `taphouse jobs list|show|abort` against a real server (both job
kinds), and `taphouse compute setup` on an existing environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest
from compute_helpers import JOB_ENV

pytestmark = pytest.mark.slow


def _taphouse(*args: str, url: str, token: str) -> subprocess.CompletedProcess:
    tmp_config = tempfile.mkdtemp(prefix="taphouse-cli-config-")
    env = {**os.environ, "TAPHOUSE_URL": url, "TAPHOUSE_TOKEN": token,
           "XDG_CONFIG_HOME": str(tmp_config)}
    return subprocess.run([sys.executable, "-m", "taphouse.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_jobs_list_show_abort(compute_server, user_client):
    done = user_client.run("print('from the job')")
    user_client.query("SELECT TOP 1 ra FROM gaia.dr3_bright")
    running = user_client.run("import time\nprint('up', flush=True)\ntime.sleep(300)",
                              wait=False)
    token = user_client.auth.token
    listing = _taphouse("jobs", "list", url=compute_server.url, token=token)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert any(done.job_id in line and "compute" in line and "COMPLETED" in line
               for line in lines)
    assert any(" tap " in line and "SELECT TOP 1 ra" in line for line in lines)
    only = _taphouse("jobs", "list", "--kind", "tap", url=compute_server.url, token=token)
    assert "compute" not in only.stdout and "tap" in only.stdout
    show = _taphouse("jobs", "show", done.job_id, url=compute_server.url, token=token)
    assert show.returncode == 0, show.stderr
    body = show.stdout.split("--- stdout (end) ---")
    assert json.loads(body[0])["exit_status"] == 0
    assert body[1].strip() == "from the job"
    deadline = time.monotonic() + 60
    while running.phase != "EXECUTING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
        running.info()
    abort = _taphouse("jobs", "abort", running.id, url=compute_server.url, token=token)
    assert abort.returncode == 0, abort.stderr
    assert abort.stdout.strip() == f"{running.id}: ABORTED"
    assert running.wait(30)["phase"] == "ABORTED"
    missing = _taphouse("jobs", "show", "jnosuchjob", url=compute_server.url, token=token)
    assert missing.returncode == 1
    assert "taphouse: error: no job" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_compute_setup_on_an_existing_environment(tmp_path):
    """The real command (scripts/test.sh built JOB_ENV with it): run again, it checks the
    packages are there and reports the environment ready."""
    proc = subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir",
                           str(tmp_path), "compute", "setup", "--env", str(JOB_ENV)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"job environment ready: {JOB_ENV}" in proc.stdout
    assert "TAPHOUSE_COMPUTE_ENV" in proc.stdout
