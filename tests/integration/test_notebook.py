"""The example notebook runs headless against a live server and every cell succeeds."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import taphouse

NOTEBOOK = Path(__file__).parents[2] / "src" / "taphouse" / "hub" / "examples" / "hipparcos_gaia_crossmatch.ipynb"


@pytest.mark.slow
def test_example_notebook_runs(demo_server, new_user, password, monkeypatch, tmp_path):
    name = new_user("nb")
    token = taphouse.connect(demo_server.url).login(name, password).auth.token
    monkeypatch.setenv("TAPHOUSE_URL", demo_server.url)
    monkeypatch.setenv("TAPHOUSE_TOKEN", token)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert (tmp_path / "hip_gaia.png").stat().st_size > 10_000
    client = taphouse.connect(demo_server.url, token=token)
    stored = client.mydb.describe("hip_gaia")
    assert stored.nrows > 50_000
    assert "hipparcos_gaia" in client.workspaces().names()
