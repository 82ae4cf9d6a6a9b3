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
