from __future__ import annotations

import io
import math
import subprocess
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pyarrow as pa
import pytest
from astropy.io.votable import parse
from astropy.table import Table
from formats_helpers import batches_then, expected_rows, sample_batch, sample_columns, stilts_csv

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats import ResultInfo, columns_from_schema, get_writer, write_error

NS = "{http://www.ivoa.net/xml/VOTable/v1.3}"
SERIALIZATIONS = ["votable", "votable/b2", "votable/td"]
TAGS = {"votable": "BINARY", "votable/b2": "BINARY2", "votable/td": "TABLEDATA"}

STILTS_EXPECTED = '''\
id,small,mag,ra,flag,name,city,pos,poly
1,1,1.5,10.0,true,a<b&c>,Zürich,"(1.0, 2.0)","(1.0, 2.0, 3.0, 4.0, 5.0, 6.0)"
2,-2,,1.0E300,false,plain,東京,"(3.0, 4.5)",
,3,,-5.5,,,,{pos3},
4,,-0.25,,true,"x,y",,"(5.0, 6.0)",(0.5)
5,32767,1.0E-7,0.1,false,"say ""hi""",Ørsted,"(7.0, 8.0)","(1.0, 2.0)"
'''


def render(fmt: str, batches, columns, info: ResultInfo | None = None) -> bytes:
    return b"".join(get_writer(fmt).write(batches, columns, info or ResultInfo()))


def astropy_rows(data: bytes) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = Table.read(io.BytesIO(data), format="votable")
    rows = []
    for i in range(len(table)):
        row = {}
        for name in table.colnames:
            col = table[name]
            mask = np.ma.getmaskarray(col)[i]
            value = col[i]
            if np.all(mask):
                row[name] = None
                continue
            if isinstance(value, np.ma.MaskedArray | np.ndarray):
                value = [None if (isinstance(v, float) and math.isnan(v)) else v
                         for v in np.ma.filled(np.ma.asarray(value).astype(float), np.nan).tolist()]
                value = [None if v is not None and math.isnan(v) else v for v in value]
            elif isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and math.isnan(value):
                value = None
            row[name] = value
        rows.append(row)
    return rows


def normalised_expected() -> list[dict]:
    rows = expected_rows()
    for r in rows:
        # astropy reads a null string as the empty string
        for k in ("name", "city"):
            r[k] = r[k] or ""
        r["mag"] = None if r["mag"] is None else pytest.approx(r["mag"], rel=1e-6)
    return rows


@pytest.mark.parametrize("fmt", SERIALIZATIONS)
def test_round_trip_through_astropy(fmt):
    data = render(fmt, [sample_batch()], sample_columns())
    got = astropy_rows(data)
    want = normalised_expected()
    for g, w in zip(got, want, strict=True):
        want_pos, got_pos = w.pop("pos"), g.pop("pos")
        if want_pos is None:  # null flag (BINARY2) or NaN NaN (BINARY, TABLEDATA)
            assert got_pos is None
        else:
            assert got_pos == want_pos
        if fmt != "votable/b2" and w["poly"] is None:
            w["poly"] = []  # TABLEDATA and BINARY: one spelling for a null and an empty array
        assert g == w


@pytest.mark.parametrize("fmt", SERIALIZATIONS)
def test_round_trip_through_stilts(fmt, tmp_path):
    path = tmp_path / "r.vot"
    path.write_bytes(render(fmt, [sample_batch()], sample_columns()))
    # A null fixed-size array: BINARY2 carries the null flag, TABLEDATA and BINARY write
    # NaNs (votlint rejects an empty cell there).
    pos3 = "" if fmt == "votable/b2" else '"(NaN, NaN)"'
    assert stilts_csv(path, "votable") == STILTS_EXPECTED.format(pos3=pos3)
    lint = subprocess.run(["stilts", "votlint", str(path)], capture_output=True, text=True)
    assert lint.stdout.strip() == "" and lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("fmt", SERIALIZATIONS)
def test_metadata_and_leading_status(fmt):
    info = ResultInfo(query="SELECT ra FROM t", infos=[("DEST", "mydb.t1")])
    data = render(fmt, [sample_batch()], sample_columns(), info)
    root = ET.fromstring(data)
    resource = root.find(f"{NS}RESOURCE")
    assert root.get("version") == "1.4" and resource.get("type") == "results"
    first = resource[0]
    assert (first.tag, first.get("name"), first.get("value")) == (f"{NS}INFO", "QUERY_STATUS", "OK")
    infos = {i.get("name"): i.get("value") for i in resource.findall(f"{NS}INFO")}
    assert infos["QUERY"] == "SELECT ra FROM t" and infos["DEST"] == "mydb.t1"
    fields = {f.get("name"): f for f in resource.iter(f"{NS}FIELD")}
    assert fields["ra"].get("unit") == "deg" and fields["ra"].get("ucd") == "pos.eq.ra;meta.main"
    assert fields["ra"].find(f"{NS}DESCRIPTION").text == "R.A. <J2000>"
    assert fields["pos"].get("xtype") == "point" and fields["pos"].get("arraysize") == "2"
    assert fields["city"].get("datatype") == "unicodeChar"  # promoted: non-ASCII text
    assert fields["name"].get("datatype") == "char"
    assert info.rows == 5 and info.status == "OK"
    assert resource.find(f"{NS}TABLE/{NS}DATA/{NS}{TAGS[fmt]}") is not None


