"""The vectorised VOTable upload reader (formats/votable_read.py) against astropy's own
parser: same rows, same nulls, same metadata; documents it does not cover still read
(through astropy)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pyarrow as pa
import pytest
from astropy.io.votable import parse
from astropy.table import MaskedColumn, Table

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats import FormatError, ResultInfo, get_writer, read_upload, votable_read
from taphouse.formats.upload import _from_astropy

SERIALIZATIONS = ["tabledata", "binary", "binary2"]


def sample(n: int = 50) -> Table:
    rng = np.random.default_rng(5)
    t = Table()
    t["id"] = np.arange(n, dtype=np.int64) * 7 - 100
    t["small"] = rng.integers(-30000, 30000, n).astype(np.int16)
    t["ra"] = MaskedColumn(rng.uniform(0, 360, n), mask=rng.random(n) < 0.2, unit="deg")
    t["ra"].meta["ucd"] = "pos.eq.ra;meta.main"
    t["ra"].description = "right ascension <ICRS> & more"
    t["dec"] = rng.uniform(-90, 90, n)
    t["dec"][3] = np.inf
    t["dec"][4] = -np.inf
    t["mag"] = rng.uniform(3, 21, n).astype(np.float32)
    t["flag"] = rng.random(n) < 0.5
    t["u8"] = rng.integers(0, 255, n).astype(np.uint8)
    return t


def document(table: Table, serialization: str) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table.write(buf, format="votable", tabledata_format=serialization)
    return buf.getvalue()


def through_astropy(data: bytes) -> pa.Table:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = parse(io.BytesIO(data), verify="ignore").get_first_table().to_table(
            use_names_over_ids=True)
    return _from_astropy(table)[0]


def vectorised_columns(data: bytes) -> list[pa.Array] | None:
    header, serialization, payload = votable_read.split(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fields = parse(io.BytesIO(header), verify="ignore").get_first_table().fields
    return votable_read.read_rows(fields, serialization, payload)


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_same_rows_as_astropy(serialization):
    data = document(sample(), serialization)
    assert vectorised_columns(data) is not None  # the vectorised path is the one taken
    got, columns = read_upload(data, content_type=None, name="u", max_rows=1000)
    want = through_astropy(data)
    for name in want.column_names:
        g, w = got[name].to_pylist(), want[name].to_pylist()
        assert g == w, (serialization, name)
    by = {c.name: c for c in columns}
    assert by["ra"].unit == "deg" and by["ra"].ucd == "pos.eq.ra;meta.main"
    assert by["ra"].description == "right ascension <ICRS> & more"
    assert [by[n].datatype for n in ("id", "small", "ra", "mag", "flag", "u8")] == [
        "long", "short", "double", "float", "boolean", "unsignedByte"]


@pytest.mark.parametrize("serialization", ["binary", "binary2"])
def test_fixed_size_text_in_binary_streams(serialization):
    t = Table({"name": np.array(["a", "bé", "", "東京x"]), "code": np.array([b"ab", b"c", b"", b"xyz"]),
               "n": np.arange(4, dtype=np.int32)})
    data = document(t, serialization)
    fields = parse(io.BytesIO(votable_read.split(data)[0])).get_first_table().fields
    assert {f.datatype for f in fields} >= {"unicodeChar", "char"}
    assert vectorised_columns(data) is not None
    got, _ = read_upload(data, content_type=None, name="u", max_rows=10)
    assert got["name"].to_pylist() == ["a", "bé", "", "東京x"]
    assert got["code"].to_pylist() == ["ab", "c", "", "xyz"]
    assert got["n"].to_pylist() == [0, 1, 2, 3]


def test_tabledata_spellings():
    doc = b"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
<FIELD name="i" datatype="int"><VALUES null="-1"/></FIELD>
<FIELD name="x" datatype="double"/>
<FIELD name="b" datatype="boolean"/>
<FIELD name="s" datatype="char" arraysize="*"/>
<DATA><TABLEDATA>
<TR><TD> 5 </TD><TD>+Inf</TD><TD>T</TD><TD>a &amp; b &lt;c&gt; &#233;</TD></TR>
<TR><TD>-1</TD><TD>-Inf</TD><TD>false</TD><TD/></TR>
<TR ID="r3"><TD></TD><TD>NaN</TD><TD>?</TD><TD>  spaced  </TD></TR>
<TR><TD>+7</TD><TD>1e-300</TD><TD>1</TD><TD>x</TD></TR>
</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"""
    assert vectorised_columns(doc) is not None
    got, _ = read_upload(doc, content_type=None, name="u", max_rows=10)
    assert got["i"].to_pylist() == [5, None, None, 7]
    assert got["x"].to_pylist() == [float("inf"), float("-inf"), None, 1e-300]
    assert got["b"].to_pylist() == [True, False, None, True]
    assert got["s"].to_pylist() == ["a & b <c> é", None, "  spaced  ", "x"]


