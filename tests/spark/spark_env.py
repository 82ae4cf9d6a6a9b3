"""Helpers of the Spark tests: the ADQL tests' tables and corpora, and running ADQL on a
Spark backend."""

from __future__ import annotations

import importlib.util
import sys
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
