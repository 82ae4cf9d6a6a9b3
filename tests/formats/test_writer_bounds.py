"""Byte bounds of the writers: slices of at most BATCH_BYTES whatever the row width, and
a cap on the whole document ending it with the format's overflow signal or an error."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io.votable import parse

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats import ResultInfo, get_writer
from taphouse.formats.errors import ResultTooLarge
from taphouse.formats.result import byte_slices, limit_batches


def _batches(rows: int = 20_000, width: int = 100, per_batch: int = 5000) -> list:
    out = []
    for start in range(0, rows, per_batch):
        n = min(per_batch, rows - start)
        out.append(pa.record_batch({
            "id": pa.array(range(start, start + n), pa.int64()),
            "s": pa.array([f"{i:0{width}d}" for i in range(start, start + n)])}))
    return out


COLUMNS = [ColumnMeta(name="id", datatype="long"),
           ColumnMeta(name="s", datatype="char", arraysize="*")]


def _write(fmt: str, batches: list, max_bytes: int | None) -> tuple[bytes, ResultInfo]:
    info = ResultInfo(query="SELECT id, s FROM t", limit=None, max_bytes=max_bytes)
    data = b"".join(get_writer(fmt).write(iter(batches), COLUMNS, info))
    return data, info


def test_byte_slices_bound_each_slice_whatever_the_row_width():
    sizes = ["x" * 10] * 1000 + ["y" * 1_000_000] + ["z" * 10] * 1000
    batch = pa.record_batch({"id": pa.array(range(len(sizes)), pa.int64()),
                             "s": pa.array(sizes)})
    slices = list(byte_slices(batch, 4096))
    assert sum(s.num_rows for s in slices) == batch.num_rows
    assert pa.concat_batches(slices).equals(batch)  # in order, nothing lost
    for s in slices:
        assert s.num_rows == 1 or s.nbytes <= 4096 + 64
    assert any(s.num_rows == 1 and s.nbytes > 1_000_000 for s in slices)
    # limit_batches hands writers the same slices and still counts every row.
    info = ResultInfo(limit=None)
    assert sum(b.num_rows for b in limit_batches(iter([batch]), info, 4096)) == 2001
    assert info.rows == 2001


@pytest.mark.parametrize("fmt", ["votable", "votable/td"])
def test_votable_ends_with_overflow_at_the_size_cap(fmt):
    data, info = _write(fmt, _batches(), 200_000)
    assert len(data) <= 200_000
    assert info.overflow and info.size_limited and 0 < info.rows < 20_000
    vot = parse(io.BytesIO(data))
    table = vot.get_first_table().to_table()
    assert len(table) == info.rows
    assert list(table["id"][:3]) == [0, 1, 2]
    infos = {i.name: i for i in vot.resources[0].infos}
    statuses = [i.value for i in vot.resources[0].infos if i.name == "QUERY_STATUS"]
    assert statuses[-1] == "OVERFLOW"
    assert "size limit" in infos["WARNING"].value
    # Without a cap (or a large one) the same rows are all there and OK.
    data, info = _write(fmt, _batches(), None)
    assert info.rows == 20_000 and not info.overflow


def test_json_says_overflow_at_the_size_cap():
    data, info = _write("json", _batches(), 200_000)
    assert len(data) <= 200_000
    doc = json.loads(data)
    assert doc["status"] == "OVERFLOW" and doc["overflow"] is True
    assert doc["rows"] == len(doc["data"]) == info.rows > 0
    assert "size limit" in doc["warning"]


def test_parquet_says_overflow_at_the_size_cap():
    data, info = _write("parquet", _batches(rows=200_000, per_batch=20_000), 2_000_000)
    assert len(data) <= 2_000_000
    f = pq.ParquetFile(io.BytesIO(data))
    assert f.metadata.num_rows == info.rows > 0
    meta = f.metadata.metadata
    assert meta[b"taphouse.query_status"] == b"OVERFLOW"
    assert b"size limit" in meta[b"IVOA.VOTable-Parquet.content"]


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_csv_and_tsv_raise_when_the_cap_is_reached(fmt):
    sent = 0
    with pytest.raises(ResultTooLarge, match="larger than the limit of 200000 bytes"):
        info = ResultInfo(limit=None, max_bytes=200_000)
        for chunk in get_writer(fmt).write(iter(_batches()), COLUMNS, info):
            sent += len(chunk)
    assert 0 < sent <= 200_000
    assert "larger than the limit" in info.error


def test_fits_raises_before_the_first_byte():
    info = ResultInfo(limit=None, max_bytes=200_000)
    chunks = get_writer("fits").write(iter(_batches()), COLUMNS, info)
    with pytest.raises(ResultTooLarge):
        next(chunks)
    # A result within the cap is written as usual.
    data, info = _write("fits", _batches(rows=100), 200_000)
    assert data.startswith(b"SIMPLE") and info.rows == 100


@pytest.mark.parametrize("fmt", ["votable", "votable/td", "csv", "json", "parquet"])
def test_wide_rows_are_encoded_in_bounded_slices(fmt):
    # 300 rows of 99 kB in one batch (30 MB): no chunk may hold the whole batch encoded.
    wide = pa.record_batch({"id": pa.array(range(300), pa.int64()),
                            "s": pa.array(["w" * 99_000] * 300)})
    info = ResultInfo(limit=None)
    chunks = list(get_writer(fmt).write(iter([wide]), COLUMNS, info))
    assert info.rows == 300
    assert max(len(c) for c in chunks) < 12 * 1024 * 1024
    if fmt != "parquet":  # (Parquet compresses the repeated value away)
        assert sum(len(c) for c in chunks) > 300 * 99_000
