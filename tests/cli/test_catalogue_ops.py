"""Operators' catalogue commands: ingest never silently replaces a table (--replace,
--append), drop, versions and rollback (seen by a running server at once)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow


def taphouse(data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data),
                           *args], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("TAPHOUSE_")})
    if check and proc.returncode != 0:
        raise AssertionError(f"taphouse {' '.join(args)}: {proc.returncode} {proc.stderr}")
    return proc


def parquet(path: Path, rows: int, ncols: int, *, seed: int = 0,
            types: dict[str, pa.DataType] | None = None) -> Path:
    rng = np.random.default_rng(seed)
    data = {"ra": rng.uniform(0, 360, rows), "dec": rng.uniform(-90, 90, rows)}
    for i in range(ncols - 2):
        data[f"c{i}"] = rng.normal(size=rows)
    table = pa.table(data)
    for name, t in (types or {}).items():
        table = table.set_column(table.schema.get_field_index(name), name,
                                 table[name].cast(t, safe=False))
    pq.write_table(table, path)
    return path


def count(server_url: str, table: str) -> tuple[int, int]:
    """(rows, columns) of ``table`` as the running server answers."""
    r = httpx.get(f"{server_url}/api/tables/{table.replace('.', '/')}", timeout=30)
    r.raise_for_status()
    body = r.json()
    return body["nrows"], len(body["columns"])


def test_ingest_refuses_to_replace_unless_asked(tmp_path, start_server):
    big = parquet(tmp_path / "big.parquet", 50_000, 7)
    small = parquet(tmp_path / "small.parquet", 1_000, 5, seed=1)
    server = start_server()
    data = server.data_dir
    taphouse(data, "ingest", str(big), "-d", "survey", "-t", "stars", "-q",
             "--description", "fifty thousand stars", "--epoch", "J2016")
    assert count(server.url, "survey.stars") == (50_000, 7)

    refused = taphouse(data, "ingest", str(small), "-d", "survey", "-t", "stars", "-q",
                       check=False)
    assert refused.returncode == 2
    assert "exists (50,000 rows, 7 columns)" in refused.stderr and "--replace" in refused.stderr
    assert count(server.url, "survey.stars") == (50_000, 7)

    taphouse(data, "ingest", str(small), "-d", "survey", "-t", "stars", "-q", "--replace")
    assert count(server.url, "survey.stars") == (1_000, 5)
    listed = taphouse(data, "tables", "survey").stdout
    assert "fifty thousand stars" in listed  # the description survives a replacement

    versions = taphouse(data, "versions", "survey.stars").stdout.splitlines()
    assert len(versions) == 3 and "current" in versions[1] and "retained" in versions[2]
    back = taphouse(data, "rollback", "survey.stars")
    assert "50,000 rows" in back.stdout
    assert count(server.url, "survey.stars") == (50_000, 7)  # the running server sees it
    taphouse(data, "rollback", "survey.stars")  # a rollback can be rolled back
    assert count(server.url, "survey.stars") == (1_000, 5)
    audit = taphouse(data, "audit", "--event", "catalogue").stdout
    assert "rolled back" in audit and "replaced by ingest" in audit


def test_append_needs_the_same_columns(tmp_path, start_server):
    server = start_server()
    data = server.data_dir
    first = parquet(tmp_path / "a.parquet", 300, 4)
    taphouse(data, "ingest", str(first), "-d", "survey", "-t", "t", "-q", "--description", "d")
    more = parquet(tmp_path / "b.parquet", 200, 4, seed=2)
    taphouse(data, "ingest", str(more), "-d", "survey", "-t", "t", "-q", "--append")
    assert count(server.url, "survey.t") == (500, 4)
    r = httpx.get(f"{server.url}/tap/sync", params={
        "REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv",
        "QUERY": "SELECT COUNT(*) AS n FROM survey.t WHERE 1=CONTAINS(POINT('ICRS', ra, dec),"
                 " CIRCLE('ICRS', 0, 0, 180))"}, timeout=60)
    assert r.status_code == 200 and r.text.splitlines()[1] == "500"  # index covers new rows

    other = parquet(tmp_path / "c.parquet", 10, 5, seed=3)
    refused = taphouse(data, "ingest", str(other), "-d", "survey", "-t", "t", "-q", "--append",
                       check=False)
    assert refused.returncode == 2 and "columns differ" in refused.stderr
    assert "extra ['c2']" in refused.stderr
    typed = parquet(tmp_path / "d.parquet", 10, 4, seed=4, types={"c0": pa.int32()})
    refused = taphouse(data, "ingest", str(typed), "-d", "survey", "-t", "t", "-q", "--append",
                       check=False)
    assert refused.returncode == 2 and "other types" in refused.stderr and "c0" in refused.stderr
    both = subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data),
                           "ingest", str(more), "-d", "survey", "-t", "t", "--append",
                           "--replace"], capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and "not allowed with" in both.stderr
    assert count(server.url, "survey.t") == (500, 4)


def test_drop_table_and_database(tmp_path, start_server):
    server = start_server()
    data = server.data_dir
    f = parquet(tmp_path / "a.parquet", 100, 3)
    for name in ("t1", "t2"):
        taphouse(data, "ingest", str(f), "-d", "survey", "-t", name, "-q")
    unsure = taphouse(data, "drop", "survey.t1", check=False)
    assert unsure.returncode == 2 and "--yes" in unsure.stderr and "backup" in unsure.stderr
    assert count(server.url, "survey.t1") == (100, 3)
    taphouse(data, "drop", "survey.t1", "--yes")
    assert httpx.get(f"{server.url}/api/tables/survey/t1", timeout=30).status_code == 404
    missing = taphouse(data, "drop", "survey.t1", "--yes", check=False)
    assert missing.returncode == 2 and "unknown table" in missing.stderr
    taphouse(data, "drop", "survey", "--yes")
    assert "survey" not in taphouse(data, "databases").stdout
    assert httpx.get(f"{server.url}/api/tables/survey/t2", timeout=30).status_code == 404
    none = taphouse(data, "rollback", "nosuch.t", check=False)
    assert none.returncode == 2 and "unknown database" in none.stderr


def test_rollback_without_an_earlier_version_says_why(tmp_path, start_server):
    server = start_server()
    data = server.data_dir
    taphouse(data, "ingest", str(parquet(tmp_path / "a.parquet", 10, 3)), "-d", "s", "-t",
             "t", "-q")
    proc = taphouse(data, "rollback", "s.t", check=False)
    assert proc.returncode == 2 and "no retained earlier version" in proc.stderr
    user_schema = taphouse(data, "versions", "user_nobody.t", check=False)
    assert user_schema.returncode == 2
