"""TAP_UPLOAD parsing: VOTable (all three serialisations), CSV, Parquet, FITS."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io.votable import from_table, writeto
from astropy.table import MaskedColumn, Table

from taphouse.formats import FormatError, ResultInfo, get_writer, read_upload


def astropy_table() -> Table:
    t = Table()
    t["RA"] = MaskedColumn([10.5, 20.25, 30.0], unit="deg", mask=[False, False, True])
    t["RA"].meta["ucd"] = "pos.eq.ra"
    t["Source ID"] = np.array([1, 2, 3], dtype=np.int64)
    t["name"] = ["a", "bé", "c"]
    t["flag"] = [True, False, True]
    return t


@pytest.mark.parametrize("serialization", ["tabledata", "binary", "binary2"])
def test_votable_uploads(serialization):
    vot = from_table(astropy_table())
    buf = io.BytesIO()
    writeto(vot, buf, tabledata_format=serialization)
    arrow, columns = read_upload(buf.getvalue(), content_type="application/x-votable+xml",
                                 name="t1", max_rows=10)
    assert arrow.column_names == ["ra", "source_id", "name", "flag"]
    assert arrow["ra"].to_pylist() == [10.5, 20.25, None]
    assert arrow["source_id"].to_pylist() == [1, 2, 3]
    assert arrow["name"].to_pylist() == ["a", "bé", "c"]
    assert arrow["flag"].to_pylist() == [True, False, True]
    by = {c.name: c for c in columns}
    assert by["ra"].unit == "deg" and by["ra"].ucd == "pos.eq.ra" and by["ra"].datatype == "double"
    assert by["source_id"].datatype == "long"


def test_csv_upload_from_a_file_object():
    data = io.BytesIO(b"ra,dec,Name\n1.5,2.5,x\n3.5,,y\n")
    arrow, columns = read_upload(data, content_type="text/csv", name="c", max_rows=10)
    assert arrow.column_names == ["ra", "dec", "name"]
    assert arrow["dec"].to_pylist() == [2.5, None]
    assert [c.datatype for c in columns] == ["double", "double", "char"]


def test_our_own_outputs_upload_again():
    import pyarrow as pa

    from taphouse.catalogue.model import ColumnMeta

    batch = pa.record_batch({"x": pa.array([1.0, None]), "s": pa.array(["a", "b"])})
    cols = [ColumnMeta("x", "double", unit="mas", ucd="pos.parallax"), ColumnMeta("s", "char", "*")]
    for fmt in ["votable", "votable/td", "parquet", "fits", "csv"]:
        data = b"".join(get_writer(fmt).write([batch], cols, ResultInfo()))
        arrow, columns = read_upload(data, content_type=None, name="u", max_rows=5)
        assert arrow["x"].to_pylist() == [1.0, None], fmt
        assert arrow["s"].to_pylist() == ["a", "b"], fmt
        if fmt != "csv":
            assert columns[0].unit == "mas" and columns[0].ucd == "pos.parallax", fmt


def test_row_limit_names_the_limit():
    data = b"a\n" + b"".join(b"%d\n" % i for i in range(11))
    with pytest.raises(FormatError, match="upload big has 11 rows; the limit is 10"):
        read_upload(data, content_type="text/csv", name="big", max_rows=10)


def test_names_become_identifiers_and_clashes_are_reported():
    arrow, _ = read_upload(b"1st col,x-y,\n1,2,3\n", content_type="text/csv", name="n",
                           max_rows=5)
    assert arrow.column_names == ["col_1st_col", "x_y", "col3"]
    with pytest.raises(FormatError, match="'X Y' and 'x_y' both become 'x_y'"):
        read_upload(b"X Y,x_y\n1,2\n", content_type="text/csv", name="n", max_rows=5)


def test_garbage_is_a_format_error():
    with pytest.raises(FormatError, match="upload g: cannot read it as votable"):
        read_upload(b"<VOTABLE><oops", content_type=None, name="g", max_rows=5)
    with pytest.raises(FormatError, match="upload p: cannot read it as parquet"):
        read_upload(b"PAR1garbage", content_type=None, name="p", max_rows=5)


def test_uploaded_votable_keeps_frames_and_time_systems():
    # a VOTable with COOSYS and TIMESYS (e.g. a result of this service) uploaded again
    import pyarrow as pa

    from taphouse.catalogue.model import ColumnMeta, CoordSys, TimeSys

    cols = [ColumnMeta("ra", "double", unit="deg", coosys=CoordSys("FK5", "J2000.0", "J2000.0")),
            ColumnMeta("dec", "double", unit="deg", coosys=CoordSys("FK5", "J2000.0", "J2000.0")),
            ColumnMeta("t", "double", unit="d", timesys=TimeSys("TT", "GEOCENTER", "2400000.5")),
            ColumnMeta("n", "int")]
    batch = pa.record_batch({"ra": [1.0], "dec": [2.0], "t": [50000.0],
                             "n": pa.array([1], pa.int32())})
    data = b"".join(get_writer("votable").write([batch], cols, ResultInfo()))
    _, columns = read_upload(data, content_type=None, name="u", max_rows=5)
    by = {c.name: c for c in columns}
    assert by["ra"].coosys == by["dec"].coosys == CoordSys("FK5", "J2000.0", "J2000.0")
    assert by["t"].timesys == TimeSys("TT", "GEOCENTER", "2400000.5")
    assert by["n"].coosys is None and by["n"].timesys is None
