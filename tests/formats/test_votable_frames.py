"""COOSYS and TIMESYS in result headers: VOTable (both serialisations) and the VOTable a
VO-Parquet file embeds, checked with astropy and with ``stilts votlint``."""

from __future__ import annotations

import io
import subprocess
import warnings
import xml.etree.ElementTree as ET

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io.votable import parse

from taphouse.catalogue.model import ColumnMeta, CoordSys, TimeSys
from taphouse.formats import ResultInfo, get_writer
from taphouse.formats.parquet import CONTENT_KEY

NS = "{http://www.ivoa.net/xml/VOTable/v1.3}"
HIP = CoordSys("ICRS", "J1991.25")
GAIA = CoordSys("ICRS", "J2016.0")
TCB = TimeSys("TCB", "BARYCENTER", "MJD-origin")


def crossmatch_columns(frame_hip=HIP, frame_gaia=GAIA) -> list[ColumnMeta]:
    return [
        ColumnMeta("hip", "int"),
        ColumnMeta("h_ra", "double", unit="deg", ucd="pos.eq.ra", coosys=frame_hip),
        ColumnMeta("h_dec", "double", unit="deg", ucd="pos.eq.dec", coosys=frame_hip),
        ColumnMeta("g_ra", "double", unit="deg", ucd="pos.eq.ra", coosys=frame_gaia),
        ColumnMeta("g_dec", "double", unit="deg", ucd="pos.eq.dec", coosys=frame_gaia),
        ColumnMeta("obs_time", "double", unit="d", ucd="time.epoch", timesys=TCB),
        ColumnMeta("mag", "float", unit="mag"),
    ]


def batch() -> pa.RecordBatch:
    return pa.record_batch({"hip": pa.array([1, 2], pa.int32()), "h_ra": [10.0, 20.0],
                            "h_dec": [1.0, 2.0], "g_ra": [10.001, 20.001],
                            "g_dec": [1.001, 2.001], "obs_time": [57388.5, 57389.25],
                            "mag": pa.array([5.5, 6.5], pa.float32())})


def render(fmt: str, columns) -> bytes:
    return b"".join(get_writer(fmt).write([batch()], columns, ResultInfo(query="SELECT 1")))


def votlint(data: bytes, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "r.vot"
    path.write_bytes(data)
    return subprocess.run(["stilts", "votlint", str(path)], capture_output=True, text=True,
                          timeout=120)


def strict_parse(data: bytes):
    """astropy, with every VOTable warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return parse(io.BytesIO(data), verify="exception")


@pytest.mark.parametrize("fmt", ["votable", "votable/td"])
def test_one_coosys_per_frame_and_a_timesys(fmt, tmp_path):
    data = render(fmt, crossmatch_columns())
    vot = strict_parse(data)
    assert vot.version == "1.4"
    resource = vot.resources[0]
    systems = {c.ID: c for c in resource.coordinate_systems}
    assert {(c.system, c.epoch) for c in systems.values()} == {("ICRS", "J1991.25"),
                                                              ("ICRS", "J2016.0")}
    (timesys,) = resource.time_systems
    assert (timesys.timescale, timesys.refposition, timesys.timeorigin) == (
        "TCB", "BARYCENTER", "MJD-origin")
    fields = {f.name: f for f in vot.get_first_table().fields}
    assert systems[fields["h_ra"].ref].epoch == "J1991.25"
    assert fields["h_ra"].ref == fields["h_dec"].ref != fields["g_ra"].ref == fields["g_dec"].ref
    assert systems[fields["g_dec"].ref].epoch == "J2016.0"
    assert fields["obs_time"].ref == timesys.ID
    assert fields["hip"].ref is None and fields["mag"].ref is None
    lint = votlint(data, tmp_path)
    assert lint.returncode == 0 and lint.stdout.strip() == "", lint.stdout


def test_frames_written_in_the_version_1_4_vocabulary(tmp_path):
    fk5 = CoordSys("FK5", "J2000.0", "J2000.0")
    gal = CoordSys("GALACTIC")
    cols = crossmatch_columns(fk5, gal)
    data = render("votable", cols)
    root = ET.fromstring(data)
    systems = {e.get("ID"): e.get("system") for e in root.iter(f"{NS}COOSYS")}
    assert sorted(systems.values()) == ["eq_FK5", "galactic"]
    lint = votlint(data, tmp_path)
    assert lint.returncode == 0 and lint.stdout.strip() == "", lint.stdout


def test_refposition_makes_it_votable_1_5(tmp_path):
    bary = CoordSys("ICRS", "J2016.0", refposition="BARYCENTER")
    data = render("votable", crossmatch_columns(HIP, bary))
    vot = strict_parse(data)
    assert vot.version == "1.5"
    refpos = {c.epoch: c.refposition for c in vot.resources[0].coordinate_systems}
    assert refpos == {"J1991.25": None, "J2016.0": "BARYCENTER"}
    # Debian's stilts 3.4.7 predates VOTable 1.5: its votlint knows only 1.3 and 1.4 and
    # complains about exactly that (the version and COOSYS refposition), nothing else.
    lint = votlint(data, tmp_path)
    problems = [line for line in lint.stdout.splitlines() if line.startswith("ERROR")]
    assert problems and all("1.5" in line or "refposition" in line for line in problems), \
        lint.stdout


def test_no_frames_no_elements():
    cols = [ColumnMeta(c.name, c.datatype, unit=c.unit) for c in crossmatch_columns()]
    data = render("votable", cols)
    assert b"COOSYS" not in data and b"TIMESYS" not in data and b'version="1.4"' in data


def test_vo_parquet_header_carries_the_same(tmp_path):
    data = render("parquet", crossmatch_columns())
    path = tmp_path / "r.parquet"
    path.write_bytes(data)
    content = pq.ParquetFile(path).metadata.metadata[CONTENT_KEY.encode()]
    header = strict_parse(content + b"")
    resource = header.resources[0]
    assert {c.epoch for c in resource.coordinate_systems} == {"J1991.25", "J2016.0"}
    assert [t.timescale for t in resource.time_systems] == ["TCB"]
    fields = {f.name: f for f in header.get_first_table().fields}
    ids = {c.ID: c.epoch for c in resource.coordinate_systems}
    assert ids[fields["h_ra"].ref] == "J1991.25" and ids[fields["g_ra"].ref] == "J2016.0"
    # astropy reads the file with that header
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = Table.read(path, format="parquet.votable")
    assert list(table["h_ra"]) == [10.0, 20.0]
    lint = votlint(content, tmp_path)
    assert lint.returncode == 0 and lint.stdout.strip() == "", lint.stdout
