"""The HEALPix index column is internal over HTTP too: TOPCAT, taplint and pyvo see one
consistent table (TAP_SCHEMA, /tables and SELECT * agree), and "_healpix_29" can be
named."""

from __future__ import annotations

from typing import Any

import httpx
import pyvo

from taphouse.catalogue.healpix import healpix_index

COLUMNS = ["source_id", "ra", "dec", "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag",
           "from_hipparcos", "hip"]


def test_schema_tables_and_star_agree(demo_server: Any) -> None:
    service = pyvo.dal.TAPService(demo_server.tap)
    listed = service.run_sync("SELECT column_name FROM TAP_SCHEMA.columns WHERE "
                              "table_name = 'gaia.dr3_bright'").to_table()
    assert sorted(n.strip('"') for n in listed["column_name"]) == sorted(COLUMNS)
    vosi = httpx.get(demo_server.tap + "/tables/gaia.dr3_bright").text
    assert "healpix" not in vosi
    star = service.run_sync("SELECT TOP 3 * FROM gaia.dr3_bright").to_table()
    assert star.colnames == COLUMNS
    caps = httpx.get(demo_server.tap + "/capabilities").text
    assert "_healpix_29" in caps


def test_internal_column_by_name(demo_server: Any) -> None:
    service = pyvo.dal.TAPService(demo_server.tap)
    t = service.run_sync('SELECT TOP 5 ra, dec, "_healpix_29" FROM gaia.dr3_bright '
                         "ORDER BY source_id").to_table()
    assert t.colnames == ["ra", "dec", "_healpix_29"]
    index, _ = healpix_index(t["ra"].data, t["dec"].data)
    assert list(t["_healpix_29"]) == list(index)
    # the rows of the first order-0 cell, straight from the index
    by_index = service.run_sync('SELECT COUNT(*) AS n FROM gaia.dr3_bright WHERE '
                                '"_healpix_29" < 288230376151711744').to_table()
    by_cell = service.run_sync("SELECT COUNT(*) AS n FROM gaia.dr3_bright WHERE "
                               "ivo_healpix_index(0, ra, dec) = 0").to_table()
    assert by_index["n"][0] == by_cell["n"][0] > 1000
