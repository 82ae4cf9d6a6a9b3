"""Fixtures for catalogue tests: a store in a temporary data directory, and an engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taphouse.catalogue.model import TableMeta
from taphouse.catalogue.store import CatalogueStore
from taphouse.engine.duckdb import DuckDBEngine
from taphouse.metadata import MetadataDB


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CatalogueStore]:
    meta = MetadataDB(tmp_path / "data" / "meta.sqlite")
    yield CatalogueStore(meta, tmp_path / "data" / "tables")
    meta.close()


@pytest.fixture
def engine(store: CatalogueStore) -> DuckDBEngine:
    return DuckDBEngine(store.tables_dir, threads=1, memory_limit="256MB")


@pytest.fixture
def query(engine: DuckDBEngine) -> Callable[[TableMeta, str], list[tuple]]:
    """``query(table, sql)``: run ``sql`` with ``{t}`` replaced by the table's relation."""

    def run(table: TableMeta, sql: str) -> list[tuple]:
        with engine.cursor() as cur:
            return cur.execute(sql.format(t=engine.relation(table))).fetchall()

    return run
