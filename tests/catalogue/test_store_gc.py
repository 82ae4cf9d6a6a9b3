"""Replaced table versions are removed from disk; the current one stays queryable."""

from __future__ import annotations

import time

from taphouse.catalogue.model import ColumnMeta, TableMeta
from taphouse.catalogue.store import CatalogueStore
from taphouse.engine.duckdb import DuckDBEngine
from taphouse.metadata import MetadataDB


def _version(store: CatalogueStore, engine: DuckDBEngine, n: int) -> TableMeta:
    path = store.new_version_path("db", "t")
    rows = engine.write_table(f"SELECT range AS x FROM range({n})", path)
    return store.publish(TableMeta("db", "t", [ColumnMeta("x", "long")], nrows=rows), path)


def test_collect_garbage_removes_retired_files_only(tmp_path):
    store = CatalogueStore(MetadataDB(tmp_path / "meta.sqlite"), tmp_path / "tables")
    engine = DuckDBEngine(tmp_path / "tables")
    store.create_database("db")
    old = _version(store, engine, 3)
    engine.relation(old)  # attached, as a running server would have it
    new = _version(store, engine, 5)
    assert old.version_id in store.retired_version_ids()
    assert store.collect_garbage(older_than=3600) == 0  # still within the grace period
    assert old.path.exists()
    time.sleep(1.1)
    engine.forget(old.version_id)
    assert store.collect_garbage(older_than=1) >= 1
    assert not old.path.exists() and new.path.exists()
    assert store.retired_version_ids() == []
    with engine.cursor() as cur:
        assert cur.execute(f"SELECT count(*) FROM {engine.relation(new)}").fetchone()[0] == 5


def test_position_columns_by_primary_ucd_word_then_name():
    from taphouse.catalogue.model import position_columns

    def col(name, ucd=None, datatype="double"):
        return ColumnMeta(name, datatype, ucd=ucd)

    # a proper motion's UCD mentions pos.eq.ra, but its primary word is pos.pm
    cols = [col("pmra", "pos.pm;pos.eq.ra"), col("pmde", "pos.pm;pos.eq.dec"),
            col("alpha", "pos.eq.ra;meta.main"), col("delta", "pos.eq.dec;meta.main")]
    assert position_columns(cols) == ("alpha", "delta")
    assert position_columns([col("ra"), col("dec")]) == ("ra", "dec")
    assert position_columns([col("ra"), col("mag")]) == (None, None)
    assert position_columns([col("ra", datatype="char"), col("dec")]) == (None, None)
