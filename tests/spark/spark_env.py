"""Helpers of the Spark tests: the ADQL tests' tables and corpora, and running ADQL on a
Spark backend."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pyarrow as pa

ADQL_TESTS = Path(__file__).resolve().parent.parent / "adql"
# the corpora and helpers of the ADQL tests (test_select, test_partitioned...)
if str(ADQL_TESTS) not in sys.path:
    sys.path.insert(0, str(ADQL_TESTS))
_spec = importlib.util.spec_from_file_location("spark_adql_env", ADQL_TESTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
adql_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(adql_env)


def arrow_rows(batches) -> list[tuple]:
    """Rows of Arrow batches as tuples (as DuckDB's fetchall gives them)."""
    batches = list(batches)
    if not batches:
        return []
    table = pa.Table.from_batches(batches)
    return [tuple(r.values()) for r in table.to_pylist()]


def running_tasks(backend) -> int:
    """Tasks still running on the backend's executors (the driver's included): a
    cancelled job is reported over at once, its tasks only when they have stopped."""
    infos = backend.context._jsc.sc().statusTracker().getExecutorInfos()
    return sum(info.numRunningTasks() for info in infos)


def tasks_stop(backend, within: float = 60.0) -> bool:
    """Whether every running task of the backend ends within ``within`` seconds."""
    deadline = time.monotonic() + within
    while running_tasks(backend) and time.monotonic() < deadline:
        time.sleep(0.2)
    return running_tasks(backend) == 0


class SparkRun:
    """Translate ADQL for Spark over a scope and run it on a backend."""

    def __init__(self, backend, tables: dict, inline: dict | None = None) -> None:
        self.backend, self.tables, self.inline = backend, tables, inline or {}

    def translate(self, adql: str, **kw):
        from taphouse.adql import Scope, translate

        scope = Scope(tables=self.tables, relation=self.backend.relation, inline=self.inline)
        return translate(adql, scope, dialect="spark", **kw)

    def run(self, adql: str, **kw):
        from taphouse.adql import inline_name

        t = self.translate(adql, **kw)
        inline = {inline_name(tm): self.inline[(tm.database, tm.name)] for tm in t.tables
                  if (tm.database, tm.name) in self.inline}
        with self.backend.cursor(inline) as cur:
            return t, arrow_rows(self.backend.stream(cur, t.sql))


def files_read(sql: str) -> list[str]:
    """The Parquet files Spark SQL names: ``parquet.`path``` scans, a glob
    ``root/{a,b,...}`` expanded (the one scan of several partitions)."""
    import re

    out = []
    for name in re.findall(r"parquet\.`((?:[^`]|``)*)`", sql):
        name = name.replace("``", "`")
        glob = re.fullmatch(r"(.*)/\{(.*)\}", name)
        if glob is None:
            out.append(name)
        else:
            out.extend(f"{glob.group(1)}/{rel}" for rel in glob.group(2).split(","))
    return out
