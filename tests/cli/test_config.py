"""One configuration for the server and every command: taphouse.toml (working directory,
then /etc/taphouse; or --config / TAPHOUSE_CONFIG), flag > environment > file; commands
say which data directory they use and never create a store without --init."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from accounts import PASSWORD
from servers import free_port, wait_until_up
from taphouse.settings import Settings, read_config_file


def run(*args: str, cwd: Path, env: dict[str, str] | None = None,
        stdin: str = "") -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAPHOUSE_")}
    return subprocess.run([sys.executable, "-m", "taphouse.cli", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120,
                          env={**clean, **(env or {})})


def test_admin_command_elsewhere_refuses_to_create_a_store(tmp_path):
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    proc = run("user", "add", "ada", "--password-stdin", cwd=elsewhere, stdin=PASSWORD)
    assert proc.returncode == 2
    assert f"no taphouse store in {elsewhere / 'taphouse-data'}" in proc.stderr
    assert "--init" in proc.stderr and "taphouse.toml" in proc.stderr
    assert not (elsewhere / "taphouse-data").exists()
    for args in (("databases",), ("tables", "x"), ("audit",), ("user", "list"),
                 ("migrate",), ("demo", "load")):
        again = run(*args, cwd=elsewhere)
        assert again.returncode == 2 and "no taphouse store" in again.stderr, args
    assert not (elsewhere / "taphouse-data").exists()

    made = run("user", "add", "ada", "--password-stdin", "--init", cwd=elsewhere,
               stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    assert f"data directory {elsewhere / 'taphouse-data'} (the default, new store)" in made.stderr
    listed = run("user", "list", cwd=elsewhere)
    assert "ada" in listed.stdout
    assert f"data directory {elsewhere / 'taphouse-data'} (the default)" in listed.stderr


def test_taphouse_toml_is_found_and_flag_beats_environment_beats_file(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "taphouse.toml").write_text('data_dir = "store"  # relative to this file\n'
                                        "quota_rows = 1000\n"
                                        'upload_url_hosts = ["a.example", "b.example"]\n')
    made = run("user", "add", "ada", "--password-stdin", "--init", cwd=site, stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    assert (site / "store" / "meta.sqlite").exists()
    assert f"data directory {site / 'store'} (from {site / 'taphouse.toml'}" in made.stderr

    # From another directory: TAPHOUSE_CONFIG names the file.
    other = tmp_path / "other"
    other.mkdir()
    listed = run("user", "list", cwd=other, env={"TAPHOUSE_CONFIG": str(site / "taphouse.toml")})
    assert listed.returncode == 0 and "ada" in listed.stdout
    listed = run("--config", str(site / "taphouse.toml"), "user", "list", cwd=other)
    assert listed.returncode == 0 and "ada" in listed.stdout

    # environment beats the file; the flag beats both
    env_dir = tmp_path / "env-store"
    proc = run("user", "list", cwd=site, env={"TAPHOUSE_DATA_DIR": str(env_dir)})
    assert proc.returncode == 2 and str(env_dir) in proc.stderr
    assert "from TAPHOUSE_DATA_DIR" in proc.stderr
    flag_dir = tmp_path / "flag-store"
    proc = run("--data-dir", str(flag_dir), "user", "list", cwd=site,
               env={"TAPHOUSE_DATA_DIR": str(env_dir)})
    assert proc.returncode == 2 and str(flag_dir) in proc.stderr
    assert "from --data-dir" in proc.stderr

    values = read_config_file(site / "taphouse.toml")
    assert values["data_dir"] == site / "store"
    settings = Settings.from_env({"TAPHOUSE_QUOTA_ROWS": "5"}, file_values=values)
    assert settings.quota_rows == 5 and settings.upload_url_hosts == ("a.example", "b.example")
    assert Settings.from_env({}, file_values=values, quota_rows=7).quota_rows == 7


@pytest.mark.parametrize("text, message", [
    ("quota_rowz = 5\n", "unknown setting 'quota_rowz' (did you mean 'quota_rows'?)"),
    ('quota_rows = "many"\n', "quota_rows = 'many' is not a valid"),
    ("anonymous_read = 1\n", "anonymous_read = 1 is not a valid"),
    ("quota_rows = \n", "not valid TOML"),
])
def test_a_bad_file_is_a_clear_error(tmp_path, text, message):
    (tmp_path / "taphouse.toml").write_text(text)
    proc = run("user", "list", cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    missing = run("--config", str(tmp_path / "nope.toml"), "user", "list", cwd=tmp_path)
    assert missing.returncode == 2 and "no configuration file" in missing.stderr


def test_the_server_reads_the_same_file(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    port = free_port()
    (site / "taphouse.toml").write_text(f'data_dir = "store"\nport = {port}\n'
                                        "anonymous_read = false\n")
    assert run("user", "add", "ada", "--password-stdin", "--init", cwd=site,
               stdin=PASSWORD).returncode == 0
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAPHOUSE_")}
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "taphouse.cli", "serve"], cwd=site,
                            env=clean, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, proc=proc)
        # the account made by the command is the server's; anonymous reading is off
        assert httpx.get(f"{url}/api/databases", timeout=30).status_code == 401
        r = httpx.post(f"{url}/auth/token", data={"username": "ada", "password": PASSWORD},
                       timeout=60)
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert f"data in {site / 'store'}" in (tmp_path / "server.log").read_text()
