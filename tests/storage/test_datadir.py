"""The data directory: private permissions (set at creation, enforced at start-up) and
tmp/ areas (removed at start-up when their process died, kept while it lives)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from storage_helpers import csv_rows, taphouse

from servers import start_live
from taphouse.storage.datadir import (
    PermissionsError,
    TmpArea,
    clean_tmp,
    enforce_permissions,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_everything_is_created_private(tmp_path):
    data = tmp_path / "data"
    (tmp_path / "t.csv").write_text(csv_rows(10))
    taphouse(data, "ingest", str(tmp_path / "t.csv"), "-d", "survey", "-t", "t", "-q")
    server = start_live(data)
    try:
        import httpx

        with httpx.Client(base_url=server.url, timeout=60) as c:
            r = c.post("/tap/async", data={"LANG": "ADQL", "PHASE": "RUN",
                                           "QUERY": "SELECT * FROM survey.t"})
            c.get(r.headers["location"], params={"WAIT": "30"})
    finally:
        server.stop()
    paths = [data, *data.rglob("*")]
    assert any(p.parent.name == "t" and p.suffix == ".duckdb" for p in paths)
    assert any(p.parts[-3] == "jobs" for p in paths if len(p.parts) > 3)
    for path in paths:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), (path, oct(_mode(path)))


def test_enforce_permissions(tmp_path):
    data = tmp_path / "data"
    for sub in ("tables/db/t", "jobs/j1", "compute/lib"):
        (data / sub).mkdir(parents=True)
    for path in [data, *data.rglob("*")]:
        os.chmod(path, 0o700)
    loose = data / "tables" / "db" / "t" / "v1_0123456789ab.duckdb"
    loose.write_text("x")
    os.chmod(loose, 0o644)
    os.chmod(data, 0o755)
    os.chmod(data / "jobs", 0o710)  # the compute sandbox's group may traverse
    (data / "compute" / "lib" / "client.py").write_text("x")
    os.chmod(data / "compute" / "lib" / "client.py", 0o640)  # compute's own business
    changed = enforce_permissions(data)
    assert sorted(changed) == sorted([str(data), str(loose)])
    assert _mode(data) == 0o710 and _mode(loose) == 0o600
    assert _mode(data / "jobs") == 0o710
    assert _mode(data / "compute" / "lib" / "client.py") == 0o640
    # Another account's files: fine in a sandboxed job's folder (only others' bits go
    # there: the sandbox group's are compute's business), refused elsewhere.
    os.chown(data / "jobs" / "j1", 2_000_001, 2_000_001)
    os.chmod(data / "jobs" / "j1", 0o755)
    assert enforce_permissions(data) == [str(data / "jobs" / "j1")]
    assert _mode(data / "jobs" / "j1") == 0o750
    os.chown(loose, 65534, 65534)
    with pytest.raises(PermissionsError, match=r"belong to another account.*v1_0123456789ab"):
        enforce_permissions(data)
    # The server refuses to start on it, saying why.
    with pytest.raises(PermissionsError, match="chown -R"):
        start_live(data)


def test_tmp_areas_of_dead_processes_are_removed(tmp_path):
    tmp = tmp_path / "data" / "tmp"
    mine = TmpArea(tmp)
    (mine.path / "w-1.duckdb").write_text("in use")
    # Another process holds its area while it runs ...
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from taphouse.storage.datadir import TmpArea
        area = TmpArea({str(tmp)!r})
        (area.path / "spill").write_text("busy")
        print(area.path, flush=True)
        time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        live = Path(holder.stdout.readline().strip())
        # ... one died without cleaning up, and left a file and a half-made area.
        dead = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import os
            from taphouse.storage.datadir import TmpArea
            area = TmpArea({str(tmp)!r})
            (area.path / "w-2.duckdb").write_text("half")
            print(area.path)
            os._exit(0)
            """)], capture_output=True, text=True, check=True)
        dead_area = Path(dead.stdout.strip())
        (tmp / "stray-upload").write_text("x")
        assert dead_area.exists()
        assert clean_tmp(tmp) == 2
        assert not dead_area.exists() and not (tmp / "stray-upload").exists()
        assert (live / "spill").read_text() == "busy"
        assert (mine.path / "w-1.duckdb").read_text() == "in use"
    finally:
        holder.kill()
        holder.wait()
    assert clean_tmp(tmp) == 1 and not live.exists()
    mine.close()
    assert list(tmp.iterdir()) == []