@pytest.mark.parametrize("case", ["hex", "ragged", "cdata", "array", "variable-binary"])
def test_what_the_vectorised_reader_does_not_cover_still_reads(case):
    if case == "variable-binary":
        batch = pa.record_batch({"s": ["a", "bb", "ccc"], "n": [1, 2, 3]})
        data = b"".join(get_writer("votable/b2").write(
            [batch], [ColumnMeta("s", "char", "*"), ColumnMeta("n", "long")], ResultInfo()))
        assert vectorised_columns(data) is None
        got, _ = read_upload(data, content_type=None, name="u", max_rows=10)
        assert got["s"].to_pylist() == ["a", "bb", "ccc"] and got["n"].to_pylist() == [1, 2, 3]
        return
    fields = ('<FIELD name="i" datatype="int"/><FIELD name="p" datatype="double" '
              'arraysize="2"/>')
    rows = {"hex": "<TR><TD>0x10</TD><TD>1 2</TD></TR>",
            "ragged": "<TR><TD>16</TD><TD>1 2</TD></TR><TR><TD>3</TD></TR>",
            "cdata": "<TR><TD><![CDATA[16]]></TD><TD>1 2</TD></TR>",
            "array": "<TR><TD>16</TD><TD>1 2</TD></TR>"}[case]
    doc = (f'<VOTABLE version="1.4"><RESOURCE><TABLE>{fields}<DATA><TABLEDATA>{rows}'
           "</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>").encode()
    assert vectorised_columns(doc) is None
    if case == "ragged":  # astropy's verdict stands
        with pytest.raises(FormatError, match="upload u: .*fewer columns"):
            read_upload(doc, content_type=None, name="u", max_rows=10)
        return
    got, _ = read_upload(doc, content_type=None, name="u", max_rows=10)
    assert got["i"].to_pylist()[0] == 16
    assert got["p"].to_pylist()[0] == [1.0, 2.0]


def test_broken_binary_stream_is_a_clear_error():
    data = document(Table({"n": np.arange(3, dtype=np.int64)}), "binary")
    broken = data.replace(b"</STREAM>", b"AAA</STREAM>")
    with pytest.raises(FormatError, match="upload u"):
        read_upload(broken, content_type=None, name="u", max_rows=10)


def test_large_tabledata_upload_is_read_vectorised():
    n = 100_000
    rng = np.random.default_rng(1)
    t = Table({"id": np.arange(n, dtype=np.int64), "ra": rng.uniform(0, 360, n),
               "dec": rng.uniform(-90, 90, n)})
    data = document(t, "tabledata")
    got, _ = read_upload(data, content_type=None, name="u", max_rows=n)
    assert got.num_rows == n
    assert np.array_equal(got["id"].to_numpy(), t["id"])
    assert np.array_equal(got["ra"].to_numpy(), t["ra"])


def test_hostile_tabledata_takes_linear_time():
    import time

    # 200,000 cells that never close: a lazy ".*?" would rescan to the end for each one
    doc = (b'<VOTABLE version="1.4"><RESOURCE><TABLE><FIELD name="s" datatype="char" '
           b'arraysize="*"/><DATA><TABLEDATA><TR>' + b"<TD>x" * 200_000
           + b"</TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>")
    start = time.process_time()
    assert vectorised_columns(doc) is None
    assert time.process_time() - start < 5
