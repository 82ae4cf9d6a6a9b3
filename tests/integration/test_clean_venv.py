"""A fresh virtual environment with only ``pip install .`` (no extras) can import the
client, log in and query a running server."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]

SCRIPT = r"""
import importlib.util, sys, warnings
for heavy in ("duckdb", "fastapi", "sqlglot", "pyarrow", "pandas"):
    assert importlib.util.find_spec(heavy) is None, heavy + " is installed in the base venv"
import taphouse.client
import taphouse
# The web page's bundle is package data: a plain install ships it.
from pathlib import Path
static = Path(taphouse.__file__).parent / "web" / "static"
assert {"index.html", "app.js", "app.css", "worker.js"} <= {p.name for p in static.iterdir()}
url, user, password = sys.argv[1:4]
client = taphouse.connect(url, interactive=False, progress=False).login(user, password)
t = client.query("SELECT TOP 5 hip, ra FROM hipparcos.hip2 ORDER BY hip")
assert list(t["hip"]) == [1, 2, 3, 4, 5], list(t["hip"])
print("OK", client.username, len(t), t["ra"].unit)
try:
    client.query("SELECT TOP 1 hip FROM hipparcos.hip2", output="pandas")
except ImportError as exc:
    print("PANDAS", exc)
"""


@pytest.mark.slow
def test_base_install_logs_in_and_queries(demo_server, new_user, password, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = env_dir / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(REPO)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    name = new_user("v")
    run = subprocess.run([str(py), "-c", SCRIPT, demo_server.url, name, password],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"OK {name} 5 deg" in run.stdout
    assert "PANDAS output='pandas' needs the pandas package" in run.stdout
    assert sys.prefix != str(env_dir)
