"""Frames in results over real HTTP: COOSYS on every position column (one per source in
a crossmatch, the target epoch after propagation), TIMESYS on time columns, in VOTable
and VO-Parquet; the examples of /tap/examples. Checked with astropy and stilts votlint."""

from __future__ import annotations

import io
import subprocess
import warnings

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.io.votable import parse

from taphouse.catalogue.ingest import ingest_files
from taphouse.formats.parquet import CONTENT_KEY
from taphouse.tap.examples import EXAMPLES, HIP_AT_2016


def sync(tap: str, query: str, fmt: str = "votable", **params) -> httpx.Response:
    r = httpx.post(tap + "/sync", data={"LANG": "ADQL", "QUERY": query,
                                       "RESPONSEFORMAT": fmt, **params}, timeout=120)
    assert r.status_code == 200, r.text[-2000:]
    return r


def strict(data: bytes):
    """The VOTable, parsed by astropy with every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return parse(io.BytesIO(data), verify="exception")


def frames(vot) -> dict[str, tuple]:
    """Column name -> (system, epoch) of its COOSYS, or (timescale, refposition) of its
    TIMESYS; absent for columns without a ref."""
    resource = vot.resources[0]
    systems = {c.ID: (c.system, c.epoch) for c in resource.coordinate_systems}
    systems.update({t.ID: (t.timescale, t.refposition) for t in resource.time_systems})
    return {f.name: systems[f.ref] for f in vot.get_first_table().fields if f.ref}


def votlint_clean(data: bytes, tmp_path) -> None:
    path = tmp_path / "r.vot"
    path.write_bytes(data)
    lint = subprocess.run(["stilts", "votlint", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert lint.returncode == 0 and lint.stdout.strip() == "", lint.stdout


def test_crossmatch_has_one_coosys_per_source(demo_server, tmp_path):
    query = ("SELECT TOP 50 h.hip, h.ra, h.dec, g.source_id, g.ra AS gra, g.dec AS gdec, "
             f"{HIP_AT_2016} AS h2016, COORD1({HIP_AT_2016}) AS ra2016, h.hpmag "
             "FROM hipparcos.hip2 AS h JOIN gaia.dr3_bright AS g ON 1 = CONTAINS("
             f"POINT(g.ra, g.dec), CIRCLE({HIP_AT_2016}, 1.0/3600))")
    for fmt in ("votable", "votable/td"):
        data = sync(demo_server.tap, query, fmt).content
        vot = strict(data)
        assert frames(vot) == {
            "ra": ("ICRS", "J1991.25"), "dec": ("ICRS", "J1991.25"),
            "gra": ("ICRS", "J2016.0"), "gdec": ("ICRS", "J2016.0"),
            "h2016": ("ICRS", "J2016.0"), "ra2016": ("ICRS", "J2016.0")}
        assert len(vot.resources[0].coordinate_systems) == 2
        votlint_clean(data, tmp_path)


def test_propagation_to_a_row_dependent_epoch_has_no_epoch(demo_server):
    data = sync(demo_server.tap, "SELECT TOP 3 ivo_epoch_prop_pos(ra, dec, plx, pmra, pmde,"
                                 " 0, 1991.25, 1991.25 + hip / 1000) AS p FROM hipparcos.hip2"
                ).content
    assert frames(strict(data)) == {"p": ("ICRS", None)}


def test_vo_parquet_result_carries_the_frames(demo_server):
    query = "SELECT TOP 5 source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright"
    data = sync(demo_server.tap, query, "parquet").content
    content = pq.ParquetFile(io.BytesIO(data)).metadata.metadata[CONTENT_KEY.encode()]
    assert frames(strict(content)) == {"ra": ("ICRS", "J2016.0"), "dec": ("ICRS", "J2016.0")}


def test_units_in_results_are_canonical_vounits(demo_server):
    data = sync(demo_server.tap, "SELECT TOP 1 pmra, plx, b_v FROM hipparcos.hip2").content
    assert b'unit="mas/yr"' in data
    units = {f.name: f.unit for f in strict(data).get_first_table().fields}
    assert str(units["pmra"]) == "mas / yr" and str(units["plx"]) == "mas"
    # '%' is a VOUnit (VOUnits 1.1) that astropy's parser does not know yet
    data = sync(demo_server.tap, "SELECT TOP 1 f1 FROM hipparcos.hip2").content
    assert b'unit="%"' in data


def time_table(path):
    """The test table with a time column (the demo data has none): TCB MJDs at the
    barycentre, positions in FK5, a galactic pair."""
    cols = [fits.Column(name="RA", format="D", unit="deg", array=np.array([10.0, 20.0])),
            fits.Column(name="DEC", format="D", unit="deg", array=np.array([-5.0, 5.0])),
            fits.Column(name="GLON", format="D", unit="deg", array=np.array([100.0, 120.0])),
            fits.Column(name="GLAT", format="D", unit="deg", array=np.array([1.0, 2.0])),
            fits.Column(name="T_OBS", format="D", unit="d", array=np.array([7388.5, 7389.25])),
            fits.Column(name="FLUX", format="E", unit="mJy", array=np.array([1.0, 2.0]))]
    hdu = fits.BinTableHDU.from_columns(cols)
    for key, value in {"TCTYP1": "RA---TAN", "TCTYP2": "DEC--TAN", "TCTYP3": "GLON",
                       "TCTYP4": "GLAT", "TCTYP5": "TCB", "RADESYS": "FK5",
                       "EQUINOX": 2000.0, "MJDREF": 50000.0,
                       "TREFPOS": "BARYCENTER"}.items():
        hdu.header[key] = value
    hdu.writeto(path)
    return path


@pytest.fixture
def time_server(start_server, tmp_path):
    server = start_server()
    ingest_files(server.platform.catalogue, [time_table(tmp_path / "lc.fits")], "obs", "lc",
                 epoch=2015.5)
    return server


def test_time_column_gets_a_timesys(time_server, tmp_path):
    query = ("SELECT ra, dec, glon, glat, t_obs, MIN(t_obs) AS first, t_obs * 86400 AS t_s,"
             " t_obs - 1 AS shifted, flux, POINT(ra, dec) AS pos FROM obs.lc"
             " GROUP BY ra, dec, glon, glat, t_obs, flux")
    for fmt in ("votable", "votable/td"):
        data = sync(time_server.tap, query, fmt).content
        vot = strict(data)
        assert vot.version == "1.4"
        assert frames(vot) == {
            "ra": ("eq_FK5", "J2015.5"), "dec": ("eq_FK5", "J2015.5"),
            "pos": ("eq_FK5", "J2015.5"),
            "glon": ("galactic", None), "glat": ("galactic", None),
            "t_obs": ("TCB", "BARYCENTER"), "first": ("TCB", "BARYCENTER"),
            "t_s": ("TCB", "BARYCENTER")}  # a unit conversion keeps the time system
        (timesys,) = vot.resources[0].time_systems
        assert float(timesys.timeorigin) == 2450000.5
        (fk5,) = [c for c in vot.resources[0].coordinate_systems if c.system == "eq_FK5"]
        assert fk5.equinox == "J2000.0"
        votlint_clean(data, tmp_path)
    data = sync(time_server.tap, "SELECT t_obs FROM obs.lc", "parquet").content
    content = pq.ParquetFile(io.BytesIO(data)).metadata.metadata[CONTENT_KEY.encode()]
    assert frames(strict(content)) == {"t_obs": ("TCB", "BARYCENTER")}


def test_dest_table_keeps_frames(time_server):
    # results kept in user space keep the frames: a later query reports them again
    platform = time_server.platform
    platform.authenticator.accounts.add_user("ada", "a good password 2")
    auth = ("ada", "a good password 2")
    r = httpx.post(time_server.tap + "/sync", auth=auth, timeout=60, data={
        "LANG": "ADQL", "QUERY": "SELECT ra, dec, t_obs FROM obs.lc", "DEST": "mydb.kept"})
    assert r.status_code == 200, r.text
    r = httpx.post(time_server.tap + "/sync", auth=auth, timeout=60, data={
        "LANG": "ADQL", "QUERY": "SELECT * FROM mydb.kept"})
    assert frames(strict(r.content)) == {"ra": ("eq_FK5", "J2015.5"),
                                         "dec": ("eq_FK5", "J2015.5"),
                                         "t_obs": ("TCB", "BARYCENTER")}


# --- the examples ------------------------------------------------------------------------
@pytest.mark.parametrize("example", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_each_example_runs_and_says_what_it_shows(demo_server, example, tmp_path):
    ident, name, description, query = example
    assert description.startswith("Shows ")
    data = sync(demo_server.tap, query).content
    vot = strict(data)
    assert len(vot.get_first_table().array) > 0
    votlint_clean(data, tmp_path)


def test_crossmatch_example_propagates_hipparcos_to_gaia_epoch(demo_server):
    (query,) = [e[3] for e in EXAMPLES if e[0] == "crossmatch"]
    assert HIP_AT_2016 in query
    vot = strict(sync(demo_server.tap, query).content)
    assert frames(vot)["h_2016"] == ("ICRS", "J2016.0")
    assert frames(vot)["h_ra"] == ("ICRS", "J1991.25")
    seps = vot.get_first_table().array["sep"]
    assert len(seps) > 10 and float(np.max(seps)) <= 1.0


def test_whole_sky_numbers_in_the_crossmatch_example(demo_server):
    # the figures the example's description quotes
    def pairs(position: str) -> int:
        query = ("SELECT COUNT(*) AS n FROM hipparcos.hip2 AS h JOIN gaia.dr3_bright AS g "
                 f"ON 1 = CONTAINS(POINT(g.ra, g.dec), CIRCLE({position}, 1.0 / 3600))")
        return int(sync(demo_server.tap, query, "csv").text.split()[1])

    assert pairs(HIP_AT_2016) == 110_349
    assert pairs("POINT(h.ra, h.dec)") == 76_757
