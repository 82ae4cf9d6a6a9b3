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


@pytest.mark.parametrize("case", ["hex", "ragged", "cdata", "array"])
def test_what_the_vectorised_reader_does_not_cover_still_reads(case):
    # (numeric arrays of one dimension are read here: test_upload_arrays.py; two are not)
    fields = ('<FIELD name="i" datatype="int"/><FIELD name="p" datatype="double" '
              'arraysize="2x1"/>')
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


def test_cell_tags_that_never_close_take_linear_time():
    import time

    # "<TD<TD<TD...": no ">" anywhere, so a start tag's attributes may not run on to the
    # end of the stream (it was quadratic: these 60 kB took ~30 s, 200 MB would never end)
    doc = (b'<VOTABLE version="1.4"><RESOURCE><TABLE><FIELD name="a" datatype="int"/>'
           b"<DATA><TABLEDATA>" + b"<TD" * 20_000
           + b"</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>")
    start = time.process_time()
    header, serialization, payload = votable_read.split(doc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fields = parse(io.BytesIO(header), verify="ignore").get_first_table().fields
    votable_read.read_rows(fields, serialization, payload)
    assert time.process_time() - start < 5


@pytest.mark.parametrize("fmt", ["votable", "votable/b2"])
def test_variable_size_text_in_binary_streams(fmt):
    # our own results (char/unicodeChar arraysize="*") uploaded again, nulls included
    batch = pa.record_batch({
        "n": pa.array([1, None, 3, 4], pa.int64()),
        "s": pa.array(["a", "", None, "dddd"]),
        "x": pa.array([0.5, None, 2.5, float("nan")]),
        "u": pa.array(["Zürich", "東京", None, "x"]),
        "b": pa.array([True, None, False, True]),
    })
    columns = [ColumnMeta("n", "long"), ColumnMeta("s", "char", "*"),
               ColumnMeta("x", "double"), ColumnMeta("u", "unicodeChar", "*"),
               ColumnMeta("b", "boolean")]
    data = b"".join(get_writer(fmt).write([batch], columns, ResultInfo()))
    assert vectorised_columns(data) is not None
    got, metas = read_upload(data, content_type=None, name="u", max_rows=10)
    want = through_astropy(data)
    for name in ("n", "x", "b"):
        assert got[name].to_pylist() == want[name].to_pylist(), name
    assert got["n"].to_pylist() == [1, None, 3, 4]
    nulls = fmt == "votable/b2"  # BINARY has no null for text: an empty string
    assert got["s"].to_pylist() == ["a", "", None if nulls else "", "dddd"]
    assert got["u"].to_pylist() == ["Zürich", "東京", None if nulls else "", "x"]
    assert [m.datatype for m in metas] == ["long", "char", "double", "unicodeChar", "boolean"]


def test_many_rows_with_text_are_read_column_by_column():
    n = 20_000
    batch = pa.record_batch({"id": pa.array(np.arange(n, dtype=np.int64)),
                             "name": pa.array([f"star {i}" * (i % 3) for i in range(n)]),
                             "ra": pa.array(np.linspace(0, 360, n))})
    columns = [ColumnMeta("id", "long"), ColumnMeta("name", "char", "*"),
               ColumnMeta("ra", "double")]
    data = b"".join(get_writer("votable/b2").write([batch], columns, ResultInfo()))
    got, _ = read_upload(data, content_type=None, name="u", max_rows=n)
    assert got.column("name").to_pylist() == batch.column("name").to_pylist()
    assert np.array_equal(got["ra"].to_numpy(), batch.column("ra").to_numpy())
    with pytest.raises(FormatError, match="upload u has more than 100 rows; the limit is 100"):
        read_upload(data, content_type=None, name="u", max_rows=100)


def test_tabledata_past_the_row_limit_is_refused_before_its_cells_are_read():
    data = document(Table({"n": np.arange(50, dtype=np.int64)}), "tabledata")
    header, serialization, payload = votable_read.split(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fields = parse(io.BytesIO(header), verify="ignore").get_first_table().fields
    with pytest.raises(votable_read.TooManyRows):
        votable_read.read_rows(fields, serialization, payload, max_rows=10)
    with pytest.raises(FormatError, match="upload u has more than 10 rows; the limit is 10"):
        read_upload(data, content_type=None, name="u", max_rows=10)


def test_a_stream_cut_inside_a_row_is_left_to_astropy():
    batch = pa.record_batch({"s": pa.array(["abc", "defgh"]), "n": pa.array([1, 2])})
    columns = [ColumnMeta("s", "char", "*"), ColumnMeta("n", "long")]
    data = b"".join(get_writer("votable/b2").write([batch], columns, ResultInfo()))
    header, _, payload = votable_read.split(data)
    import base64

    cut = base64.b64encode(base64.b64decode(payload)[:-5])
    broken = data.replace(payload, b"\n" + cut + b"\n")
    assert vectorised_columns(broken) is None
    # astropy's verdict stands: it keeps the complete rows
    got, _ = read_upload(broken, content_type=None, name="u", max_rows=10)
    assert got["s"].to_pylist() == ["abc"] and got["n"].to_pylist() == [1]


def _linked(href: bytes, element: bytes = b"BINARY", prefix: bytes = b"") -> bytes:
    p = prefix + b":" if prefix else b""
    ns = b"xmlns:" + prefix if prefix else b"xmlns"
    return (b'<?xml version="1.0"?><' + p + b'VOTABLE version="1.4" ' + ns
            + b'="http://www.ivoa.net/xml/VOTable/v1.3"><' + p + b"RESOURCE><" + p
            + b'TABLE><' + p + b'FIELD name="n" datatype="int"/><' + p + b"DATA><" + p
            + element + b"><" + p + b'STREAM href="' + href + b'"/></' + p + element
            + b"></" + p + b"DATA></" + p + b"TABLE></" + p + b"RESOURCE></" + p
            + b"VOTABLE>")


@pytest.mark.parametrize("case", ["binary", "binary2", "fits", "prefixed", "utf-16",
                                  "second table", "parquet header"])
def test_an_upload_never_makes_the_server_open_a_link(tmp_path, case):
    # astropy opens a STREAM's href itself: file: read the server's files back as rows
    secret = tmp_path / "secret"
    secret.write_bytes(b"\x00\x00\x00\x2a" * 4)
    href = secret.as_uri().encode()
    if case == "binary2":
        doc = _linked(href, b"BINARY2")
    elif case == "fits":
        doc = _linked(href, b"FITS")
    elif case == "prefixed":
        doc = _linked(href, prefix=b"v")
    elif case == "utf-16":
        doc = _linked(href).decode().replace('version="1.0"?>', 'version="1.0" encoding='
                                             '"UTF-16"?>').encode("utf-16-le")
    elif case == "second table":  # the vectorised path parses what is around the 1st DATA
        inline = document(Table({"m": np.arange(2, dtype=np.int32)}), "binary")
        second = _linked(href).split(b"<TABLE>", 1)[1].split(b"</RESOURCE>")[0]
        doc = inline.replace(b"</TABLE>", b"</TABLE><TABLE>" + second, 1)
        assert votable_read.split(doc) is not None
    else:
        doc = _linked(href)
    if case == "parquet header":
        import pyarrow.parquet as pq

        from taphouse.formats.parquet import CONTENT_KEY

        table = pa.table({"n": pa.array([1], pa.int32())}).replace_schema_metadata(
            {CONTENT_KEY: doc})
        buf = io.BytesIO()
        pq.write_table(table, buf)
        doc = buf.getvalue()
    with pytest.raises(FormatError, match="href"):
        got, _ = read_upload(doc, content_type=None, name="u", max_rows=100)
        assert 42 not in got.column(0).to_pylist()


def _two_int_columns(tabledata: bytes, before: bytes = b"") -> bytes:
    return (b'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/'
            b'VOTable/v1.3"><RESOURCE>' + before + b'<TABLE><FIELD name="a" datatype="int"/>'
            b'<FIELD name="b" datatype="int"/><DATA><TABLEDATA>' + tabledata
            + b"</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>")


def test_ragged_rows_are_not_reflowed():
    # 3 cells then 1: as many cells as 2 rows x 2 fields, but no row has two
    doc = _two_int_columns(b"<TR><TD>1</TD><TD>2</TD><TD>3</TD></TR><TR><TD>4</TD></TR>")
    assert vectorised_columns(doc) is None
    with pytest.raises(FormatError, match="more columns"):
        read_upload(doc, content_type=None, name="u", max_rows=10)
    fine = _two_int_columns(b'<TR><TD>1</TD><TD>2</TD></TR><TR id="x"><TD>3</TD><TD/></TR>')
    assert [c.to_pylist() for c in vectorised_columns(fine)] == [[1, 3], [2, None]]


@pytest.mark.parametrize("hiding", [
    b"<!-- <TABLE><DATA><TABLEDATA><TR><TD>666</TD><TD>666</TD></TR></TABLEDATA></DATA> -->",
    b"<DESCRIPTION><![CDATA[<TABLE><DATA><TABLEDATA><TR><TD>666</TD><TD>666</TD></TR>"
    b"</TABLEDATA></DATA>]]></DESCRIPTION>",
    b"<?note <TABLE><DATA><TABLEDATA><TR><TD>666</TD><TD>666</TD></TR></TABLEDATA></DATA>?>",
])
def test_a_table_inside_a_comment_is_not_the_table_read(hiding):
    doc = _two_int_columns(b"<TR><TD>1</TD><TD>2</TD></TR>", before=hiding)
    got, _ = read_upload(doc, content_type=None, name="u", max_rows=10)
    assert got.to_pylist() == [{"a": 1, "b": 2}]


def test_a_parquet_upload_past_the_row_limit_is_refused_before_its_rows_are_read(tmp_path):
    # a few kB of Parquet (one repeated value) can stand for millions of rows: the row
    # count of its footer is checked before anything is decoded
    import subprocess
    import sys

    import pyarrow.parquet as pq

    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"n": pa.repeat(pa.scalar(7, pa.int64()), 20_000_000)}), path)
    assert path.stat().st_size < 1_000_000
    probe = (
        "import sys, pyarrow as pa\n"
        "from taphouse.formats import FormatError, read_upload\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "try:\n"
        "    read_upload(data, content_type=None, name='u', max_rows=1000)\n"
        "except FormatError as e:\n"
        "    print(e)\n"
        "print(pa.default_memory_pool().max_memory())\n")
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[0] == "upload u has more than 1000 rows; the limit is 1000"
    assert int(out[1]) < 20_000_000  # the 160 MB of values were never made