def trailing_status(data: bytes) -> tuple[str | None, str | None]:
    resource = ET.fromstring(data).find(f"{NS}RESOURCE")
    children = list(resource)
    table_at = [c.tag for c in children].index(f"{NS}TABLE")
    after = [c for c in children[table_at + 1:] if c.get("name") == "QUERY_STATUS"]
    if not after:
        return None, None
    return after[0].get("value"), after[0].text


@pytest.mark.parametrize("fmt", SERIALIZATIONS)
def test_overflow_is_a_trailing_info(fmt):
    batch = sample_batch()
    info = ResultInfo(limit=3)
    data = render(fmt, [batch.slice(0, 2), batch.slice(2, 2), batch.slice(4)],
                  sample_columns(), info)
    assert info.overflow and info.rows == 3
    assert trailing_status(data) == ("OVERFLOW", None)
    assert len(astropy_rows(data)) == 3


@pytest.mark.parametrize("fmt", SERIALIZATIONS)
def test_exact_limit_is_not_overflow(fmt):
    info = ResultInfo(limit=5)
    data = render(fmt, [sample_batch()], sample_columns(), info)
    assert not info.overflow and trailing_status(data) == (None, None)


@pytest.mark.parametrize("fmt", SERIALIZATIONS)
def test_maxrec_zero_gives_metadata_only(fmt):
    info = ResultInfo(limit=0)
    data = render(fmt, [sample_batch()], sample_columns(), info)
    assert info.rows == 0 and info.overflow
    assert len(astropy_rows(data)) == 0
    assert len(list(ET.fromstring(data).iter(f"{NS}FIELD"))) == 9


@pytest.mark.parametrize("fmt", SERIALIZATIONS)
def test_error_mid_stream_ends_the_document(fmt):
    info = ResultInfo()
    batches = batches_then([sample_batch()], RuntimeError("disk on fire"))
    data = render(fmt, batches, sample_columns(), info)
    assert info.error == "disk on fire" and info.status == "ERROR"
    assert trailing_status(data) == ("ERROR", "disk on fire")
    assert len(astropy_rows(data)) == 5  # the rows sent before the failure are intact


@pytest.mark.parametrize("fmt", SERIALIZATIONS)
def test_error_before_first_chunk_propagates(fmt):
    chunks = get_writer(fmt).write(batches_then([], ValueError("bad query")),
                                   sample_columns(), ResultInfo())
    with pytest.raises(ValueError, match="bad query"):
        next(chunks)


@pytest.mark.parametrize("fmt", SERIALIZATIONS)
def test_first_chunk_leaves_before_the_rows_are_exhausted(fmt):
    consumed = []

    def batches():
        for i in range(3):
            consumed.append(i)
            yield sample_batch()

    chunks = get_writer(fmt).write(batches(), sample_columns(), ResultInfo())
    head = next(chunks)
    assert head.startswith(b"<?xml") and consumed == [0]
    assert len(b"".join(chunks)) > 0 and consumed == [0, 1, 2]


def test_binary2_many_batches_cross_base64_chunks():
    # ~2 MB of rows in odd-sized batches: chunk boundaries must not corrupt base64.
    n = 40_000
    batch = pa.record_batch({"x": pa.array(np.arange(n, dtype=np.int64)),
                             "s": pa.array([f"r{i}" for i in range(n)]),
                             "y": pa.array(np.linspace(0, 1, n))})
    columns = [ColumnMeta("x", "long"), ColumnMeta("s", "char", "*"), ColumnMeta("y", "double")]
    slices = [batch.slice(i, 7001) for i in range(0, n, 7001)]
    info = ResultInfo()
    data = render("votable", slices, columns, info)
    table = parse(io.BytesIO(data)).get_first_table().to_table()
    assert info.rows == n and len(table) == n
    assert table["x"].tolist() == list(range(n)) and table["s"][-1] == f"r{n - 1}"
    assert np.allclose(table["y"], np.linspace(0, 1, n))


