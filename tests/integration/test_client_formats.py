"""The client's result format (VO-Parquet when pyarrow is there, for every output) against
what stock pyvo reads from the service's VOTable: same rows, same nulls, and units, UCDs
and descriptions in each output type."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import pyvo
from astropy import units as u

from taphouse.client import MaxrecWarning
from taphouse.client.output import result_format

# Hipparcos and Gaia rows around Mirfak: hip NULL for Gaia rows, BP/RP NULL for Hipparcos.
QUERY = ("SELECT source_id, ra, dec, phot_g_mean_mag, phot_bp_mean_mag, from_hipparcos, hip"
         " FROM gaia.dr3_bright WHERE 1 = CONTAINS(POINT('ICRS', ra, dec),"
         " CIRCLE('ICRS', 51.081, 49.861, 0.3)) ORDER BY source_id")


@pytest.fixture(scope="module")
def reference(demo_server):
    return pyvo.dal.TAPService(demo_server.tap).run_sync(QUERY)


def test_the_client_asks_for_parquet():
    assert result_format("astropy") == result_format("pandas") == "parquet"


def test_astropy_output_matches_pyvo_with_nulls_units_ucds_descriptions(client, reference):
    want = reference.to_table()
    fields = {f.name: f for f in reference.resultstable.fields}
    got = client.query(QUERY)
    assert got.colnames == want.colnames and len(got) == len(want) > 5
    assert np.ma.getmaskarray(want["hip"]).any() and not np.ma.getmaskarray(want["hip"]).all()
    for name in want.colnames:
        g, w = got[name], want[name]
        assert np.array_equal(np.ma.getmaskarray(g), np.ma.getmaskarray(w)), name
        keep = ~np.ma.getmaskarray(w)
        assert np.array_equal(np.asarray(g)[keep], np.asarray(w)[keep]), name
        assert g.unit == w.unit, name
        assert g.meta.get("ucd") == fields[name].ucd, name
        assert (g.description or None) == (fields[name].description or None), name
    assert got["ra"].unit == u.deg and got["ra"].meta["ucd"] == "pos.eq.ra;meta.main"
    assert got["ra"].description
    assert got.meta["job_id"] and "dr3_bright" in got.meta["query"]


def test_pandas_and_pyarrow_outputs_carry_the_column_metadata(client, reference):
    fields = {f.name: f for f in reference.resultstable.fields}
    frame = client.query(QUERY, output="pandas")
    assert frame.attrs["job_id"]
    columns = frame.attrs["columns"]
    assert columns["ra"]["unit"] == "deg" and columns["ra"]["ucd"] == fields["ra"].ucd
    assert columns["ra"]["description"] == fields["ra"].description
    assert frame["hip"].isna().any() and not frame["hip"].isna().all()
    table = client.query(QUERY, output="pyarrow")
    ra = table.schema.field("ra").metadata
    assert ra[b"unit"] == b"deg" and ra[b"ucd"] == fields["ra"].ucd.encode()
    assert table.schema.metadata[b"job_id"]
    assert table.column("hip").null_count == int(np.ma.getmaskarray(
        reference.to_table()["hip"]).sum())


def test_overflow_is_warned_from_parquet_results(client):
    with pytest.warns(MaxrecWarning, match="MAXREC=4 was hit"):
        t = client.query("SELECT hip FROM hipparcos.hip2", maxrec=4, output="pyarrow")
    assert t.num_rows == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaxrecWarning)
        client.query("SELECT TOP 4 hip FROM hipparcos.hip2", maxrec=4, output="pandas")


def test_uploaded_tables_travel_as_parquet_and_keep_their_metadata(client):
    from astropy.table import MaskedColumn, Table

    from taphouse.client.output import upload_format
    from taphouse.client.tap import _upload_content

    assert upload_format() == "parquet"
    t = Table()
    t["ra"] = MaskedColumn([10.5, 20.25, 30.0], mask=[False, True, False], unit="deg")
    t["ra"].meta["ucd"] = "pos.eq.ra"
    t["ra"].description = "where it is"
    t["name"] = np.array(["a", "bé", "東京"], dtype=object)
    t["n"] = np.array([1, 2, 3], dtype=np.int16)
    assert _upload_content(t).read(4) == b"PAR1"
    got = client.query("SELECT * FROM TAP_UPLOAD.mine ORDER BY n", uploads={"mine": t})
    assert list(got["name"]) == ["a", "bé", "東京"] and list(got["n"]) == [1, 2, 3]
    assert list(np.ma.getmaskarray(got["ra"])) == [False, True, False]
    assert got["ra"][0] == 10.5 and got["ra"].unit == u.deg
    assert got["ra"].meta.get("ucd") == "pos.eq.ra" and got["ra"].description == "where it is"
    # a DataFrame and a Parquet file too
    frame = t.to_pandas()
    assert client.query("SELECT COUNT(*) AS c FROM TAP_UPLOAD.df",
                        uploads={"df": frame})["c"][0] == 3


def test_a_parquet_file_is_uploaded_as_it_is(client, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taphouse.client.tap import _upload_content

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1.5, None, 3.0]}), path)
    assert _upload_content(path).read() == path.read_bytes()
    got = client.query("SELECT COUNT(x) AS c FROM TAP_UPLOAD.f", uploads={"f": path})
    assert got["c"][0] == 2


def test_user_tables_are_stored_from_parquet_with_their_metadata(client):
    from astropy.table import MaskedColumn, Table

    t = Table()
    t["ra"] = MaskedColumn([1.25, 2.5, 3.75], mask=[False, False, True], unit="deg")
    t["ra"].meta["ucd"] = "pos.eq.ra"
    t["ra"].description = "stored from Parquet"
    t["name"] = np.array(["x", "ÿ", "z"], dtype=object)
    from taphouse.client.userspace import _payload

    assert _payload(t, None)[1] == "parquet"
    client.mydb.upload("fromparquet", t)
    got = client.mydb.download("fromparquet")
    assert list(got["name"]) == ["x", "ÿ", "z"]
    assert list(np.ma.getmaskarray(got["ra"])) == [False, False, True]
    assert got["ra"].unit == u.deg and got["ra"].meta.get("ucd") == "pos.eq.ra"
    assert got["ra"].description == "stored from Parquet"
    frame = client.mydb.download("fromparquet", output="pandas")
    assert frame.attrs["columns"]["ra"]["unit"] == "deg"
