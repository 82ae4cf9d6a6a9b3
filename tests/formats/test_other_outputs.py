"""CSV, TSV, JSON, Parquet and FITS writers."""

from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from formats_helpers import batches_then, expected_rows, sample_batch, sample_columns, stilts_csv

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats import ResultInfo, get_writer
from taphouse.formats.parquet import CONTENT_KEY, STATUS_KEY, VERSION_KEY


def render(fmt, batches, columns, info=None) -> bytes:
    return b"".join(get_writer(fmt).write(batches, columns, info or ResultInfo()))


def test_csv_is_rfc4180_and_reads_back_in_pyarrow_and_astropy():
    data = render("csv", [sample_batch()], sample_columns())
    lines = data.split(b"\r\n")
    assert lines[0] == b"id,small,mag,ra,flag,name,city,pos,poly"
    assert lines[1].decode() == "1,1,1.5,10,true,a<b&c>,Zürich,1 2,1 2 3 4 5 6"
    assert lines[2].decode() == "2,-2,NaN,1e+300,false,plain,東京,3 4.5,"
    assert b',"x,y",' in lines[4] and b'"say ""hi"""' in lines[5]
    table = pacsv.read_csv(io.BytesIO(data))
    assert table["id"].to_pylist() == [1, 2, None, 4, 5]
    assert table["flag"].to_pylist() == [True, False, None, True, False]
    assert table["name"].to_pylist()[4] == 'say "hi"'
    assert table["city"].to_pylist()[:2] == ["Zürich", "東京"]
    assert table["poly"].to_pylist()[0] == "1 2 3 4 5 6"
    ast = Table.read(data.decode(), format="ascii.csv")
    assert ast["ra"][1] == 1e300 and bool(np.ma.getmaskarray(ast["ra"])[3])
    assert ast["name"][3] == "x,y"


def test_tsv_reads_back():
    batch = pa.record_batch({"s": pa.array(["a\tb", "c\nd", None]), "x": pa.array([1.5, None, 3.0])})
    data = render("tsv", [batch], [ColumnMeta("s", "char", "*"), ColumnMeta("x", "double")])
    assert data == b"s\tx\na b\t1.5\nc d\t\n\t3\n"
    table = pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(delimiter="\t"))
    assert table["x"].to_pylist() == [1.5, None, 3.0]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
def test_error_mid_stream_is_re_raised(fmt):
    info = ResultInfo()
    chunks = get_writer(fmt).write(batches_then([sample_batch()], RuntimeError("boom")),
                                   sample_columns(), info)
    with pytest.raises(RuntimeError, match="boom"):
        for _ in chunks:
            pass
    assert info.error == "boom"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "parquet"])
def test_first_chunk_before_rows_are_exhausted(fmt):
    consumed = []

    def batches():
        for i in range(3):
            consumed.append(i)
            yield sample_batch()

    chunks = get_writer(fmt).write(batches(), sample_columns(), ResultInfo())
    assert next(chunks) and len(consumed) == 1
    assert b"".join(chunks) and len(consumed) == 3


def test_json_document():
    info = ResultInfo(query="SELECT 1", limit=4, infos=[("DEST", "mydb.t")])
    doc = json.loads(render("json", [sample_batch()], sample_columns(), info))
    assert doc["status"] == "OVERFLOW" and doc["overflow"] is True and doc["rows"] == 4
    assert doc["query"] == "SELECT 1" and doc["infos"] == {"DEST": "mydb.t"}
    meta = {m["name"]: m for m in doc["metadata"]}
    assert meta["ra"]["unit"] == "deg" and meta["pos"]["xtype"] == "point"
    want = expected_rows()[:4]
    for got, w in zip(doc["data"], want, strict=True):
        row = dict(zip(meta, got, strict=True))
        row["mag"] = None if row["mag"] is None else pytest.approx(row["mag"])
        w["mag"] = None if w["mag"] is None else pytest.approx(w["mag"])
        assert row == w


