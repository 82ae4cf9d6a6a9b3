"""ADQL translation and spatial query benchmark on a 10M-row synthetic catalogue.

Run: ``python bench/adql.py [--rows N] [--positions N] [--upload N]``. The catalogue is
built once (deterministic, Gaia-like, sorted by HEALPix index) under ``bench/data/``
and reused. Prints, each next to its full-scan equivalent:

* translation time of typical ADQL queries,
* cone search (r = 0.05 deg) p50/p95 over positions drawn from the catalogue, warm,
* a 1-arcsec crossmatch of an uploaded table against the catalogue.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


from taphouse.adql.scope import Scope, inline_name
from taphouse.catalogue.model import ColumnMeta, TableMeta
from taphouse.catalogue.store import CatalogueStore
from taphouse.engine import DuckDBEngine
from taphouse.metadata import MetadataDB

DATA = Path(__file__).resolve().parent / "data" / "adql"
DB, TABLE = "gaiasim", "source"

COLUMNS = [
    ColumnMeta("source_id", "long", ucd="meta.id;meta.main"),
    ColumnMeta("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main"),
    ColumnMeta("dec", "double", unit="deg", ucd="pos.eq.dec;meta.main"),
    ColumnMeta("parallax", "double", unit="mas", ucd="pos.parallax"),
    ColumnMeta("pmra", "double", unit="mas/yr", ucd="pos.pm;pos.eq.ra"),
    ColumnMeta("pmdec", "double", unit="mas/yr", ucd="pos.pm;pos.eq.dec"),
    ColumnMeta("phot_g_mean_mag", "float", unit="mag", ucd="phot.mag;em.opt.G"),
    ColumnMeta("bp_rp", "float", unit="mag", ucd="phot.color"),
    ColumnMeta("healpix_index", "long", ucd="pos.healpix"),
]

# u(k): a deterministic uniform [0, 1) number per row and stream k.
_U = "(hash(i * 16 + {k}) / 18446744073709551616.0)"


def build_sql(rows: int) -> str:
    u = [_U.format(k=k) for k in range(8)]
    return f"""
    WITH p AS (
      SELECT i, 360.0 * {u[0]} AS ra, degrees(asin(2.0 * {u[1]} - 1.0)) AS dec,
             {u[2]} AS u2, {u[3]} AS u3, {u[4]} AS u4, {u[5]} AS u5, {u[6]} AS u6
      FROM range({rows}) AS r(i))
    SELECT (ivo_healpix_index(12, ra, dec) << 35) + i AS source_id, ra, dec,
           -ln(u2 + 1e-9) * 0.8 - 0.1 AS parallax,
           (u3 - 0.5) * 20.0 AS pmra, (u4 - 0.5) * 20.0 AS pmdec,
           CAST(21.0 - 9.0 * pow(u5, 3) AS REAL) AS phot_g_mean_mag,
           CAST(0.2 + 2.5 * u6 AS REAL) AS bp_rp,
           ivo_healpix_index(29, ra, dec) AS healpix_index
    FROM p"""


def open_catalogue(rows: int) -> tuple[DuckDBEngine, TableMeta]:
    DATA.mkdir(parents=True, exist_ok=True)
    meta = MetadataDB(DATA / "meta.sqlite")
    store = CatalogueStore(meta, DATA / "tables")
    engine = DuckDBEngine(DATA / "tables", threads=2, memory_limit="6GB",
                          temp_dir=DATA / "tmp")
    table = store.table(DB, TABLE)
    if table is None or table.nrows != rows:
        store.create_database(DB, "synthetic Gaia-like catalogue for benchmarks")
        path = store.new_version_path(DB, TABLE)
        t0 = time.perf_counter()
        n = engine.write_table(build_sql(rows), path, order_by="healpix_index")
        print(f"built {n:,} rows in {time.perf_counter() - t0:.1f} s -> {path}")
        table = store.publish(TableMeta(DB, TABLE, COLUMNS, ra_column="ra", dec_column="dec",
                                        healpix_column="healpix_index", nrows=n), path)
    return engine, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--positions", type=int, default=200)
    ap.add_argument("--upload", type=int, default=100_000)
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args()
    engine, table = open_catalogue(args.rows)
    if args.build_only:
        return
    run(engine, table, args)


def run(engine: DuckDBEngine, table: TableMeta, args) -> None:
    from taphouse.adql import translate  # noqa: F401
    raise NotImplementedError


if __name__ == "__main__":
    main()
