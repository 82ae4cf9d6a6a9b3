"""The Backend protocol's Arrow methods on DuckDB: a version file from Arrow batches
(written aside, nothing left on failure, byte limit, sorted), temporary tables with a row
cap, interrupt and time limit, and user messages by error type."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from taphouse.catalogue.model import ColumnMeta, TableMeta
from taphouse.engine.backend import Backend
from taphouse.engine.duckdb import DuckDBEngine
from taphouse.engine.errors import EngineError, TempTableTooLarge, WriteLimitExceeded
from taphouse.errors import ServiceError

SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("s", pa.string())])


@pytest.fixture
def engine(tmp_path: Path) -> DuckDBEngine:
    return DuckDBEngine(tmp_path / "tables", threads=1, memory_limit="256MB",
                        temp_dir=tmp_path / "tmp")


def _batches(n: int, size: int = 1000, start: int = 0):
    for k in range(start, start + n, size):
        ids = np.arange(k, min(k + size, start + n))
        yield pa.record_batch({"id": ids, "x": (ids * 7919 % 1000).astype(float),
                               "s": pa.array([f"row {i}" for i in ids])}, schema=SCHEMA)


def _read(engine: DuckDBEngine, path: Path, sql: str = "SELECT * FROM {t}") -> list[tuple]:
    table = TableMeta("db", "t", [ColumnMeta(f.name, "char") for f in SCHEMA],
                      path=str(path), version_id=1)
    with engine.cursor() as cur:
        return cur.execute(sql.format(t=engine.relation(table))).fetchall()


def test_duckdb_is_a_backend(engine: DuckDBEngine) -> None:
    assert isinstance(engine, Backend)


def test_write_arrow_stores_every_batch(engine: DuckDBEngine) -> None:
    path = engine.tables_dir / "db" / "t" / "v1.duckdb"
    path.parent.mkdir(parents=True)
    assert engine.write_arrow(_batches(5500), SCHEMA, path) == 5500
    rows = _read(engine, path, "SELECT count(*), sum(id), min(s), max(x) FROM {t}")
    assert rows == [(5500, sum(range(5500)), "row 0", 999.0)]
    assert list(engine.temp_dir.iterdir()) == []  # written aside, moved in


def test_write_arrow_sorted(engine: DuckDBEngine) -> None:
    path = engine.tables_dir / "v2.duckdb"
    assert engine.write_arrow(_batches(3000, 700), SCHEMA, path, order_by="x, id") == 3000
    got = _read(engine, path, "SELECT x, id FROM {t}")
    assert got == sorted(got) and len(got) == 3000
    assert list(engine.temp_dir.iterdir()) == []  # the staging file is gone too


def _ids(values) -> pa.RecordBatch:
    ids = np.asarray(values, dtype=np.int64)
    return pa.record_batch({"id": ids, "x": ids.astype(float),
                            "s": pa.array([f"row {i}" for i in ids])}, schema=SCHEMA)


@pytest.mark.parametrize("case", ["in order", "later batch lower", "inside a batch",
                                  "first batch", "null key"])
def test_write_arrow_sorted_by_one_column(engine: DuckDBEngine, case: str) -> None:
    """Ordered by one integer column: batches already in order go straight into the
    file; the first one out of order sends the rows so far to the sorting path. Either
    way the file holds every row once, in order."""
    in_order = [_ids(range(k, k + 500)) for k in range(0, 3000, 500)]
    batches = {
        "in order": in_order,
        "later batch lower": [*in_order[:4], _ids(range(100, 600)), *in_order[4:]],
        "inside a batch": [*in_order[:2], _ids([5000, 4000, 6000]), *in_order[2:]],
        "first batch": [_ids([9, 3, 7]), *in_order],
        "null key": [*in_order[:1], pa.record_batch(
            {"id": pa.array([None, 9000], pa.int64()), "x": [1.0, 2.0], "s": ["a", "b"]},
            schema=SCHEMA), *in_order[1:]],
    }[case]
    path = engine.tables_dir / f"o-{case.replace(' ', '-')}.duckdb"
    writer = engine.open_writer(SCHEMA, path, order_by='"id"', max_bytes=50_000_000)
    for batch in batches:
        writer.write(batch)
    assert (writer._stage is None) == (case == "in order")  # the path taken
    total = sum(b.num_rows for b in batches)
    assert writer.close() == total
    got = [r[0] for r in _read(engine, path, "SELECT id FROM {t}")]
    expected = sorted(v for b in batches for v in b.column(0).to_pylist() if v is not None)
    assert len(got) == total
    assert got[:len(expected)] == expected and got[len(expected):] == [None] * (
        total - len(expected))  # NULLS LAST, as ORDER BY puts them
    assert list(engine.temp_dir.iterdir()) == []


def test_write_arrow_in_order_keeps_the_byte_limit(engine: DuckDBEngine) -> None:
    path = engine.tables_dir / "o-limit.duckdb"
    with pytest.raises(WriteLimitExceeded):
        engine.write_arrow(_batches(400_000, 65536), SCHEMA, path, order_by='"id"',
                           max_bytes=1_000_000)
    assert not path.exists() and list(engine.temp_dir.iterdir()) == []


def test_write_arrow_failure_leaves_nothing(engine: DuckDBEngine) -> None:
    path = engine.tables_dir / "v3.duckdb"

    def failing():
        yield from _batches(2000)
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        engine.write_arrow(failing(), SCHEMA, path, order_by="id")
    assert not path.exists() and list(engine.temp_dir.iterdir()) == []
    # A batch of another schema is refused the same way.
    other = pa.record_batch({"a": pa.array([[1, 2]])})
    with pytest.raises(duckdb.Error):
        engine.write_arrow([other], SCHEMA, path)
    assert not path.exists() and list(engine.temp_dir.iterdir()) == []


def test_write_arrow_byte_limit(engine: DuckDBEngine) -> None:
    path = engine.tables_dir / "v4.duckdb"
    with pytest.raises(WriteLimitExceeded) as info:
        engine.write_arrow(_batches(400_000, 65536), SCHEMA, path, max_bytes=1_000_000)
    assert isinstance(info.value, ServiceError) and info.value.limit == 1_000_000
    assert not path.exists() and list(engine.temp_dir.iterdir()) == []
    # What fits is stored.
    assert engine.write_arrow(_batches(100), SCHEMA, path, max_bytes=5_000_000) == 100


def test_write_arrow_outside_tables_refused(engine: DuckDBEngine, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="outside the tables directory"):
        engine.write_arrow(_batches(10), SCHEMA, tmp_path / "elsewhere.duckdb")


def test_open_writer_pushes_batches(engine: DuckDBEngine) -> None:
    path = engine.tables_dir / "v5.duckdb"
    writer = engine.open_writer(SCHEMA, path)
    for batch in _batches(2500, 1000):
        writer.write(batch)
        assert not path.exists()  # nothing visible before close
    assert writer.close() == 2500 and path.exists()
    aborted = engine.open_writer(SCHEMA, engine.tables_dir / "v6.duckdb")
    aborted.write(next(_batches(10)))
    aborted.abort()
    assert not (engine.tables_dir / "v6.duckdb").exists()
    assert list(engine.temp_dir.iterdir()) == []


def test_load_temp_table_joins_and_caps(engine: DuckDBEngine) -> None:
    table = pa.Table.from_batches(list(_batches(50)))
    with engine.cursor() as cur:
        assert engine.load_temp_table(cur, "remote_a", table, max_rows=50) == 50
        reader = pa.RecordBatchReader.from_batches(SCHEMA, _batches(30, 7, start=40))
        assert engine.load_temp_table(cur, "up_b", reader, max_rows=100) == 30
        joined = cur.execute("SELECT count(*) FROM remote_a JOIN up_b USING (id)").fetchone()
        assert joined == (10,)
        with pytest.raises(TempTableTooLarge) as info:
            engine.load_temp_table(cur, "big", _batches(101, 10), max_rows=100)
        assert "big" in info.value.message and "100 rows" in info.value.message
        assert isinstance(info.value, ServiceError)
        with pytest.raises(TempTableTooLarge):
            engine.load_temp_table(cur, "big", table, max_rows=49)
        with pytest.raises(duckdb.CatalogException):  # nothing loaded
            cur.execute("SELECT * FROM big")
        with pytest.raises(EngineError, match="not a valid"):
            engine.load_temp_table(cur, "x; DROP TABLE y", table, max_rows=100)
    with engine.cursor() as other:  # another cursor does not see them
        with pytest.raises(duckdb.CatalogException):
            other.execute("SELECT * FROM remote_a")


def test_interrupt_and_time_limit(engine: DuckDBEngine) -> None:
    slow = "SELECT count(*) FROM range(100000000000) a"
    with engine.cursor() as cur:
        threading.Timer(0.3, engine.interrupt, args=(cur,)).start()
        with pytest.raises(duckdb.InterruptException) as info:
            cur.execute(slow).fetchall()
        assert "interrupted" in engine.describe_error(info.value)
    with engine.cursor() as cur:
        engine.limit(cur, seconds=0.3)
        started = time.monotonic()
        with pytest.raises(duckdb.InterruptException):
            cur.execute(slow).fetchall()
        assert time.monotonic() - started < 20
    engine.interrupt(cur)  # a closed cursor: nothing happens


def test_describe_error_by_type(engine: DuckDBEngine, tmp_path: Path) -> None:
    cases = {
        "SELECT 2147483647::INTEGER * 2": "a value is out of range: Overflow",
        "SELECT 'abc'::INTEGER": "a value has the wrong type: Could not convert",
        "SELECT nocol FROM range(3)": "the query cannot be run: Referenced column",
    }
    with engine.cursor() as cur:
        for sql, start in cases.items():
            with pytest.raises(duckdb.Error) as info:
                cur.execute(sql).fetchall()
            text = engine.describe_error(info.value)
            assert text.startswith(start), text
            assert "Error:" not in text and "LINE" not in text and "Exception" not in text
        with pytest.raises(duckdb.Error) as info:
            cur.execute(f"SELECT * FROM read_csv('{tmp_path}/secret/file.csv')").fetchall()
        text = engine.describe_error(info.value)
        assert str(tmp_path) not in text and "/secret" not in text
    assert "Exception" not in engine.describe_error(duckdb.InternalException("x at /a/b/c"))
    assert "/a/b" not in engine.describe_error(duckdb.IOException("Cannot open /a/b/c.db"))


def test_describe_error_met_while_streaming(engine: DuckDBEngine) -> None:
    # Past the first batch, DuckDB's error reaches Python as pyarrow's OSError with
    # DuckDB's text: still described by DuckDB's type.
    sql = ("SELECT CAST(CASE WHEN range = 199999 THEN 'x' ELSE '1' END AS INTEGER) AS v"
           " FROM range(300000)")
    with engine.cursor() as cur:
        with pytest.raises(Exception) as info:
            for _ in engine.stream(cur, sql, 1000):
                pass
    text = engine.describe_error(info.value)
    assert text.startswith("a value has the wrong type: Could not convert"), text
    disk = OSError(28, "No space left on device")
    assert "disk space" in engine.describe_error(disk)


def test_write_arrow_limit_below_an_empty_file(engine: DuckDBEngine) -> None:
    # An empty DuckDB file is larger than 1000 bytes: the watch may stop the write while
    # the file is being set up, or at the first batch; either way it is the byte limit.
    for k in range(20):
        path = engine.tables_dir / f"small{k}.duckdb"
        with pytest.raises(WriteLimitExceeded):
            engine.write_arrow(_batches(10), SCHEMA, path, max_bytes=1000)
        assert not path.exists()
    assert list(engine.temp_dir.iterdir()) == []
