"""The example notebook of a remote-TAP join (src/taphouse/hub/examples/
remote_tap_join.ipynb, copied into every JupyterHub home) runs headless against the
platform with the remote taphouse ``far`` registered, every cell succeeding: targets
kept in mydb, EXPLAIN showing the upload of key and positions, the join answered and
stored with the remote in its provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from federation_helpers import PASSWORD
from nbclient import NotebookClient

import taphouse

NOTEBOOK = (Path(__file__).parents[2] / "src" / "taphouse" / "hub" / "examples"
            / "remote_tap_join.ipynb")


@pytest.mark.slow
def test_the_remote_join_notebook_runs(here: Any, far: Any, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    here.platform.authenticator.accounts.add_user("nbremote", PASSWORD)
    client = taphouse.connect(here.url, interactive=False, progress=False)
    token = client.login("nbremote", PASSWORD).auth.token
    monkeypatch.setenv("TAPHOUSE_URL", here.url)
    monkeypatch.setenv("TAPHOUSE_TOKEN", token)
    monkeypatch.setenv("TAPHOUSE_EXAMPLE_REMOTE", "far")
    monkeypatch.setenv("TAPHOUSE_EXAMPLE_TABLE", "hipparcos.hip2")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    assert (tmp_path / "remote_join.png").stat().st_size > 5_000
    stored = here.platform.catalogue.table("user_nbremote", "targets_remote")
    assert stored is not None and stored.nrows > 500
    assert stored.extra["provenance"]["remote"]["name"] == "far"
    client.close()