def test_non_ascii_in_a_later_batch_is_replaced_and_reported():
    columns = [ColumnMeta("s", "char", "*")]
    first = pa.record_batch({"s": pa.array(["ascii"])})
    later = pa.record_batch({"s": pa.array(["naïve"])})
    data = render("votable", [first, later], columns)
    assert astropy_rows(data)[1]["s"] == "na?ve"
    resource = ET.fromstring(data).find(f"{NS}RESOURCE")
    warns = [i.get("value") for i in resource.findall(f"{NS}INFO") if i.get("name") == "WARNING"]
    assert warns and "'s'" in warns[0]


def test_geometry_arrays_round_trip(tmp_path):
    batch = pa.record_batch({
        "c": pa.array([[10.0, 20.0, 0.5], None], pa.list_(pa.float64())),
        "p": pa.array([[1.0, 1.0, 2.0, 1.0, 2.0, 2.0], [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]],
                      pa.list_(pa.float64())),
    })
    columns = [ColumnMeta("c", "double", "3", "circle"), ColumnMeta("p", "double", "*", "polygon")]
    for fmt in SERIALIZATIONS:
        path = tmp_path / "g.vot"
        path.write_bytes(render(fmt, [batch], columns))
        lines = stilts_csv(path, "votable").splitlines()
        assert lines[1] == '"(10.0, 20.0, 0.5)","(1.0, 1.0, 2.0, 1.0, 2.0, 2.0)"'
        assert lines[2].endswith('"(0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0)"')


def test_fixed_arraysize_mismatch_is_an_error():
    good = pa.record_batch({"p": pa.array([[1.0, 2.0]], pa.list_(pa.float64()))})
    bad = pa.record_batch({"p": pa.array([[1.0, 2.0, 3.0]], pa.list_(pa.float64()))})
    info = ResultInfo()
    data = render("votable", [good, bad], [ColumnMeta("p", "double", "2", "point")], info)
    status, message = trailing_status(data)
    assert status == "ERROR" and "arraysize 2" in message and "3 elements" in message
    assert len(astropy_rows(data)) == 1


def test_error_document():
    data = write_error("unknown column 'rx'", query="SELECT rx FROM t", line=1, column=8)
    root = ET.fromstring(data)
    resource = root.find(f"{NS}RESOURCE")
    assert resource.get("type") == "results"
    infos = {i.get("name"): i for i in resource.findall(f"{NS}INFO")}
    assert infos["QUERY_STATUS"].get("value") == "ERROR"
    assert infos["QUERY_STATUS"].text == "unknown column 'rx' (at line 1, column 8)"
    assert infos["ERROR_LINE"].get("value") == "1" and infos["ERROR_COLUMN"].get("value") == "8"
    assert infos["QUERY"].get("value") == "SELECT rx FROM t"
    assert parse(io.BytesIO(data)).resources[0].infos[0].value == "ERROR"


def test_error_document_escapes_anything():
    data = write_error('bad <"&"> \x00 thing')
    text = ET.fromstring(data).find(f"{NS}RESOURCE/{NS}INFO").text
    assert text == 'bad <"&"> \ufffd thing'


def _int_nulls_batch() -> tuple[pa.RecordBatch, list[ColumnMeta]]:
    batch = pa.record_batch({
        "b": pa.array([0, None, 254], pa.uint8()),
        "s": pa.array([None, -32767, 32767], pa.int16()),
        "i": pa.array([-2147483647, None, 2147483647], pa.int32()),
        "l": pa.array([None, 2**63 - 1, -(2**63) + 1], pa.int64()),
        "t": pa.array([True, None, False]),
        "f": pa.array([None, 1.5, float("nan")], pa.float32()),
        "ia": pa.array([[1, None], None, [3, 4]], pa.list_(pa.int32())),
        "s2": pa.array(["x", None, ""], pa.string()),
    })
    columns = columns_from_schema(batch.schema)
    next(c for c in columns if c.name == "ia").arraysize = "2"
    return batch, columns


