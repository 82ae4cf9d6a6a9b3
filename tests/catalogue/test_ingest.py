"""Ingest of the four formats, metadata, validation errors and atomic replacement."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table
from cdshealpix.nested import lonlat_to_healpix

from taphouse.catalogue.ingest import column_name, ingest_files
from taphouse.catalogue.model import HEALPIX_COLUMN, CatalogueError

RA = [10.5, 200.25, 359.5, 0.0]
DEC = [-30.0, 45.5, 89.9, -90.0]


def astropy_table() -> Table:
    t = Table({"ID": np.array([1, 2, 3, 4], dtype=np.int64), "RA_ICRS": RA, "DE_ICRS": DEC,
               "Gmag": np.array([12.5, 13.0, np.nan, 9.25], dtype=np.float32),
               "Name": ["alpha", "beta", "gamma", "delta"]})
    t["RA_ICRS"].unit = u.deg
    t["RA_ICRS"].description = "Right ascension"
    t["RA_ICRS"].meta["ucd"] = "pos.eq.ra;meta.main"
    t["DE_ICRS"].unit = u.deg
    t["DE_ICRS"].description = "Declination"
    t["DE_ICRS"].meta["ucd"] = "pos.eq.dec;meta.main"
    t["Gmag"].unit = u.mag
    t["Gmag"].description = "G magnitude"
    t["Gmag"].meta["ucd"] = "phot.mag;em.opt"
    t.meta["description"] = "A small test table"
    return t


def write_parquet(path: Path) -> Path:
    md = {"RA_ICRS": ("deg", "pos.eq.ra;meta.main", "Right ascension"),
          "DE_ICRS": ("deg", "pos.eq.dec;meta.main", "Declination"),
          "Gmag": ("mag", "phot.mag;em.opt", "G magnitude")}
    t = astropy_table()
    fields, arrays = [], []
    for name in t.colnames:
        arr = pa.array(np.asarray(t[name]))
        meta = None
        if name in md:
            meta = dict(zip(("unit", "ucd", "description"), md[name], strict=True))
        fields.append(pa.field(name, arr.type, metadata=meta))
        arrays.append(arr)
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(
        fields, metadata={"description": "A small test table"})), path)
    return path


def write_fits(path: Path) -> Path:
    t = astropy_table()
    cols = [fits.Column("ID", "K", array=t["ID"]),
            fits.Column("RA_ICRS", "D", unit="deg", array=t["RA_ICRS"]),
            fits.Column("DE_ICRS", "D", unit="deg", array=t["DE_ICRS"]),
            fits.Column("Gmag", "E", unit="mag", array=t["Gmag"]),
            fits.Column("Name", "8A", array=t["Name"])]
    hdu = fits.BinTableHDU.from_columns(cols)
    for n, (ucd, comm) in enumerate([("meta.id;meta.main", "Identifier"),
                                     ("pos.eq.ra;meta.main", "Right ascension"),
                                     ("pos.eq.dec;meta.main", "Declination"),
                                     ("phot.mag;em.opt", "G magnitude")], start=1):
        hdu.header[f"TUCD{n}"] = ucd
        hdu.header[f"TCOMM{n}"] = comm
    hdu.writeto(path)
    return path


def write_votable(path: Path) -> Path:
    astropy_table().write(path, format="votable")
    return path


def write_ecsv(path: Path) -> Path:
    astropy_table().write(path, format="ascii.ecsv")
    return path


WRITERS = {"parquet": write_parquet, "fits": write_fits, "vot": write_votable,
           "ecsv": write_ecsv}


@pytest.mark.parametrize("ext", sorted(WRITERS))
def test_each_format_keeps_units_ucds_descriptions(store, engine, tmp_path, ext, query):
    path = WRITERS[ext](tmp_path / f"stars.{ext}")
    table = ingest_files(store, [path], "survey", f"stars_{ext}")

    assert [c.name for c in table.columns] == ["id", "ra_icrs", "de_icrs", "gmag", "name"]
    ra, de, gmag = table.column("ra_icrs"), table.column("de_icrs"), table.column("gmag")
    assert (ra.unit, ra.ucd, ra.description) == ("deg", "pos.eq.ra;meta.main",
                                                 "Right ascension")
    assert (de.unit, de.ucd, de.description) == ("deg", "pos.eq.dec;meta.main", "Declination")
    assert (gmag.unit, gmag.ucd, gmag.description) == ("mag", "phot.mag;em.opt",
                                                       "G magnitude")
    assert gmag.datatype == "float" and table.column("id").datatype == "long"
    assert table.column("name").datatype == "char"
    assert (table.ra_column, table.dec_column) == ("ra_icrs", "de_icrs")
    # the index is internal: not a listed column, but in the file
    assert table.column(HEALPIX_COLUMN) is None and table.healpix_column == HEALPIX_COLUMN
    assert table.nrows == 4
    if ext != "fits":
        assert table.description == "A small test table"

    rows = query(table, 'SELECT id, ra_icrs, de_icrs, gmag, name, "_healpix_29"'
                                " FROM {t} ORDER BY id")
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert [r[1] for r in rows] == RA and [r[2] for r in rows] == DEC
    assert rows[2][3] is None  # NaN is stored as NULL
    assert [r[4] for r in rows] == ["alpha", "beta", "gamma", "delta"]
    expected = lonlat_to_healpix(RA * u.deg, DEC * u.deg, 29).astype(np.int64)
    assert [r[5] for r in rows] == expected.tolist()
    # rows are stored in HEALPix order
    stored = [r[0] for r in query(table, 'SELECT "_healpix_29" FROM {t}')]
    assert stored == sorted(stored)


def test_csv_positions_found_by_common_names(store, engine, tmp_path, query):
    path = tmp_path / "plain.csv"
    path.write_text("Obj,RAJ2000,DEJ2000,flux\nx,10.0,20.0,1.5\ny,11.0,-21.0,\n")
    table = ingest_files(store, [path], "survey", "plain")
    assert (table.ra_column, table.dec_column) == ("raj2000", "dej2000")
    assert table.column("raj2000").unit == "deg"
    assert table.column("raj2000").ucd == "pos.eq.ra;meta.main"
    assert query(table, "SELECT obj, flux FROM {t} ORDER BY obj") == [
        ("x", 1.5), ("y", None)]


def test_several_files_concatenate(store, engine, tmp_path, query):
    a = write_parquet(tmp_path / "a.parquet")
    b = write_fits(tmp_path / "b.fits")
    table = ingest_files(store, [a, b], "survey", "both")
    assert table.nrows == 8
    assert table.extra["source_files"] == ["a.parquet", "b.fits"]
    assert query(table, "SELECT count(DISTINCT id) FROM {t}") == [(4,)]


def test_meta_yaml_overrides(store, tmp_path):
    path = write_parquet(tmp_path / "stars.parquet")
    meta = tmp_path / "meta.yaml"
    meta.write_text(
        "description: Stars, from the YAML\n"
        "database_description: The survey database\n"
        "epoch: J2015.5\n"
        "extra: {credit: Somebody et al.}\n"
        "columns:\n"
        "  Gmag: {unit: mmag, ucd: phot.mag;em.opt.V, description: V-ish, principal: true}\n"
        "  name: {description: Common name, utype: my:name}\n")
    table = ingest_files(store, [path], "survey", "stars", meta_file=meta)
    assert table.description == "Stars, from the YAML"
    assert table.epoch == 2015.5
    assert table.extra["credit"] == "Somebody et al."
    g = table.column("gmag")
    assert (g.unit, g.ucd, g.description, g.principal) == ("mmag", "phot.mag;em.opt.V",
                                                          "V-ish", True)
    n = table.column("name")
    assert (n.description, n.utype) == ("Common name", "my:name")
    assert store.database("survey").description == "The survey database"
    # the argument wins over the YAML
    again = ingest_files(store, [path], "survey", "stars", meta_file=meta,
                         description="From the command line")
    assert again.description == "From the command line"


def test_meta_yaml_errors(store, tmp_path):
    path = write_parquet(tmp_path / "stars.parquet")
    meta = tmp_path / "meta.yaml"
    meta.write_text("columns:\n  nosuch: {unit: deg}\n")
    with pytest.raises(CatalogueError, match="column 'nosuch' is not in"):
        ingest_files(store, [path], "survey", "stars", meta_file=meta)
    meta.write_text("colums: {}\n")
    with pytest.raises(CatalogueError, match=r"unknown key\(s\) \['colums'\]"):
        ingest_files(store, [path], "survey", "stars", meta_file=meta)


def test_meta_yaml_fixed_width_text(store, tmp_path, query):
    # a declared width is kept (results write it fixed-width: astropy reads 100k rows of
    # one char column in 3.1 s fixed against 4.4 s as arraysize="*")
    path = write_parquet(tmp_path / "stars.parquet")
    meta = tmp_path / "meta.yaml"
    meta.write_text("columns:\n  name: {arraysize: 5}\n")
    table = ingest_files(store, [path], "survey", "stars", meta_file=meta)
    assert table.column("name").arraysize == "5"
    assert query(table, "SELECT name FROM {t} ORDER BY id") == [
        ("alpha",), ("beta",), ("gamma",), ("delta",)]
    # values longer than the width would be cut in results: refused, with the row
    meta.write_text("columns:\n  name: {arraysize: 4}\n")
    with pytest.raises(CatalogueError, match=r"column 'name' is declared arraysize 4 but"
                                             r" row 1 holds a longer value"):
        ingest_files(store, [path], "survey", "stars2", meta_file=meta)
    for bad, message in (("{arraysize: 5}", "text columns only"),
                         ("{arraysize: 0}", "from 1 to 65535"),
                         ("{arraysize: '*'}", "from 1 to 65535")):
        column = "gmag" if "text" in message else "name"
        meta.write_text(f"columns:\n  {column}: {bad}\n")
        with pytest.raises(CatalogueError, match=message):
            ingest_files(store, [path], "survey", "stars3", meta_file=meta)


def test_explicit_position_columns(store, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("x,lon,lat\n1,10,20\n2,30,-40\n")
    with pytest.raises(CatalogueError):
        ingest_files(store, [path], "survey", "odd", ra="lon")  # Dec still missing
    table = ingest_files(store, [path], "survey", "odd", ra="lon", dec="lat")
    assert (table.ra_column, table.dec_column) == ("lon", "lat")
    assert table.healpix_column == HEALPIX_COLUMN


def test_table_without_positions(store, engine, tmp_path, query):
    path = tmp_path / "lines.csv"
    path.write_text("wavelength,species\n656.3,H\n486.1,H\n")
    table = ingest_files(store, [path], "survey", "lines")
    assert table.ra_column is None and table.healpix_column is None
    assert [c.name for c in table.columns] == ["wavelength", "species"]
    assert query(table, "SELECT count(*) FROM {t}") == [(2,)]


def test_column_names_are_made_adql_regular():
    assert column_name("B-V") == "b_v"
    assert column_name("RA_ICRS") == "ra_icrs"
    assert column_name("2MASS") == "col_2mass"


# --- errors ---------------------------------------------------------------------------
def error_of(store, path: Path, **kwargs) -> str:
    with pytest.raises(CatalogueError) as info:
        ingest_files(store, [path], "survey", "bad", **kwargs)
    return str(info.value)


def test_ra_out_of_range(store, tmp_path):
    path = tmp_path / "ra.csv"
    path.write_text("ra,dec\n10,20\n361.5,0\n")
    message = error_of(store, path)
    assert str(path) in message and "RA column 'ra' out of range 0..360" in message
    assert "361.5" in message and "row 2" in message


def test_dec_out_of_range(store, tmp_path):
    path = tmp_path / "dec.csv"
    path.write_text("ra,dec\n10,-91\n")
    assert "Dec column 'dec' out of range -90..90" in error_of(store, path)


def test_positions_in_radians_rejected(store, tmp_path):
    path = tmp_path / "rad.ecsv"
    t = Table({"ra": [0.1], "dec": [0.2]})
    t["ra"].unit = u.rad
    t["dec"].unit = u.rad
    t.write(path, format="ascii.ecsv")
    assert "must be ICRS degrees" in error_of(store, path)


def test_no_rows(store, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("ra,dec\n")
    assert error_of(store, path) == f"{path}: no rows"


def test_duplicate_columns_after_lower_casing(store, tmp_path):
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"RA": [1.0], "ra": [2.0], "dec": [3.0]}), path)
    message = error_of(store, path)
    assert str(path) in message and "duplicate column names" in message
    assert "'RA' and 'ra'" in message


def test_garbage_files(store, tmp_path):
    for name in ("junk.parquet", "junk.fits", "junk.vot"):
        path = tmp_path / name
        path.write_bytes(b"this is not a table\x00\x01" * 10)
        message = error_of(store, path)
        assert message.startswith(f"{path}: cannot read as ")
    path = tmp_path / "table.xlsx"
    path.write_bytes(b"PK")
    assert "unknown file type '.xlsx'" in error_of(store, path)
    assert "no such file" in error_of(store, tmp_path / "missing.csv")


def test_bad_value_after_the_first_csv_block(store, tmp_path, monkeypatch):
    from taphouse.catalogue import readers

    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 64)  # types come from the first block
    path = tmp_path / "late.csv"
    path.write_text("ra,dec,n\n" + "1,2,3\n" * 40 + "1,2,three\n")
    message = error_of(store, path)
    assert message.startswith(f"{path}: cannot read csv rows: ")
    assert "'three'" in message


def test_failed_ingest_leaves_previous_table(store, engine, tmp_path, query):
    good = write_parquet(tmp_path / "good.parquet")
    first = ingest_files(store, [good], "survey", "stars")
    bad = tmp_path / "bad.csv"
    bad.write_text("ra,dec\n10,20\n400,0\n")
    with pytest.raises(CatalogueError, match="out of range"):
        ingest_files(store, [bad], "survey", "stars")
    current = store.table("survey", "stars")
    assert current.version_id == first.version_id
    assert query(current, "SELECT count(*) FROM {t}") == [(4,)]
    # nothing was left behind in the table's folder but the current version
    files = sorted(p.name for p in Path(first.path).parent.iterdir())
    assert files == [Path(first.path).name]
    assert not [p for p in store.tables_dir.iterdir() if p.name.startswith(".ingest-")]


def test_reingest_replaces_atomically(store, engine, tmp_path, query):
    first = ingest_files(store, [write_parquet(tmp_path / "a.parquet")], "survey", "stars")
    old_relation = engine.relation(first)
    path = tmp_path / "more.csv"
    path.write_text("ra,dec\n1,2\n3,4\n5,6\n7,8\n9,10\n")
    second = ingest_files(store, [path], "survey", "stars")
    assert second.version_id != first.version_id and second.nrows == 5
    assert store.table("survey", "stars").version_id == second.version_id
    # a reader that attached the old version still reads it
    with engine.cursor() as cur:
        assert cur.execute(f"SELECT count(*) FROM {old_relation}").fetchone() == (4,)
    assert query(second, "SELECT count(*) FROM {t}") == [(5,)]


def test_version_file_is_a_readonly_duckdb_table(store, tmp_path):
    table = ingest_files(store, [write_fits(tmp_path / "s.fits")], "survey", "stars")
    assert table.path.suffix == ".duckdb" and table.path.parent.parent.name == "survey"
    con = duckdb.connect(str(table.path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM data").fetchone() == (4,)
    finally:
        con.close()


def test_reserved_database_rejected(store, tmp_path):
    path = write_parquet(tmp_path / "s.parquet")
    with pytest.raises(CatalogueError, match="reserved"):
        ingest_files(store, [path], "tap_schema", "stars")


def test_out_of_range_value_is_a_plain_number(store, tmp_path):
    path = tmp_path / "ra400.csv"
    path.write_text("id,ra,dec\n1,400,10\n")
    message = error_of(store, path)
    assert "400.0 in row 1" in message and "np.float64" not in message
    assert "decimal degrees" in message


def test_sexagesimal_ra_says_what_to_do(store, tmp_path):
    path = tmp_path / "sexagesimal.csv"
    path.write_text("id,ra,dec\n1,12:34:56,+12:34:56\n2,01:02:03,-05:06:07\n")
    message = error_of(store, path)
    assert "time32" not in message and "unsupported column type" not in message
    assert "RA column 'ra' holds text" in message and "sexagesimal" in message
    assert "decimal degrees" in message and "unit='hourangle'" in message


def test_time_of_day_column_is_kept_as_text(store, engine, tmp_path, query):
    path = tmp_path / "times.csv"
    path.write_text("id,obs_time\n1,12:34:56\n2,23:59:59\n")
    table = ingest_files(store, [path], "survey", "times")
    assert table.column("obs_time").datatype == "char"
    assert query(table, "SELECT obs_time FROM {t} ORDER BY id") == [("12:34:56",),
                                                                   ("23:59:59",)]


LONG = ("Right ascension (ICRS) of the source as measured by the survey telescope at the "
        "mean epoch of all its observations, in degrees")


def test_fits_long_descriptions_from_astropy_are_joined(store, tmp_path):
    # astropy splits YAML lines longer than 70 characters over several COMMENT cards,
    # with a backslash in column 71; read naively, the description came out as
    # "Right asce\ nsion" or the whole block (UCDs included) was lost.
    t = Table({"ra": [1.0, 2.0], "dec": [3.0, 4.0], "flux": [1.0, 2.0]})
    t["ra"].unit = u.deg
    t["ra"].description = LONG
    t["ra"].meta["ucd"] = "pos.eq.ra;meta.main"
    t["dec"].unit = u.deg
    t["dec"].meta["ucd"] = "pos.eq.dec;meta.main"
    t["flux"].description = "x" * 150
    path = tmp_path / "long.fits"
    t.write(path)
    header = fits.getheader(path, 1)
    assert any(str(v).endswith("\\") for v in header["COMMENT"])  # the case is real
    table = ingest_files(store, [path], "survey", "long")
    assert table.column("ra").description == LONG
    assert table.column("ra").ucd == "pos.eq.ra;meta.main"
    assert table.column("flux").description == "x" * 150


def test_fits_continue_cards_join_long_column_comments(store, tmp_path):
    path = tmp_path / "continue.fits"
    hdu = fits.BinTableHDU.from_columns([
        fits.Column(name="ra", format="D", unit="deg", array=np.array([1.0])),
        fits.Column(name="dec", format="D", unit="deg", array=np.array([2.0]))])
    hdu.header["TCOMM1"] = LONG  # longer than a card: written with CONTINUE
    hdu.writeto(path)
    assert b"CONTINUE" in path.read_bytes()
    table = ingest_files(store, [path], "survey", "cont")
    assert table.column("ra").description == LONG
