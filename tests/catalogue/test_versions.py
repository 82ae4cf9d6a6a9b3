"""Retired versions: kept for the grace period and, when replaced, for the retention of
their kind of database; listed and restored (rollback) through the store's API; counted
as held bytes until deleted."""

from __future__ import annotations

import pytest

from taphouse.catalogue.model import CatalogueError, ColumnMeta, TableMeta
from taphouse.catalogue.store import CatalogueStore, Retention
from taphouse.engine.duckdb import DuckDBEngine
from taphouse.metadata import MetadataDB


@pytest.fixture
def parts(tmp_path):
    meta = MetadataDB(tmp_path / "data" / "meta.sqlite")
    tables = tmp_path / "data" / "tables"
    engine = DuckDBEngine(tables, threads=1, memory_limit="256MB",
                          temp_dir=tmp_path / "data" / "tmp" / "area")
    yield meta, tables, engine
    meta.close()


def _publish(store: CatalogueStore, engine: DuckDBEngine, n: int, db: str = "db",
             name: str = "t") -> TableMeta:
    path = store.new_version_path(db, name)
    rows = engine.write_table(f"SELECT range AS x FROM range({n})", path)
    return store.publish(TableMeta(db, name, [ColumnMeta("x", "long")], nrows=rows), path)


def _rows(engine: DuckDBEngine, table: TableMeta) -> int:
    with engine.cursor() as cur:
        return cur.execute(f"SELECT count(*) FROM {engine.relation(table)}").fetchone()[0]


def test_list_and_restore_retained_versions(parts):
    meta, tables, engine = parts
    store = CatalogueStore(meta, tables, Retention(grace=0.0, catalogue=3600.0))
    store.create_database("db")
    v1, v2, v3 = (_publish(store, engine, n) for n in (10, 20, 30))
    listed = store.versions("db", "t")
    assert [v.version_id for v in listed] == [v3.version_id, v2.version_id, v1.version_id]
    assert [v.current for v in listed] == [True, False, False]
    assert all(v.exists for v in listed) and listed[0].expires is None
    assert listed[1].expires is not None and listed[1].expires > listed[1].retired
    assert store.collect_garbage() == 0  # retained for an hour
    back = store.restore_version("db", "t", v1.version_id)
    assert back.version_id == v1.version_id and back.nrows == 10 and _rows(engine, back) == 10
    assert store.table("db", "t").version_id == v1.version_id
    now = {v.version_id: v for v in store.versions("db", "t")}
    assert now[v1.version_id].current and now[v1.version_id].retired is None
    assert now[v3.version_id].retired is not None  # retained in its turn
    with pytest.raises(CatalogueError, match="already the current version"):
        store.restore_version("db", "t", v1.version_id)
    with pytest.raises(CatalogueError, match="no retained version 999"):
        store.restore_version("db", "t", 999)
    with pytest.raises(CatalogueError, match="unknown table"):
        store.versions("db", "nope")
    # A version of another table is not this table's.
    other = _publish(store, engine, 5, name="u")
    with pytest.raises(CatalogueError, match="no retained version"):
        store.restore_version("db", "t", other.version_id)
    # A retained version whose file went missing cannot come back.
    v2.path.unlink()
    with pytest.raises(CatalogueError, match="is missing"):
        store.restore_version("db", "t", v2.version_id)
    assert store.table("db", "t").version_id == v1.version_id


def test_retention_applies_to_replaced_versions_not_dropped_tables(parts):
    meta, tables, engine = parts
    store = CatalogueStore(meta, tables, Retention(grace=0.0, catalogue=3600.0, user=0.0))
    store.create_database("db")
    store.create_database("user_ann", kind="user", public=False)
    old = _publish(store, engine, 10)
    _publish(store, engine, 20)
    mine = _publish(store, engine, 5, db="user_ann", name="m")
    _publish(store, engine, 6, db="user_ann", name="m")
    gone = _publish(store, engine, 7, name="gone")
    store.drop_table("db", "gone")
    assert store.collect_garbage() == 2  # the user table's old version, the dropped table
    assert old.path.exists() and not mine.path.exists() and not gone.path.exists()
    # Retention shortened (the operator's setting): the catalogue version goes too.
    store.retention = Retention(grace=0.0, catalogue=0.0)
    assert store.collect_garbage() == 1 and not old.path.exists()
    assert [v.current for v in store.versions("db", "t")] == [True]


def test_holding_counts_retired_versions_until_deleted(parts):
    meta, tables, engine = parts
    store = CatalogueStore(meta, tables, Retention(grace=3600.0))
    store.create_database("user_ann", kind="user", public=False)
    first = _publish(store, engine, 1000, db="user_ann", name="a")
    second = _publish(store, engine, 2000, db="user_ann", name="a")
    third = _publish(store, engine, 10, db="user_ann", name="b")
    store.drop_table("user_ann", "b")
    held = store.holding("user_ann")
    assert held.tables == 1
    assert held.nbytes == first.nbytes + second.nbytes + third.nbytes
    assert held.retained_bytes == first.nbytes + third.nbytes
    assert held.rows - held.retained_rows == 2000
    assert held.next_release is not None
    store.retention = Retention(grace=0.0)
    assert store.collect_garbage() == 2
    held = store.holding("user_ann")
    assert held.nbytes == second.nbytes and held.retained_bytes == 0
    assert held.next_release is None


def test_no_file_is_deleted_while_held(parts):
    meta, tables, engine = parts
    store = CatalogueStore(meta, tables, Retention(grace=0.0))
    store.create_database("db")
    old = _publish(store, engine, 10)
    _publish(store, engine, 20)
    other = CatalogueStore(meta, tables, Retention(grace=0.0))  # as another process
    with store.files_held():
        assert other.collect_garbage() == 0 and old.path.exists()
    assert other.collect_garbage() == 1 and not old.path.exists()


def test_versions_are_written_in_tmp_and_private(parts, tmp_path):
    meta, tables, engine = parts
    store = CatalogueStore(meta, tables)
    store.create_database("db")
    t = _publish(store, engine, 10)
    assert t.path.parent.parent.parent == store.tables_dir
    assert t.path.stat().st_mode & 0o777 == 0o600
    assert list((tmp_path / "data" / "tmp" / "area").glob("w-*")) == []
    # Recorded relative to the data directory.
    stored = meta.query_one("SELECT path FROM table_versions WHERE id=?", (t.version_id,))[0]
    assert stored == t.path.relative_to(tmp_path / "data").as_posix()
    assert stored.startswith("tables/db/t/v")