def test_binary_nulls_round_trip_through_astropy_and_stilts(tmp_path):
    batch, columns = _int_nulls_batch()
    data = render("votable", [batch], columns)
    assert b"<BINARY>" in data and b"<BINARY2>" not in data
    fields = {f.get("name"): f for f in ET.fromstring(data).iter(f"{NS}FIELD")}
    # integer columns (also integer arrays) declare their null value; others do not need one
    assert fields["b"].find(f"{NS}VALUES").get("null") == "255"
    assert fields["s"].find(f"{NS}VALUES").get("null") == "-32768"
    assert fields["i"].find(f"{NS}VALUES").get("null") == "-2147483648"
    assert fields["l"].find(f"{NS}VALUES").get("null") == "-9223372036854775808"
    assert fields["ia"].find(f"{NS}VALUES").get("null") == "-2147483648"
    assert fields["f"].find(f"{NS}VALUES") is None and fields["t"].find(f"{NS}VALUES") is None
    got = astropy_rows(data)
    assert [r["b"] for r in got] == [0, None, 254]
    assert [r["s"] for r in got] == [None, -32767, 32767]
    assert [r["i"] for r in got] == [-2147483647, None, 2147483647]
    assert [r["l"] for r in got] == [None, 2**63 - 1, -(2**63) + 1]
    assert [r["t"] for r in got] == [True, None, False]
    assert [r["f"] for r in got] == [None, 1.5, None]
    assert got[0]["ia"] == [1, None] and got[1]["ia"] is None and got[2]["ia"] == [3, 4]
    assert [r["s2"] for r in got] == ["x", "", ""]
    path = tmp_path / "b.vot"
    path.write_bytes(data)
    lines = stilts_csv(path, "votable").splitlines()
    # (STIL applies VALUES null to scalars only: array elements show the value itself)
    assert lines[1:] == ['0,,-2147483647,,true,,"(1, -2147483648)",x',
                         ',-32767,,9223372036854775807,,1.5,"(-2147483648, -2147483648)",',
                         '254,32767,2147483647,-9223372036854775807,false,,"(3, 4)",']
    lint = subprocess.run(["stilts", "votlint", str(path)], capture_output=True, text=True)
    assert lint.stdout.strip() == "" and lint.returncode == 0, lint.stdout


def test_binary_value_equal_to_the_null_value_is_reported():
    batch = pa.record_batch({"l": pa.array([1, -(2**63)], pa.int64()),
                             "i": pa.array([1, 2], pa.int32())})
    data = render("votable", [batch], columns_from_schema(batch.schema))
    resource = ET.fromstring(data).find(f"{NS}RESOURCE")
    warns = [i.get("value") for i in resource.findall(f"{NS}INFO") if i.get("name") == "WARNING"]
    assert len(warns) == 1 and "'l'" in warns[0] and "votable/b2" in warns[0]
    # BINARY2 has null flags: the same value is no null there, and nothing is reported
    data2 = render("votable/b2", [batch], columns_from_schema(batch.schema))
    assert astropy_rows(data2)[1]["l"] == -(2**63) and b"WARNING" not in data2


@pytest.mark.parametrize("fmt", SERIALIZATIONS)
def test_every_serialization_reads_the_same_in_astropy(fmt):
    batch, columns = _int_nulls_batch()
    reference = astropy_rows(render("votable/b2", [batch], columns))
    got = astropy_rows(render(fmt, [batch], columns))
    for row in got + reference:  # null elements inside integer arrays: only BINARY (VALUES
        del row["ia"]            # null) has them; BINARY2 writes 0, TABLEDATA an empty cell
    assert got == reference


@pytest.mark.parametrize("fmt", ["votable", "votable/b2"])
def test_binary_rows_leave_batch_by_batch(fmt):
    # Each batch holds ~2 MB of fixed-size rows: the encoded rows of the first batches must
    # leave before the last batch is read (the stream once counted a 2-D view's rows as
    # its bytes and held the whole document until the end).
    n = 100_000
    consumed = []

    def batches():
        for i in range(6):
            consumed.append(i)
            yield pa.record_batch({"x": pa.array(np.arange(n, dtype=np.int64) + i * n),
                                   "y": pa.array(np.linspace(0, 1, n))})

    columns = [ColumnMeta("x", "long"), ColumnMeta("y", "double")]
    chunks = get_writer(fmt).write(batches(), columns, ResultInfo())
    next(chunks)  # the header
    data = next(chunks)
    assert len(data) > 1_000_000 and len(consumed) < 6
    rest = b"".join(chunks)
    assert len(consumed) == 6 and rest.endswith(b"</VOTABLE>\n")


@pytest.mark.parametrize("fmt", ["votable", "votable/b2"])
def test_fixed_width_text_longer_than_declared_is_said(fmt):
    # a remote's TAP_SCHEMA may declare arraysize="5" for longer values: the binary
    # serialisations cut them to the width, and the document says so (it was silent)
    columns = [ColumnMeta(name="s", datatype="char", arraysize="5"),
               ColumnMeta(name="u", datatype="unicodeChar", arraysize="3")]
    rows = pa.record_batch({"s": pa.array(["ab", "abcdefg", None]),
                            "u": pa.array(["é", "éé", "abc"])})
    data = b"".join(get_writer(fmt).write(iter([rows]), columns,
                                          ResultInfo(query="q", limit=None)))
    vot = parse(io.BytesIO(data))
    table = vot.get_first_table()
    assert table.array["s"].tolist()[:2] == ["ab", "abcde"]
    texts = [i.value for i in vot.resources[0].infos if i.name == "WARNING"]
    assert any("'s'" in t and "arraysize 5" in t for t in texts), texts
    assert not any("'u'" in t for t in texts)  # its values fit
