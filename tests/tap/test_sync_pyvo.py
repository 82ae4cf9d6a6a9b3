"""Stock pyvo (``pyvo.dal.TAPService``, unmodified) against the live demo server: sync
and async queries, uploads, MAXREC overflow, every output format, TAP_SCHEMA,
geometry columns and ADQL errors."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import pyvo
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.table import Table
from lxml import etree
from pyvo.dal.exceptions import DALOverflowWarning, DALQueryError

COLUMNS = ["source_id", "ra", "dec", "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag",
           "from_hipparcos", "hip"]
# A circle around HIP 15863 (Mirfak, in the alpha Persei cluster): one row from
# Hipparcos (hip set, BP/RP NULL) among rows from Gaia (hip NULL).
CONE = "1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 51.081, 49.861, 0.3))"
ROWS_QUERY = f"SELECT {', '.join(COLUMNS)} FROM gaia.dr3_bright WHERE {CONE} ORDER BY source_id"
UNITS = {"ra": "deg", "dec": "deg", "phot_g_mean_mag": "mag", "phot_bp_mean_mag": "mag",
         "phot_rp_mean_mag": "mag"}
UCDS = {"source_id": "meta.id;meta.main", "ra": "pos.eq.ra;meta.main",
        "dec": "pos.eq.dec;meta.main", "phot_g_mean_mag": "phot.mag;em.opt",
        "phot_bp_mean_mag": "phot.mag;em.opt.B", "phot_rp_mean_mag": "phot.mag;em.opt.R",
        "from_hipparcos": "meta.code", "hip": "meta.id.cross"}


@pytest.fixture(scope="module")
def service(demo_server: Any) -> pyvo.dal.TAPService:
    return pyvo.dal.TAPService(demo_server.tap)


@pytest.fixture(scope="module")
def reference(service: pyvo.dal.TAPService) -> Table:
    """The rows of ROWS_QUERY in the default format (VOTable BINARY), read by pyvo."""
    table = service.run_sync(ROWS_QUERY).to_table()
    hip = table["hip"]
    # The comparisons below are only meaningful with NULLs and values in each column.
    assert 5 <= len(table) <= 200
    assert hip.mask.any() and not hip.mask.all()
    assert table["from_hipparcos"].any() and not table["from_hipparcos"].all()
    return table


def _unit(col: Any) -> str | None:
    return None if col.unit is None else col.unit.to_string()


# --- sync ---------------------------------------------------------------------------

def test_sync_values_units_and_ucds(service: pyvo.dal.TAPService, reference: Table) -> None:
    result = service.run_sync(
        "SELECT hip, ra, dec, plx, hpmag, b_v FROM hipparcos.hip2 WHERE hip IN (1, 32349)"
        " ORDER BY hip")
    assert result.query_status == "OK"
    t = result.to_table()
    assert list(t["hip"]) == [1, 32349]
    # hip2.dat (I/311): HIP 32349 is Sirius, Hp = -1.0876, parallax 379.21 mas.
    sirius = t[1]
    assert sirius["hpmag"] == pytest.approx(-1.0876)
    assert sirius["plx"] == pytest.approx(379.21)
    assert sirius["ra"] == pytest.approx(101.2885, abs=1e-3)
    assert sirius["dec"] == pytest.approx(-16.7131, abs=1e-3)
    fields = {f.name: f for f in result.resultstable.fields}
    assert fields["ra"].ucd == "pos.eq.ra;meta.main"
    assert fields["plx"].ucd == "pos.parallax.trig"
    assert fields["b_v"].ucd == "phot.color;em.opt.B;em.opt.V"
    assert _unit(t["plx"]) == "mas" and _unit(t["hpmag"]) == "mag"
    assert _unit(t["ra"]) == "deg" and t["hip"].unit is None

    for name, unit in UNITS.items():
        assert _unit(reference[name]) == unit, name
    for name, ucd in UCDS.items():
        assert reference[name].meta.get("ucd") == ucd, name
    # Rows from Hipparcos carry minus the HIP number as source_id.
    hip_rows = reference[reference["from_hipparcos"]]
    assert list(hip_rows["source_id"]) == [-int(h) for h in hip_rows["hip"]]
    assert list(reference["source_id"]) == sorted(reference["source_id"])


def test_sync_join_of_two_catalogues(service: pyvo.dal.TAPService) -> None:
    t = service.run_sync(
        "SELECT g.source_id, g.hip, h.hpmag, h.plx FROM gaia.dr3_bright AS g"
        " JOIN hipparcos.hip2 AS h ON h.hip = g.hip ORDER BY g.hip").to_table()
    assert len(t) == 70  # every row of gaia.dr3_bright taken from Hipparcos
    assert list(t["hip"][-2:]) == [113368, 113881]
    assert all(-s == h for s, h in zip(t["source_id"], t["hip"], strict=True))
    assert _unit(t["hpmag"]) == "mag"


# --- async --------------------------------------------------------------------------

def test_async_run_async(service: pyvo.dal.TAPService, reference: Table) -> None:
    result = service.run_async(ROWS_QUERY, maxrec=1000)
    assert result.query_status == "OK"
    t = result.to_table()
    assert list(t["source_id"]) == list(reference["source_id"])
    assert _unit(t["ra"]) == "deg"
    assert t["phot_g_mean_mag"].meta.get("ucd") == "phot.mag;em.opt"


def test_async_job_lifecycle(service: pyvo.dal.TAPService) -> None:
    job = service.submit_job("SELECT TOP 3 hip, hpmag FROM hipparcos.hip2 ORDER BY hip",
                             maxrec=10)
    try:
        assert job.phase == "PENDING"
        job.run()
        job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
        assert job.phase == "COMPLETED"
        t = job.fetch_result().to_table()
        assert list(t["hip"]) == [1, 2, 3]
    finally:
        job.delete()


def test_async_error_is_raised(service: pyvo.dal.TAPService) -> None:
    with pytest.raises(DALQueryError, match="nosuchcolumn"):
        service.run_async("SELECT nosuchcolumn FROM hipparcos.hip2")


# --- uploads ------------------------------------------------------------------------

UPLOAD_JOIN = ("SELECT u.tag, u.hip, h.hpmag FROM TAP_UPLOAD.mine AS u"
               " JOIN hipparcos.hip2 AS h ON h.hip = u.hip ORDER BY u.hip")


def _upload_table() -> Table:
    return Table({"hip": np.array([32349, 1, 91262, 999999999], dtype=np.int32),
                  "tag": np.array(["sirius", "one", "vega", "none"])})


def _check_upload_join(t: Table) -> None:
    assert list(t["hip"]) == [1, 32349, 91262]
    assert [str(s) for s in t["tag"]] == ["one", "sirius", "vega"]
    assert t["hpmag"][1] == pytest.approx(-1.0876)
    assert _unit(t["hpmag"]) == "mag"


def test_upload_astropy_table_sync(service: pyvo.dal.TAPService) -> None:
    # pyvo 1.9 serialises the astropy Table itself (VOTable TABLEDATA); this works with
    # astropy 8 here, so no workaround is needed.
    _check_upload_join(service.run_sync(UPLOAD_JOIN, uploads={"mine": _upload_table()})
                       .to_table())


def test_upload_votable_file_async(service: pyvo.dal.TAPService, tmp_path: Path) -> None:
    path = tmp_path / "mine.xml"
    _upload_table().write(path, format="votable", tabledata_format="binary2")
    _check_upload_join(service.run_async(UPLOAD_JOIN, uploads={"mine": str(path)}).to_table())


def test_upload_crossmatch_by_position(service: pyvo.dal.TAPService) -> None:
    # Sirius and Vega at their Hipparcos positions (epoch J1991.25), matched against Gaia
    # (J2016.0) within 1 arcmin: Sirius moved about 33 arcsec in between.
    up = Table({"name": ["sirius", "vega"], "ra": [101.28854, 279.23410],
                "dec": [-16.71314, 38.78299]})
    t = service.run_sync(
        "SELECT u.name, g.source_id, g.hip FROM TAP_UPLOAD.stars AS u, gaia.dr3_bright AS g"
        " WHERE 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', u.ra, u.dec, 1/60.))"
        " ORDER BY u.name", uploads={"stars": up}).to_table()
    matched: dict[str, set[int]] = {}
    for row in t[~t["hip"].mask]:
        matched.setdefault(str(row["name"]), set()).add(int(row["hip"]))
    assert matched == {"sirius": {32349}, "vega": {91262}}


# --- MAXREC -------------------------------------------------------------------------

def test_maxrec_overflow(service: pyvo.dal.TAPService) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DALOverflowWarning)
        # pyvo does not warn when the rows stop at the MAXREC the client asked for.
        result = service.run_sync("SELECT hip FROM hipparcos.hip2 ORDER BY hip", maxrec=7)
    assert result.query_status == "OVERFLOW"
    assert list(result.to_table()["hip"]) == [1, 2, 3, 4, 5, 6, 7]
    exact = service.run_sync("SELECT TOP 7 hip FROM hipparcos.hip2 ORDER BY hip", maxrec=7)
    assert exact.query_status == "OK" and len(exact) == 7
    asynchronous = service.run_async("SELECT hip FROM hipparcos.hip2", maxrec=4)
    assert asynchronous.query_status == "OVERFLOW" and len(asynchronous) == 4


def test_maxrec_limit_warns(start_server: Any) -> None:
    """Server-side limits: pyvo warns when the service cut the rows below what was asked."""
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    server = start_server(maxrec_default=5, maxrec_limit=8)
    p = server.platform
    p.catalogue.create_database("t", "test data")
    path = p.catalogue.new_version_path("t", "nums")
    n = p.engine.write_table("SELECT range::BIGINT AS id FROM range(20)", path)
    p.catalogue.publish(TableMeta(database="t", name="nums", nrows=n,
                                  columns=[ColumnMeta(name="id", datatype="long")]), path)
    svc = pyvo.dal.TAPService(server.tap)
    with pytest.warns(DALOverflowWarning, match="server limits"):
        default = svc.run_sync("SELECT id FROM t.nums")
    assert default.query_status == "OVERFLOW" and len(default) == 5
    with pytest.warns(DALOverflowWarning, match="maxrec=15"):
        limited = svc.run_sync("SELECT id FROM t.nums", maxrec=15)
    assert limited.query_status == "OVERFLOW" and len(limited) == 8


def test_maxrec_zero_is_metadata_only(service: pyvo.dal.TAPService,
                                      demo_server: Any) -> None:
    # pyvo leaves out a false maxrec (``if maxrec:``), so MAXREC=0 is set on the query.
    query = service.create_query(ROWS_QUERY)
    query["MAXREC"] = 0
    with pytest.warns(DALOverflowWarning):  # pyvo: MAXREC was not set through maxrec=
        result = query.execute()
    assert result.query_status == "OVERFLOW"
    assert len(result) == 0
    assert [f.name for f in result.resultstable.fields] == COLUMNS
    t = result.to_table()
    assert _unit(t["ra"]) == "deg" and t["phot_bp_mean_mag"].meta.get("ucd") == "phot.mag;em.opt.B"
    # The same for a format read without pyvo.
    r = httpx.post(demo_server.tap + "/sync", data={
        "LANG": "ADQL", "QUERY": ROWS_QUERY, "MAXREC": "0", "RESPONSEFORMAT": "json"})
    doc = r.json()
    assert r.status_code == 200 and doc["data"] == []
    assert [m["name"] for m in doc["metadata"]] == COLUMNS


# --- output formats -----------------------------------------------------------------

def _fetch(demo_server: Any, fmt: str, **extra: str) -> httpx.Response:
    r = httpx.post(demo_server.tap + "/sync", timeout=60, data={
        "LANG": "ADQL", "QUERY": ROWS_QUERY, "RESPONSEFORMAT": fmt, **extra})
    assert r.status_code == 200, r.text[:500]
    return r


def _compare(t: Table, reference: Table, *, units: bool = True, ucds: bool = False) -> None:
    assert t.colnames == COLUMNS
    assert len(t) == len(reference)
    for name in COLUMNS:
        got, want = t[name], reference[name]
        want_mask = np.ma.getmaskarray(want)
        got_mask = np.ma.getmaskarray(got)
        if got.dtype.kind == "f":
            got_mask = got_mask | np.isnan(np.ma.getdata(got))
        assert list(got_mask) == list(want_mask), name
        g = np.ma.getdata(got)[~want_mask]
        w = np.ma.getdata(want)[~want_mask]
        if want.dtype.kind == "f":
            np.testing.assert_allclose(g.astype(float), w.astype(float), rtol=1e-7, err_msg=name)
        elif want.dtype.kind == "b":
            # Text formats write booleans as true/false.
            got_bool = [x if isinstance(x, bool | np.bool_) else str(x).lower() == "true"
                        for x in g]
            assert got_bool == [bool(x) for x in w], name
        else:
            assert [int(x) for x in g] == [int(x) for x in w], name
        if units:
            assert _unit(got) == _unit(want), name
        if ucds:
            assert got.meta.get("ucd") == UCDS[name], name


def test_format_votable_binary_is_the_default(demo_server: Any, reference: Table) -> None:
    for fmt in ("votable", "votable/b", "application/x-votable+xml",
                "application/x-votable+xml;serialization=BINARY"):
        r = _fetch(demo_server, fmt)
        assert r.headers["content-type"].startswith("application/x-votable+xml")
        assert b"<BINARY>" in r.content and b"<BINARY2>" not in r.content
        _compare(parse_single_table(io.BytesIO(r.content)).to_table(), reference, ucds=True)
    # without RESPONSEFORMAT as well
    r = httpx.post(demo_server.tap + "/sync", timeout=60,
                   data={"LANG": "ADQL", "QUERY": ROWS_QUERY})
    assert b"<BINARY>" in r.content


def test_format_votable_binary2(demo_server: Any, reference: Table) -> None:
    for fmt in ("votable/b2", "application/x-votable+xml;serialization=BINARY2"):
        r = _fetch(demo_server, fmt)
        assert r.headers["content-type"].startswith("application/x-votable+xml")
        assert b"<BINARY2>" in r.content
        _compare(parse_single_table(io.BytesIO(r.content)).to_table(), reference, ucds=True)


def test_capabilities_name_each_serialization(demo_server: Any) -> None:
    caps = etree.fromstring(httpx.get(demo_server.tap + "/capabilities").content)
    formats = {f.findtext("mime"): f.get("ivo-id") for f in caps.iter("outputFormat")}
    rx = "ivo://ivoa.net/std/TAPRegExt#output-votable-"
    assert formats["application/x-votable+xml"] == rx + "binary"
    assert formats["application/x-votable+xml;serialization=BINARY2"] == rx + "binary2"
    assert formats["application/x-votable+xml;serialization=TABLEDATA"] == rx + "td"


def test_format_votable_tabledata(demo_server: Any, reference: Table) -> None:
    for fmt in ("votable/td", "application/x-votable+xml;serialization=TABLEDATA"):
        r = _fetch(demo_server, fmt)
        assert b"<TABLEDATA>" in r.content and b"<BINARY" not in r.content
        _compare(parse_single_table(io.BytesIO(r.content)).to_table(), reference, ucds=True)


def test_format_csv_and_tsv(demo_server: Any, reference: Table) -> None:
    csv = _fetch(demo_server, "csv")
    assert csv.headers["content-type"].startswith("text/csv")
    t = Table.read(csv.text, format="ascii.csv")
    _compare(t, reference, units=False)
    tsv = _fetch(demo_server, "tsv")
    assert tsv.headers["content-type"].startswith("text/tab-separated-values")
    _compare(Table.read(tsv.text, format="ascii.tab"), reference, units=False)
    assert tsv.text.splitlines()[0].split("\t") == COLUMNS


def test_format_fits(demo_server: Any, reference: Table) -> None:
    r = _fetch(demo_server, "fits")
    with fits.open(io.BytesIO(r.content)) as hdus:
        hdus.verify("exception")
        header = hdus[1].header
        ucds = {header[f"TTYPE{n}"]: header.get(f"TUCD{n}") for n in range(1, 9)}
    assert ucds == UCDS
    _compare(Table.read(io.BytesIO(r.content), format="fits"), reference)


def test_format_parquet(demo_server: Any, reference: Table, tmp_path: Path) -> None:
    r = _fetch(demo_server, "parquet")
    arrow = pq.read_table(io.BytesIO(r.content))
    assert arrow.column_names == COLUMNS
    assert arrow.column("source_id").to_pylist() == list(reference["source_id"])
    assert arrow.column("hip").null_count == int(reference["hip"].mask.sum())
    # VO-Parquet: the VOTable metadata in the footer, read back by astropy.
    path = tmp_path / "result.parquet"
    path.write_bytes(r.content)
    _compare(Table.read(path, format="parquet.votable"), reference, ucds=True)


def test_format_json(demo_server: Any, reference: Table) -> None:
    doc = json.loads(_fetch(demo_server, "json").content)
    assert doc["status"] == "OK" and doc["rows"] == len(reference)
    meta = {m["name"]: m for m in doc["metadata"]}
    assert [m["name"] for m in doc["metadata"]] == COLUMNS
    assert {n: meta[n]["ucd"] for n in COLUMNS} == UCDS
    assert meta["phot_bp_mean_mag"]["unit"] == "mag"
    columns = list(zip(*doc["data"], strict=True))
    t = Table([np.ma.masked_invalid(np.array(c, dtype=float)) if name not in
               ("source_id", "hip", "from_hipparcos") else
               np.ma.array([0 if v is None else v for v in c], mask=[v is None for v in c])
               for name, c in zip(COLUMNS, columns, strict=True)], names=COLUMNS)
    t["source_id"] = np.array(columns[0], dtype=np.int64)
    t["from_hipparcos"] = np.array(columns[6], dtype=bool)
    _compare(t, reference, units=False)


def test_formats_signal_overflow(demo_server: Any) -> None:
    extra = {"MAXREC": "3"}
    vot = _fetch(demo_server, "votable/td", **extra).content
    doc = etree.fromstring(vot)
    infos = [i.get("value") for i in doc.iter("{*}INFO") if i.get("name") == "QUERY_STATUS"]
    assert infos[-1] == "OVERFLOW"
    assert len(list(doc.iter("{*}TR"))) == 3
    assert json.loads(_fetch(demo_server, "json", **extra).content)["status"] == "OVERFLOW"
    assert len(_fetch(demo_server, "csv", **extra).text.strip().splitlines()) == 4
    assert len(Table.read(io.BytesIO(_fetch(demo_server, "fits", **extra).content),
                          format="fits")) == 3
    parquet = pq.ParquetFile(io.BytesIO(_fetch(demo_server, "parquet", **extra).content))
    assert parquet.metadata.num_rows == 3
    footer = parquet.metadata.metadata
    assert footer[b"IVOA.VOTable-Parquet.version"] == b"1.0"
    status = [v for k, v in footer.items() if b"status" in k.lower()]
    assert status == [b"OVERFLOW"], footer.keys()
    assert b'<INFO name="QUERY_STATUS" value="OVERFLOW"' in footer[
        b"IVOA.VOTable-Parquet.content"]


# --- TAP_SCHEMA and /tables ---------------------------------------------------------

def test_tap_schema_agrees_with_tables(service: pyvo.dal.TAPService) -> None:
    cols = service.run_sync(
        "SELECT column_name, datatype, unit, ucd, column_index FROM tap_schema.columns"
        " WHERE table_name = 'hipparcos.hip2' ORDER BY column_index").to_table()
    vosi = service.tables["hipparcos.hip2"]
    by_name = {c.name: c for c in vosi.columns}
    assert [str(n) for n in cols["column_name"]] == [c.name for c in vosi.columns]
    for row in cols:
        c = by_name[str(row["column_name"])]
        assert str(row["datatype"]) == c.datatype.content
        assert (str(row["unit"]) if row["unit"] else None) == (c.unit or None)
        assert (str(row["ucd"]) if row["ucd"] else None) == (c.ucd or None)
    assert "plx" in by_name and by_name["plx"].unit == "mas"

    tables = service.run_sync(
        "SELECT schema_name, table_name FROM tap_schema.tables ORDER BY table_name").to_table()
    names = {str(n) for n in tables["table_name"]}
    assert {"gaia.dr3_bright", "hipparcos.hip2", "tap_schema.columns"} <= names
    assert names == {t.name for t in service.tables}


# --- geometry and errors ------------------------------------------------------------

def test_point_column_has_xtype_point(service: pyvo.dal.TAPService) -> None:
    result = service.run_sync(
        "SELECT hip, POINT('ICRS', ra, dec) AS pos FROM hipparcos.hip2 WHERE hip = 32349")
    field = {f.name: f for f in result.resultstable.fields}["pos"]
    assert field.xtype == "point"
    assert field.datatype == "double" and field.arraysize == "2"
    ra, dec = result.to_table()["pos"][0]
    assert ra == pytest.approx(101.2885, abs=1e-3) and dec == pytest.approx(-16.7131, abs=1e-3)


def test_adql_error_gives_message_and_position(service: pyvo.dal.TAPService) -> None:
    with pytest.raises(DALQueryError) as err:
        service.run_sync("SELECT hip,\n       nosuch FROM hipparcos.hip2")
    text = str(err.value)
    assert "nosuch" in text and "line 2" in text and "column 8" in text
    with pytest.raises(DALQueryError) as err:
        service.run_sync("SELECT FROM WHERE")
    assert "line 1" in str(err.value)
    with pytest.raises(DALQueryError, match="unknown table|nosuch"):
        service.run_sync("SELECT * FROM nosuch.table")


def test_unicode_names_and_query_in_every_format(demo_server: Any) -> None:
    """Non-ASCII column names, text and query text: every format answers 200 with a
    complete document (FITS escapes what its ASCII header cannot hold)."""
    query = "SELECT TOP 2 hip AS \"höhe☃\", 'straße' AS s FROM hipparcos.hip2 ORDER BY hip -- é"
    for fmt in ("votable", "votable/td", "csv", "tsv", "fits", "parquet", "json"):
        r = httpx.post(demo_server.tap + "/sync", timeout=60, data={
            "LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": fmt})
        assert r.status_code == 200, (fmt, r.text[:300])
        if fmt.startswith("votable"):
            t = parse_single_table(io.BytesIO(r.content)).to_table(use_names_over_ids=True)
        elif fmt == "fits":
            with fits.open(io.BytesIO(r.content)) as hdus:
                hdus.verify("exception")
                assert hdus[1].header["TTYPE1"] == "h\\xf6he\\u2603"
                assert hdus[1].header["QUERY"].startswith('SELECT TOP 2 hip AS "h\\xf6he')
            t = Table.read(io.BytesIO(r.content), format="fits")
            t.rename_column(t.colnames[0], "höhe☃")
            t["s"] = [bytes(v).decode() if isinstance(v, bytes) else v for v in t["s"]]
        elif fmt == "parquet":
            t = Table(pq.read_table(io.BytesIO(r.content)).to_pydict())
        elif fmt == "json":
            doc = r.json()
            t = Table(rows=doc["data"], names=[m["name"] for m in doc["metadata"]])
        else:
            t = Table.read(r.text, format="ascii.csv" if fmt == "csv" else "ascii.tab")
        assert t.colnames == ["höhe☃", "s"], fmt
        assert list(t["höhe☃"]) == [1, 2], fmt
        assert [str(v) for v in t["s"]] == ["straße", "straße"], fmt