def test_json_error_mid_stream_and_control_characters():
    batch = pa.record_batch({"s": pa.array(["tab\there \x01 \"q\" \\"])})
    info = ResultInfo()
    doc = json.loads(render("json", batches_then([batch], RuntimeError("late")),
                            [ColumnMeta("s", "char", "*")], info))
    assert doc["data"] == [["tab\there \x01 \"q\" \\"]]
    assert doc["status"] == "ERROR" and doc["error"] == "late"


def test_json_maxrec_zero():
    doc = json.loads(render("json", [sample_batch()], sample_columns(), ResultInfo(limit=0)))
    assert doc["data"] == [] and doc["overflow"] is True and len(doc["metadata"]) == 9


def test_parquet_round_trip_with_vo_metadata(tmp_path):
    info = ResultInfo(query="SELECT *", limit=4)
    data = render("parquet", [sample_batch().slice(0, 2), sample_batch().slice(2)],
                  sample_columns(), info)
    source = pq.ParquetFile(io.BytesIO(data))
    assert source.metadata.num_row_groups == 2
    table = source.read()
    assert table.to_pylist() == sample_batch().slice(0, 4).to_pylist() or \
        _same_with_nan(table.to_pylist(), sample_batch().slice(0, 4).to_pylist())
    kv = source.metadata.metadata
    assert kv[VERSION_KEY.encode()] == b"1.0" and kv[STATUS_KEY.encode()] == b"OVERFLOW"
    content = kv[CONTENT_KEY.encode()].decode()
    assert 'unit="deg"' in content and 'value="OVERFLOW"' in content and "<DATA" not in content
    # astropy's VO-Parquet reader, on numbers without nulls (astropy 8 cannot merge
    # nulls or variable-length strings with the metadata table)
    clean = pa.record_batch({"ra": pa.array([1.0, 2.0]), "n": pa.array([3, 4], pa.int32())})
    cols = [ColumnMeta("ra", "double", unit="deg", ucd="pos.eq.ra"), ColumnMeta("n", "int")]
    path = tmp_path / "r.parquet"
    path.write_bytes(render("parquet", [clean], cols))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ast = Table.read(path, format="parquet.votable")
    assert str(ast["ra"].unit) == "deg" and ast["ra"].tolist() == [1.0, 2.0]
    assert ast["n"].tolist() == [3, 4] and ast["ra"].meta.get("ucd", "pos.eq.ra") == "pos.eq.ra"


def _same_with_nan(a, b):
    def norm(rows):
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in rows]
    return norm(a) == norm(b)


def test_fits_round_trip_astropy_and_stilts(tmp_path):
    info = ResultInfo(limit=4, query="SELECT *")
    data = render("fits", [sample_batch()], sample_columns(), info)
    assert len(data) % 2880 == 0
    path = tmp_path / "r.fits"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = Table.read(path)
    assert len(table) == 4 and str(table["ra"].unit) == "deg"
    assert table.meta["TUCD4"] == "pos.eq.ra;meta.main" and table.meta["QSTATUS"] == "OVERFLOW"
    assert table["id"].tolist()[:2] == [1, 2] and bool(table["id"].mask[2])
    assert table["pos"][1].tolist() == [3.0, 4.5]
    assert list(table["poly"][0]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] and len(table["poly"][1]) == 0
    lines = stilts_csv(path, "fits").splitlines()
    assert lines[0] == "id,small,mag,ra,flag,name,city,pos,poly"
    assert lines[1].startswith('1,1,1.5,10.0,true,a<b&c>,') and lines[1].endswith(
        '"(1.0, 2.0)","(1.0, 2.0, 3.0, 4.0, 5.0, 6.0)"')
    assert lines[3].startswith(",3,,-5.5,,,")


def test_fits_error_raises_before_any_byte():
    chunks = get_writer("fits").write(batches_then([sample_batch()], RuntimeError("x")),
                                      sample_columns(), ResultInfo())
    with pytest.raises(RuntimeError):
        next(chunks)
