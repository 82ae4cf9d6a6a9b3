"""Frames, epochs and time systems in the catalogue model: read at ingest from FITS,
VOTable, VO-Parquet and the metadata file; filled in for tables stored before."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from taphouse.catalogue.ingest import ingest_files
from taphouse.catalogue.model import CatalogueError, ColumnMeta, CoordSys, TableMeta, TimeSys
from taphouse.formats import ResultInfo, get_writer


def fits_file(path, **header):
    cols = [fits.Column(name="RAJ2000", format="D", unit="deg", array=np.array([10.0, 20.0])),
            fits.Column(name="DEJ2000", format="D", unit="deg", array=np.array([-5.0, 5.0])),
            fits.Column(name="GLON", format="D", unit="deg", array=np.array([100.0, 120.0])),
            fits.Column(name="GLAT", format="D", unit="deg", array=np.array([1.0, 2.0])),
            fits.Column(name="OBS_TIME", format="D", unit="d", array=np.array([1.5, 2.25])),
            fits.Column(name="MAG", format="E", unit="mag", array=np.array([10.0, 11.0]))]
    hdu = fits.BinTableHDU.from_columns(cols)
    for key, value in {"TCTYP1": "RA---TAN", "TCTYP2": "DEC--TAN", "TCTYP3": "GLON-CAR",
                       "TCTYP4": "GLAT-CAR", "TCTYP5": "TCB", **header}.items():
        if value is not None:
            hdu.header[key] = value
    hdu.writeto(path)
    return path


def test_fits_frames_and_time_system(store, tmp_path):
    path = fits_file(tmp_path / "f.fits", RADESYS="FK5", EQUINOX=2000.0, MJDREF=50000.0,
                     TREFPOS="BARYCENTER", TIMESYS="TT")
    table = ingest_files(store, [path], "survey", "f", epoch="J2000.0")
    ra, glon, t = table.column("raj2000"), table.column("glon"), table.column("obs_time")
    assert ra.coosys == table.column("dej2000").coosys == CoordSys("FK5", "J2000.0",
                                                                    "J2000.0")
    assert glon.coosys == table.column("glat").coosys == CoordSys("GALACTIC")
    assert glon.ucd == "pos.galactic.lon"
    # TCTYPn names the time scale; the reference position and origin are global
    assert t.timesys == TimeSys("TCB", "BARYCENTER", repr(50000.0 + 2400000.5))
    assert table.column("mag").coosys is None and table.column("mag").timesys is None
    assert table.epoch == 2000.0
    stored = store.table("survey", "f")
    assert stored.column("obs_time").timesys == t.timesys and stored.column("raj2000").coosys


def test_fits_time_defaults_of_the_standard(store, tmp_path):
    # TCTYP5 = TIME: the global TIMESYS; no TIMESYS -> UTC, no TREFPOS -> TOPOCENTER,
    # no MJDREF -> MJD 0
    path = fits_file(tmp_path / "g.fits", TCTYP5="TIME")
    table = ingest_files(store, [path], "survey", "g")
    assert table.column("obs_time").timesys == TimeSys("UTC", "TOPOCENTER", "MJD-origin")
    assert table.column("raj2000").coosys == CoordSys("ICRS")  # no RADESYS/EQUINOX
    assert table.epoch is None


def test_fits_old_equinox_means_fk4_and_is_refused_for_the_main_positions(store, tmp_path):
    path = fits_file(tmp_path / "b.fits", EQUINOX=1950.0)
    with pytest.raises(CatalogueError) as info:
        ingest_files(store, [path], "survey", "b")
    message = str(info.value)
    assert "FK4 frame" in message and "must be ICRS (or FK5 J2000)" in message
    assert "SkyCoord" in message


def test_fits_unknown_radesys_is_named(store, tmp_path):
    path = fits_file(tmp_path / "x.fits", RADESYS="GAPPT")
    with pytest.raises(CatalogueError, match="GAPPT frame"):
        ingest_files(store, [path], "survey", "x")


VOTABLE = """<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE>
<COOSYS ID="H" system="ICRS" epoch="J1991.25"/>
<COOSYS ID="G" system="galactic"/>
<TIMESYS ID="T" timeorigin="2400000.5" timescale="TDB" refposition="BARYCENTER"/>
<TABLE>
<FIELD name="RA_ICRS" datatype="double" unit="deg" ucd="pos.eq.ra;meta.main" ref="H"/>
<FIELD name="DE_ICRS" datatype="double" unit="deg" ucd="pos.eq.dec;meta.main" ref="H"/>
<FIELD name="GLON" datatype="double" unit="deg" ref="G"/>
<FIELD name="GLAT" datatype="double" unit="deg" ref="G"/>
<FIELD name="tobs" datatype="double" unit="d" ref="T"/>
<DATA><TABLEDATA><TR><TD>10</TD><TD>20</TD><TD>1</TD><TD>2</TD><TD>50000.5</TD></TR>
</TABLEDATA></DATA>
</TABLE>
</RESOURCE>
</VOTABLE>
"""


def test_votable_coosys_and_timesys(store, tmp_path):
    path = tmp_path / "v.vot"
    path.write_text(VOTABLE)
    table = ingest_files(store, [path], "survey", "v")
    assert table.column("ra_icrs").coosys == CoordSys("ICRS", "J1991.25")
    assert table.column("glat").coosys == CoordSys("GALACTIC")
    assert table.column("tobs").timesys == TimeSys("TDB", "BARYCENTER", "2400000.5")
    assert table.epoch == 1991.25


def test_vo_parquet_round_trip(store, tmp_path):
    # a VO-Parquet result written by this service is ingested with its frames
    columns = [ColumnMeta("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main",
                          coosys=CoordSys("ICRS", "J2016.0")),
               ColumnMeta("dec", "double", unit="deg", ucd="pos.eq.dec;meta.main",
                          coosys=CoordSys("ICRS", "J2016.0")),
               ColumnMeta("t", "double", unit="d", timesys=TimeSys("TCB", "BARYCENTER",
                                                                     "MJD-origin"))]
    batch = pa.record_batch({"ra": [1.0], "dec": [2.0], "t": [57000.0]})
    path = tmp_path / "r.parquet"
    path.write_bytes(b"".join(get_writer("parquet").write([batch], columns, ResultInfo())))
    table = ingest_files(store, [path], "survey", "r")
    assert table.column("ra").coosys == CoordSys("ICRS", "J2016.0") and table.epoch == 2016.0
    assert table.column("t").timesys == TimeSys("TCB", "BARYCENTER", "MJD-origin")


def test_meta_yaml_frames_pairs_and_time_columns(store, tmp_path):
    data = tmp_path / "t.parquet"
    pq.write_table(pa.table({"ra": [10.0], "dec": [20.0], "glon": [1.0], "glat": [2.0],
                             "mjd": [57000.5], "when": ["2015-06-01T00:00:00"]}), data)
    meta = tmp_path / "m.yaml"
    meta.write_text(json.dumps({
        "epoch": "J2015.5", "frame": "ICRS", "refposition": "BARYCENTER",
        "positions": [{"lon": "glon", "lat": "glat", "frame": "galactic"}],
        "columns": {"mjd": {"unit": "d", "timescale": "tcb", "refposition": "barycenter",
                            "timeorigin": "MJD-origin"},
                    "when": {"timescale": "UTC", "refposition": "TOPOCENTER"}}}))
    table = ingest_files(store, [data], "survey", "t", meta_file=meta)
    assert table.column("ra").coosys == CoordSys("ICRS", "J2015.5", None, "BARYCENTER")
    assert table.column("glon").coosys == CoordSys("GALACTIC")
    assert table.column("mjd").timesys == TimeSys("TCB", "BARYCENTER", "MJD-origin")
    assert table.column("when").timesys == TimeSys("UTC", "TOPOCENTER", None)
    assert table.epoch == 2015.5


@pytest.mark.parametrize(("doc", "message"), [
    ({"frame": "B1950"}, "frame 'B1950' is not one of ICRS"),
    ({"columns": {"mjd": {"timescale": "local"}}}, "needs a timescale, one of TAI"),
    ({"columns": {"mjd": {"timescale": "TT", "timeorigin": "yesterday"}}},
     "timeorigin 'yesterday' is not a Julian date"),
    ({"columns": {"mjd": {"timescale": "TT", "refposition": "moon"}}},
     "refposition 'moon' is not one of"),
    ({"positions": [{"lon": "glon"}]}, "give 'lon' and 'lat'"),
    ({"positions": [{"lon": "glon", "lat": "nosuch"}]}, "no positions lat column 'nosuch'"),
    ({"frame": "GALACTIC"}, "GALACTIC frame"),
])
def test_meta_yaml_frame_errors(store, tmp_path, doc, message):
    data = tmp_path / "t.parquet"
    pq.write_table(pa.table({"ra": [10.0], "dec": [20.0], "glon": [1.0], "mjd": [1.0]}), data)
    meta = tmp_path / "m.yaml"
    meta.write_text(json.dumps(doc))
    with pytest.raises(CatalogueError, match=message):
        ingest_files(store, [data], "survey", "t", meta_file=meta)


def test_missing_epoch_is_warned_by_the_cli(tmp_path, monkeypatch, capsys):
    from taphouse.cli import main

    monkeypatch.setenv("TAPHOUSE_DATA_DIR", str(tmp_path / "data"))
    data = tmp_path / "t.csv"
    data.write_text("ra,dec\n1,2\n")
    assert main(["--init", "ingest", str(data), "-d", "survey", "-t", "t", "-q"]) == 0
    assert "have no epoch" in capsys.readouterr().err
    assert main(["ingest", str(data), "-d", "survey", "-t", "t", "-q", "--epoch",
                 "J2016", "--replace"]) == 0
    assert "have no epoch" not in capsys.readouterr().err


def test_tables_stored_before_frames_get_icrs_at_their_epoch():
    # a version's metadata as stored before frames existed: no coosys on the columns
    columns = [ColumnMeta.from_dict({"name": "ra", "datatype": "double", "unit": "deg"}),
               ColumnMeta.from_dict({"name": "dec", "datatype": "double", "unit": "deg"}),
               ColumnMeta.from_dict({"name": "mag", "datatype": "double"})]
    table = TableMeta("old", "t", columns, ra_column="ra", dec_column="dec", epoch=1991.25)
    assert table.column("ra").coosys == table.column("dec").coosys == CoordSys("ICRS",
                                                                               "J1991.25")
    assert table.column("mag").coosys is None
    assert columns[0].coosys is None  # the shared (cached) column objects are not changed
