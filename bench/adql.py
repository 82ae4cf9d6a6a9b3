"""ADQL translation and spatial query benchmark on a 10M-row synthetic catalogue.

Run: ``python bench/adql.py [--rows N] [--positions N] [--upload N]``. The catalogue is
built once (deterministic, Gaia-like, sorted by HEALPix index) under ``bench/data/``
and reused. Prints, each next to its full-scan equivalent:

* translation time of typical ADQL queries,
* cone search (r = 0.05 deg) p50/p95 over positions drawn from the catalogue, warm,
* a 1-arcsec crossmatch of an uploaded table against the catalogue,
* regions of 1 square degree: a CIRCLE, a 1x1 degree BOX and a 5-vertex POLYGON
  (p50/p95 over positions from the catalogue; target: BOX and POLYGON within 2x of the
  CIRCLE).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pyarrow as pa

from taphouse.adql.scope import Scope
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
    ap.add_argument("--only", choices=["translate", "cone", "crossmatch", "regions"],
                    action="append",
                    help="run only these parts (repeatable)")
    args = ap.parse_args()
    engine, table = open_catalogue(args.rows)
    if args.build_only:
        return
    run(engine, table, args)


QUERIES = {
    "simple": "SELECT TOP 100 source_id, ra, dec, phot_g_mean_mag FROM gaiasim.source "
              "WHERE phot_g_mean_mag < 15 ORDER BY phot_g_mean_mag",
    "cone": "SELECT source_id, ra, dec, DISTANCE(POINT('ICRS', ra, dec), "
            "POINT('ICRS', 56.75, 24.12)) AS dist FROM gaiasim.source WHERE 1=CONTAINS("
            "POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 0.05))",
    "aggregate": "SELECT ROUND(phot_g_mean_mag) AS g, COUNT(*) AS n, AVG(parallax) "
                 "FROM gaiasim.source WHERE parallax > 1 GROUP BY ROUND(phot_g_mean_mag) "
                 "HAVING COUNT(*) > 10 ORDER BY g",
    "crossmatch": "SELECT u.uid, s.source_id, DISTANCE(POINT(u.ra, u.dec), POINT(s.ra, s.dec))"
                  " AS d FROM TAP_UPLOAD.xm AS u JOIN gaiasim.source AS s ON 1=CONTAINS("
                  "POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ra, u.dec, 1./3600))",
}


def _scope(engine: DuckDBEngine, table: TableMeta, upload: pa.Table | None = None) -> Scope:
    t = table
    up = TableMeta("tap_upload", "xm", [ColumnMeta("uid", "long"),
                                        ColumnMeta("ra", "double", unit="deg"),
                                        ColumnMeta("dec", "double", unit="deg")],
                   kind="upload", nrows=0 if upload is None else upload.num_rows)
    inline = {("tap_upload", "xm"): upload} if upload is not None else {}
    return Scope({(DB, TABLE): t, ("tap_upload", "xm"): up}, engine.relation, inline=inline)


def _median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _run_sql(engine, sql, upload=None) -> int:
    inline = {"_inline_tap_upload_xm": upload} if upload is not None else None
    with engine.cursor(inline) as cur:
        return len(cur.execute(sql).fetchall())


def run(engine: DuckDBEngine, table: TableMeta, args) -> None:

    print(f"catalogue: {table.nrows:,} rows, {table.nbytes / 1e6:.0f} MB, sorted by HEALPix")
    scope = _scope(engine, table, pa.table({"uid": [1], "ra": [1.0], "dec": [1.0]}))
    parts = set(args.only or ["translate", "cone", "crossmatch", "regions"])
    if "translate" in parts:
        _bench_translation(scope)
    if "cone" in parts:
        _bench_cone(engine, table, scope, args)
    if "crossmatch" in parts:
        _bench_crossmatch(engine, table, args)
    if "regions" in parts:
        _bench_regions(engine, table, scope, args)


def _bench_translation(scope: Scope) -> None:
    from taphouse.adql import parse, translate

    print("\n== translation (median of 200) ==")
    for name, q in QUERIES.items():
        translate(q, scope)
        ms = _median_ms(lambda q=q: translate(q, scope, maxrec=100_000), 200)
        parse_ms = _median_ms(lambda q=q: parse(q), 200)
        print(f"  {name:<11} translate {ms:6.2f} ms   (sqlglot parse alone {parse_ms:5.2f} ms)")
    # cones at new positions each time: the HEALPix ranges are computed every time
    cones = [QUERIES["cone"].replace("56.75", f"{i * 1.7 % 360:.4f}") for i in range(200)]
    times = []
    for q in cones:
        t0 = time.perf_counter()
        translate(q, scope, maxrec=100_000)
        times.append((time.perf_counter() - t0) * 1000)
    print(f"  cone, 200 new positions: translate {statistics.median(times):6.2f} ms")


def _bench_cone(engine: DuckDBEngine, table: TableMeta, scope: Scope, args) -> None:
    from taphouse.adql import translate

    print(f"\n== cone search r=0.05 deg, {args.positions} positions from the catalogue ==")
    with engine.cursor() as cur:
        step = max(1, table.nrows // args.positions)
        pos = cur.execute(
            f"SELECT ra, dec FROM {engine.relation(table)} WHERE source_id % {step} = 0 "
            f"ORDER BY source_id LIMIT {args.positions}").fetchall()
    cone = ("SELECT source_id, ra, dec, phot_g_mean_mag FROM gaiasim.source WHERE 1=CONTAINS("
            "POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra!r}, {dec!r}, 0.05))")
    sqls = [translate(cone.format(ra=ra, dec=dec), scope).sql for ra, dec in pos]
    for sql in sqls:  # warm up
        _run_sql(engine, sql)
    times, nrows = [], 0
    for sql in sqls:
        t0 = time.perf_counter()
        nrows += _run_sql(engine, sql)
        times.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(times, n=20)
    print(f"  HEALPix ranges: p50 {statistics.median(times):6.2f} ms  p95 {q[18]:6.2f} ms"
          f"  ({nrows / len(sqls):.1f} rows per cone)")
    slow = [translate(cone.format(ra=ra, dec=dec), scope, spatial_index=False).sql
            for ra, dec in pos[:5]]
    _run_sql(engine, slow[0])
    slow_times = []
    for sql in slow:
        t0 = time.perf_counter()
        _run_sql(engine, sql)
        slow_times.append((time.perf_counter() - t0) * 1000)
    print(f"  full scan:      p50 {statistics.median(slow_times):6.2f} ms  (5 positions)")



def _bench_crossmatch(engine: DuckDBEngine, table: TableMeta, args) -> None:
    from taphouse.adql import translate

    print(f"\n== crossmatch {args.upload:,} x {table.nrows:,}, radius 1 arcsec ==")
    with engine.cursor() as cur:
        every = max(1, table.nrows // args.upload)
        upload = cur.sql(
            f"SELECT row_number() OVER (ORDER BY source_id) AS uid, "
            f"ra + (CAST(hash(source_id) % 1000 AS BIGINT) - 500) / 3600e3 AS ra, "
            f"dec + (CAST(hash(source_id + 1) % 1000 AS BIGINT) - 500) / 3600e3 AS dec "
            f"FROM {engine.relation(table)} WHERE hash(source_id + 3) % {every} = 0 "
            f"LIMIT {args.upload}").to_arrow_table()
    xscope = _scope(engine, table, upload)
    t0 = time.perf_counter()
    tr = translate(QUERIES["crossmatch"], xscope)
    tt = (time.perf_counter() - t0) * 1000
    _run_sql(engine, tr.sql, upload)  # warm
    t0 = time.perf_counter()
    n = _run_sql(engine, tr.sql, upload)
    xt = time.perf_counter() - t0
    print(f"  HEALPix join:  {xt:6.3f} s  ({n:,} pairs from {upload.num_rows:,} rows;"
          f" translation {tt:.2f} ms)")
    few = upload.slice(0, 10)
    slow_sql = translate(QUERIES["crossmatch"], _scope(engine, table, few),
                         spatial_index=False).sql
    t0 = time.perf_counter()
    _run_sql(engine, slow_sql, few)
    st = time.perf_counter() - t0
    print(f"  nested loop:   {st:6.3f} s for 10 rows -> {st * upload.num_rows / 10:,.0f} s "
          f"extrapolated to {upload.num_rows:,}")



def region_queries(ra: float, dec: float) -> dict[str, str]:
    """ADQL for regions of about 1 square degree centred on (ra, dec)."""
    import math

    r = math.sqrt(1 / math.pi)  # a circle of 1 square degree
    # a regular pentagon of 1 square degree: area = 5/2 R^2 sin(72 deg)
    big_r = math.sqrt(2 / (5 * math.sin(math.radians(72))))
    cosd = max(math.cos(math.radians(dec)), 1e-6)
    verts = []
    for k in range(5):
        a = math.radians(90 + 72 * k)
        verts += [(ra + big_r * math.cos(a) / cosd) % 360,
                  max(-90.0, min(90.0, dec + big_r * math.sin(a)))]
    cols = "SELECT source_id, ra, dec, phot_g_mean_mag FROM gaiasim.source WHERE "
    return {
        "circle": cols + f"1=CONTAINS(POINT(ra, dec), CIRCLE({ra!r}, {dec!r}, {r!r}))",
        "box": cols + f"1=CONTAINS(POINT(ra, dec), BOX({ra!r}, {dec!r}, 1, 1))",
        "polygon": cols + "1=CONTAINS(POINT(ra, dec), POLYGON("
                   + ", ".join(repr(round(v, 6)) for v in verts) + "))",
    }


def _bench_regions(engine: DuckDBEngine, table: TableMeta, scope: Scope, args) -> None:
    from taphouse.adql import translate

    n = max(20, args.positions // 4)
    print(f"\n== regions of 1 square degree, {n} positions (|dec| < 80) ==")
    with engine.cursor() as cur:
        pos = cur.execute(
            f"SELECT ra, dec FROM {engine.relation(table)} WHERE abs(dec) < 80 "
            f"AND source_id % 997 = 0 ORDER BY hash(source_id) LIMIT {n}").fetchall()
    results = {}
    for kind in ("circle", "box", "polygon"):
        times, rows, trans = [], 0, []
        for ra, dec in pos:
            q = region_queries(ra, dec)[kind]
            t0 = time.perf_counter()
            sql = translate(q, scope).sql
            trans.append((time.perf_counter() - t0) * 1000)
            _run_sql(engine, sql)  # warm
            t0 = time.perf_counter()
            rows += _run_sql(engine, sql)
            times.append((time.perf_counter() - t0) * 1000 + trans[-1])
        q95 = statistics.quantiles(times, n=20)[18]
        results[kind] = statistics.median(times)
        print(f"  {kind:<8} p50 {results[kind]:7.2f} ms  p95 {q95:7.2f} ms  "
              f"(translate p50 {statistics.median(trans):5.2f} ms, "
              f"{rows / len(pos):.0f} rows per region)")
    for kind in ("box", "polygon"):
        ratio = results[kind] / results["circle"]
        print(f"  {kind} / circle: {ratio:.2f}x (target <= 2x: "
              f"{'met' if ratio <= 2 else 'MISSED'})")


if __name__ == "__main__":
    main()