def test_entities_declared_in_the_document_are_expanded_as_astropy_does():
    doc = (b'<?xml version="1.0"?><!DOCTYPE VOTABLE [<!ENTITY star "Vega">]><VOTABLE version='
           b'"1.4"><RESOURCE><TABLE><FIELD name="s" datatype="char" arraysize="*"/><DATA>'
           b"<TABLEDATA><TR><TD>&star;</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE>"
           b"</VOTABLE>")
    got, _ = read_upload(doc, content_type=None, name="u", max_rows=10)
    assert got["s"].to_pylist() == ["Vega"]


def test_variable_size_text_is_gathered_in_bounded_memory():
    # the cells' bytes were gathered through an index of 8 bytes per text byte (plus an
    # arange and a repeat as large): 15x the document at peak, ~3 GB for a 200 MB upload
    import tracemalloc

    n = 50_000
    batch = pa.record_batch({"s": pa.array([f"{i:08d}" * 12 for i in range(n)])})
    data = b"".join(get_writer("votable/b2").write([batch], [ColumnMeta("s", "char", "*")],
                                                   ResultInfo()))
    tracemalloc.start()
    try:
        got, _ = read_upload(data, content_type=None, name="u", max_rows=n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got["s"].to_pylist() == batch.column("s").to_pylist()
    assert peak < 8 * len(data), peak / len(data)


@pytest.mark.parametrize("serialization", ["BINARY", "BINARY2"])
def test_a_stream_left_to_astropy_is_refused_past_the_row_limit_before_it_is_read(
        serialization):
    # numeric arrays are read by astropy, one Python step a row (~13 us): 300,000 rows
    # took 4 s to be refused, a 200 MB upload minutes
    import base64
    import time

    def doc(n: int) -> bytes:
        tag = serialization.encode()
        row = 17 + (serialization == "BINARY2")  # 2 doubles, 3 bits in a byte, flags
        return (b'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/'
                b'xml/VOTable/v1.3"><RESOURCE><TABLE><FIELD name="p" datatype="double"'
                b' arraysize="2"/><FIELD name="b" datatype="bit" arraysize="3"/><DATA><'
                + tag + b'><STREAM encoding="base64">' + base64.b64encode(b"\x00" * row * n)
                + b"</STREAM></" + tag + b"></DATA></TABLE></RESOURCE></VOTABLE>")

    start = time.process_time()
    with pytest.raises(FormatError, match="upload u has more than 1000 rows"):
        read_upload(doc(300_000), content_type=None, name="u", max_rows=1000)
    assert time.process_time() - start < 1.5
    got, _ = read_upload(doc(1000), content_type=None, name="u", max_rows=1000)
    assert got.num_rows == 1000 and got["p"].to_pylist()[0] == [0.0, 0.0]


def test_the_link_check_does_not_walk_a_document_without_href():
    import time

    from taphouse.formats.upload import refuse_stream_links

    doc = (b'<?xml version="1.0"?><VOTABLE><RESOURCE><TABLE><FIELD name="a" datatype="int"/>'
           b"<DATA><TABLEDATA>" + b"<TR><TD>1</TD></TR>" * 1_000_000
           + b"</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>")
    start = time.process_time()
    refuse_stream_links(doc)
    assert time.process_time() - start < 0.5  # (walked: 1.5-4 s)
    for linked in (_linked(b"http://127.0.0.1:9/x"),
                   _linked(b"http://127.0.0.1:9/x").decode().encode("utf-16-le")):
        with pytest.raises(FormatError, match="href"):
            refuse_stream_links(linked)


@pytest.mark.parametrize("cells,message", [
    (b"<TD>300</TD><TD>1</TD>", "Value '300' is out of range for a 8-bit unsigned integer"),
    (b"<TD>-1</TD><TD>1</TD>", "Value '-1' is out of range for a 8-bit unsigned integer"),
    (b"<TD>1</TD><TD>99999999999999999999999</TD>", "Value .* is out of range for a 64-bit"),
])
def test_an_integer_out_of_its_range_is_an_error_not_clamped(cells, message):
    doc = (b'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/'
           b'VOTable/v1.3"><RESOURCE><TABLE><FIELD name="b" datatype="unsignedByte"/>'
           b'<FIELD name="n" datatype="long"/><DATA><TABLEDATA><TR><TD>7</TD><TD>7</TD></TR>'
           b"<TR>" + cells + b"</TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>")
    with pytest.raises(FormatError, match=f"upload u: .*line 1: {message}"):
        read_upload(doc, content_type=None, name="u", max_rows=10)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le"])
@pytest.mark.parametrize("content_type", [None, "application/octet-stream"])
def test_a_votable_with_a_byte_order_mark_is_read_as_a_votable(encoding, content_type):
    # with a UTF-8 BOM first, the XML was read as CSV: 22 rows of its lines
    text = document(Table({"n": np.arange(3, dtype=np.int32)}), "tabledata").decode()
    if encoding != "utf-8-sig":
        text = text.replace('encoding="utf-8"', 'encoding="UTF-16"')
    got, _ = read_upload(text.encode(encoding), content_type=content_type, name="u",
                         max_rows=100)
    assert got.to_pylist() == [{"n": 0}, {"n": 1}, {"n": 2}]
