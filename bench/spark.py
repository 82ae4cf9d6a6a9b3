"""Spark backend benchmark: correctness on every benchmark query, overheads, scale-up.

    python bench/spark.py [--rows 1000000] [--partition-rows 50000] [--positions 20]
                          [--upload 10000] [--master local[2]] [--rebuild]

A synthetic Gaia-like catalogue (``taphouse demo synth``) is ingested once, partitioned
(HATS, ``--partition-rows`` rows a partition at most), into bench/data/spark_<rows>/.
Then the same ADQL runs on the embedded DuckDB engine and on Spark (``--master``, default
``local[2]``) over the same partition files, and the script prints:

* session start (JVM + SparkContext), and the first use of a table (its view);
* per-query overhead: ``SELECT 1``-like query warm, p50;
* every benchmark query of bench/tap.py, bench/adql.py and bench/hats.py (cone r = 0.05
  deg, with DISTANCE; the 1 deg2 CIRCLE, BOX and POLYGON; an uploaded crossmatch at 1
  arcsec, with positions and DISTANCE; GROUP BY over all rows, ROUND/AVG/HAVING; TOP 1,
  TOP 100 WHERE ORDER BY; a 100k-row result; TOP without ORDER BY is run ordered, its
  rows being any): Spark's rows equal DuckDB's (sorted), yes/NO per query, and both
  times (p50 where repeated);
* a crossmatch of two partitioned catalogues (the table and the same rows partitioned
  coarser), partition-aligned on Spark: per-pixel tasks, the cost of one, and its
  scale-up;
* per-partition cost: a full aggregate over the union of k partition files for several k,
  fitted as t = a + b k (b: the cost of one partition of ``--partition-rows`` rows on
  this many cores);
* a scale-up estimate for 1.8e9 rows (Gaia DR3): its method printed with it.

Figures taken on a loaded machine are worth little: say so when you copy them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
DB = "bench"
TABLE = "synthetic"
GAIA_ROWS = 1.8e9


def prepare(rows: int, partition_rows: int, rebuild: bool) -> Path:
    import shutil

    from taphouse.catalogue.hats import PartitionOptions
    from taphouse.catalogue.ingest import ingest_files
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.catalogue.synth import write_synthetic
    from taphouse.metadata import MetadataDB

    DATA.mkdir(exist_ok=True)
    parquet = DATA / f"synthetic_{rows}_1.parquet"
    if not parquet.exists():
        write_synthetic(parquet, rows, seed=1)
    data_dir = DATA / f"spark_{rows}_{partition_rows}"
    if rebuild and data_dir.exists():
        shutil.rmtree(data_dir)
    if not (data_dir / "meta.sqlite").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        store = CatalogueStore(MetadataDB(data_dir / "meta.sqlite"), data_dir / "tables")
        ingest_files(store, [parquet], DB, TABLE, progress=False,
                     partitioned=PartitionOptions(max_rows=partition_rows))
    return data_dir


def prepare_copy(data_dir: Path, rows: int, partition_rows: int) -> None:
    """The same rows again as ``{DB}.{TABLE}_b``, partitioned coarser (2.5x the rows a
    partition): the right side of a crossmatch of two partitioned catalogues whose
    partitions have different orders."""
    from taphouse.catalogue.hats import PartitionOptions
    from taphouse.catalogue.ingest import ingest_files
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB

    store = CatalogueStore(MetadataDB(data_dir / "meta.sqlite"), data_dir / "tables")
    if store.table(DB, f"{TABLE}_b") is None:
        ingest_files(store, [DATA / f"synthetic_{rows}_1.parquet"], DB, f"{TABLE}_b",
                     progress=False,
                     partitioned=PartitionOptions(max_rows=partition_rows * 5 // 2))


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def key(row: tuple) -> tuple:
    return tuple((v is None, round(v, 9) if isinstance(v, float) else v) for v in row)


class Both:
    """The same ADQL on DuckDB and on Spark over one catalogue."""

    def __init__(self, data_dir: Path, master: str) -> None:
        from taphouse.catalogue.store import CatalogueStore
        from taphouse.engine.duckdb import DuckDBEngine
        from taphouse.metadata import MetadataDB

        self.store = CatalogueStore(MetadataDB(data_dir / "meta.sqlite"), data_dir / "tables")
        self.table = self.store.table(DB, TABLE)
        self.copy = self.store.table(DB, f"{TABLE}_b")
        self.duck = DuckDBEngine(data_dir / "tables", threads=2, memory_limit="2GB")
        t0 = time.perf_counter()
        from taphouse.engine.spark import SparkBackend

        self.spark = SparkBackend(data_dir / "tables", master=master,
                                  cache_dir=data_dir / "spark-cache")
        self.start = time.perf_counter() - t0

    def scope(self, relation, upload=None):
        from taphouse.adql import Scope

        tables = {(DB, TABLE): self.table, (DB, f"{TABLE}_b"): self.copy}
        inline = {}
        if upload is not None:
            meta, data = upload
            tables[("tap_upload", meta.name)] = meta
            inline[("tap_upload", meta.name)] = data
        return Scope(tables=tables, relation=relation, inline=inline)

    def duck_rows(self, adql: str, upload=None) -> list[tuple]:
        from taphouse.adql import inline_name, translate

        t = translate(adql, self.scope(self.duck.relation, upload))
        inline = {inline_name(upload[0]): upload[1]} if upload else None
        with self.duck.cursor(inline) as cur:
            return cur.execute(t.sql).fetchall()

    def spark_rows(self, adql: str, upload=None) -> list[tuple]:
        from taphouse.adql import inline_name, translate

        t = translate(adql, self.scope(self.spark.relation, upload), dialect="spark")
        inline = {inline_name(upload[0]): upload[1]} if upload else None
        with self.spark.cursor(inline) as cur:
            batches = list(self.spark.stream(cur, t.sql))
        if not batches:
            return []
        return [tuple(r.values()) for r in pa.Table.from_batches(batches).to_pylist()]


def positions(both: Both, n: int, seed: int = 7) -> np.ndarray:
    rows = both.duck_rows(f"SELECT ra, dec FROM {DB}.{TABLE} WHERE MOD(source_id, 997) = 3")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(rows), min(n, len(rows)), replace=False)
    return np.array([rows[i] for i in pick])


def upload(pos: np.ndarray, n: int):
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(pos), n)
    ra = (pos[idx, 0] + rng.uniform(-0.5, 0.5, n) / 3600) % 360
    dec = np.clip(pos[idx, 1] + rng.uniform(-0.5, 0.5, n) / 3600, -90, 90)
    data = pa.table({"id": np.arange(n, dtype=np.int64), "ra": ra, "dec": dec})
    meta = TableMeta("tap_upload", "up", [
        ColumnMeta("id", "long"), ColumnMeta("ra", "double", unit="deg"),
        ColumnMeta("dec", "double", unit="deg")], kind="upload", ra_column="ra",
        dec_column="dec", nrows=n)
    return meta, data


def queries(pos: np.ndarray) -> dict[str, list[str]]:
    sys.path.insert(0, str(HERE))
    from tap import region_queries

    cols = "source_id, ra, dec, phot_g_mean_mag"
    cone = [f"SELECT {cols} FROM {DB}.{TABLE} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec),"
            f" CIRCLE('ICRS', {float(ra)!r}, {float(dec)!r}, 0.05))" for ra, dec in pos]
    regions = [region_queries(float(ra), float(dec)) for ra, dec in pos[:5]]
    table = f"{DB}.{TABLE}"
    return {
        "cone r=0.05": cone,
        # bench/adql.py's cone: the distance as a column
        "cone + DISTANCE": [
            f"SELECT source_id, ra, dec, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS',"
            f" {float(ra)!r}, {float(dec)!r})) AS dist FROM {table} WHERE 1=CONTAINS("
            f"POINT('ICRS', ra, dec), CIRCLE('ICRS', {float(ra)!r}, {float(dec)!r}, 0.05))"
            for ra, dec in pos[:5]],
        "circle 1 deg2": [r["circle"].replace("bench.synthetic", table) for r in regions],
        "box 1x1 deg": [r["box"].replace("bench.synthetic", f"{DB}.{TABLE}") for r in regions],
        "polygon 1 deg2": [r["polygon"].replace("bench.synthetic", f"{DB}.{TABLE}")
                           for r in regions],
        "TOP 1": [f"SELECT TOP 1 source_id FROM {DB}.{TABLE} ORDER BY source_id"],
        "GROUP BY all rows": [f"SELECT FLOOR(phot_g_mean_mag) AS g, COUNT(*) AS n FROM"
                              f" {DB}.{TABLE} GROUP BY FLOOR(phot_g_mean_mag)"],
        # bench/adql.py's "aggregate" and "simple", bench/hats.py's full-table GROUP BY
        "GROUP BY ROUND, AVG, HAVING": [
            f"SELECT ROUND(phot_g_mean_mag) AS g, COUNT(*) AS n, AVG(parallax) FROM {table}"
            " WHERE parallax > 1 GROUP BY ROUND(phot_g_mean_mag) HAVING COUNT(*) > 10"
            " ORDER BY g",
            f"SELECT ROUND(phot_g_mean_mag) AS g, COUNT(*), AVG(parallax) FROM {table}"
            " GROUP BY ROUND(phot_g_mean_mag)"],
        "TOP 100 WHERE ORDER BY": [
            f"SELECT TOP 100 source_id, ra, dec, phot_g_mean_mag FROM {table}"
            " WHERE phot_g_mean_mag < 15 ORDER BY phot_g_mean_mag"],
        "100k-row result": [f"SELECT TOP 100000 source_id, ra, dec, parallax, pmra, pmdec,"
                            f" phot_g_mean_mag FROM {DB}.{TABLE} ORDER BY source_id"],
    }


def per_partition(both: Both, ks: list[int]) -> tuple[float, float, list[tuple[int, float]]]:
    """Seconds of a full aggregate over k partition files, fitted as a + b k."""
    from taphouse.catalogue.hats import partitions

    files = list(partitions(both.table.path).files)
    points = []
    for k in ks:
        k = min(k, len(files))
        union = " UNION ALL ".join(f"SELECT phot_g_mean_mag, parallax FROM parquet.`{f}`"
                                   for f in files[:k])
        sql = f"SELECT COUNT(*), AVG(phot_g_mean_mag), MAX(parallax) FROM ({union}) AS u"
        with both.spark.cursor() as cur:
            list(both.spark.stream(cur, sql))  # warm (file statuses, footers)
            seconds, _ = timed(lambda cur=cur, sql=sql: list(both.spark.stream(cur, sql)), 3)
        points.append((k, seconds))
    k_arr = np.array([p[0] for p in points], dtype=float)
    t_arr = np.array([p[1] for p in points])
    b, a = np.polyfit(k_arr, t_arr, 1)
    return float(a), float(b), points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--partition-rows", type=int, default=50_000)
    ap.add_argument("--positions", type=int, default=20)
    ap.add_argument("--upload", type=int, default=10_000)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()

    from taphouse.catalogue.hats import partitions

    data_dir = prepare(args.rows, args.partition_rows, args.rebuild)
    prepare_copy(data_dir, args.rows, args.partition_rows)
    both = Both(data_dir, args.master)
    nparts = len(partitions(both.table.path).files)
    print(f"catalogue: {args.rows:,} rows in {nparts} partitions (<= {args.partition_rows:,}"
          f" rows each); Spark master {args.master}")
    print(f"session start (JVM + SparkContext): {both.start:.2f} s")
    first, _ = timed(lambda: both.spark_rows(f"SELECT COUNT(*) FROM {DB}.{TABLE}"))
    print(f"first use of the table (view over {nparts} files) + COUNT(*): {first:.2f} s")
    def open_cursor() -> None:
        with both.spark.cursor():
            pass

    def select_one() -> None:
        with both.spark.cursor() as cur:
            list(both.spark.stream(cur, "SELECT 1"))

    cursor_s, _ = timed(open_cursor, 5)
    one_s, _ = timed(select_one, 5)
    print(f"per-query session (newSession + service functions registered): p50"
          f" {cursor_s * 1e3:.0f} ms; SELECT 1 in it: p50 {one_s * 1e3:.0f} ms")
    overhead, _ = timed(lambda: both.spark_rows(
        f"SELECT TOP 1 source_id FROM {DB}.{TABLE} WHERE source_id < 0"), 10)
    duck_overhead, _ = timed(lambda: both.duck_rows(
        f"SELECT TOP 1 source_id FROM {DB}.{TABLE} WHERE source_id < 0"), 10)
    print(f"per-query overhead (empty result, warm, p50 of 10): Spark {overhead * 1e3:.0f} ms,"
          f" DuckDB {duck_overhead * 1e3:.1f} ms")

    pos = positions(both, args.positions)
    up = upload(pos, args.upload)
    work = queries(pos)
    work["crossmatch upload 1 arcsec"] = [
        "SELECT u.id, s.source_id FROM tap_upload.up AS u JOIN"
        f" {DB}.{TABLE} AS s ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec),"
        " CIRCLE('ICRS', u.ra, u.dec, 1.0/3600))",
        # bench/tap.py's (positions too) and bench/adql.py's (the distance too)
        "SELECT u.id, s.source_id, s.ra, s.dec, DISTANCE(POINT(u.ra, u.dec),"
        f" POINT(s.ra, s.dec)) AS d FROM tap_upload.up AS u JOIN {DB}.{TABLE} AS s ON"
        " 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ra, u.dec, 1.0/3600))"]
    work["crossmatch 2 catalogues 1\""] = [
        # integers only: a SUM of source_ids overflows Spark's bigint (DuckDB: HUGEINT)
        f"SELECT COUNT(*), COUNT(DISTINCT s.source_id), COUNT(DISTINCT b.source_id),"
        f" SUM(s.source_id - b.source_id), MAX(b.source_id) FROM {DB}.{TABLE} AS s JOIN"
        f" {DB}.{TABLE}_b AS b ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec),"
        " CIRCLE('ICRS', b.ra, b.dec, 1.0/3600))"]
    correct = True
    spark_p50: dict[str, float] = {}
    print(f"\n{'query':<28} {'n':>3} {'rows':>9} {'same':>5} {'Spark p50':>10} {'DuckDB p50':>11}")
    for name, adqls in work.items():
        uploaded = up if "upload" in name else None
        s_times, d_times, nrows, same = [], [], 0, True
        for adql in adqls:
            d_t, d_rows = timed(lambda a=adql, u=uploaded: both.duck_rows(a, u))
            s_t, s_rows = timed(lambda a=adql, u=uploaded: both.spark_rows(a, u))
            ok = sorted(map(key, s_rows)) == sorted(map(key, d_rows))
            same &= ok
            s_times.append(s_t)
            d_times.append(d_t)
            nrows += len(s_rows)
        correct &= same
        spark_p50[name] = statistics.median(s_times)
        print(f"{name:<28} {len(adqls):>3} {nrows:>9,} {'yes' if same else 'NO':>5}"
              f" {statistics.median(s_times):>9.3f}s {statistics.median(d_times):>10.3f}s")
    print(f"Spark correct on every benchmark query: {'yes' if correct else 'NO'}")

    ks = sorted({1, 2, 4, 8, nparts // 2, nparts} - {0})
    a, b, points = per_partition(both, ks)
    rows_per_part = args.rows / nparts
    print("\nfull aggregate over k partitions (warm, p50 of 3): "
          + ", ".join(f"k={k}: {t:.2f} s" for k, t in points))
    print(f"fit t = a + b k: a = {a:.3f} s (per query), b = {b * 1e3:.1f} ms per partition"
          f" of ~{rows_per_part:,.0f} rows ({b / rows_per_part * 1e9:.0f} ns per row)")
    cores = 2  # local[2]; on a cluster, the cores the query ran on
    scan = spark_p50["GROUP BY all rows"]
    per_row = max(scan - a, 1e-9) / args.rows * cores  # core-seconds per row, scanned
    gaia_parts = GAIA_ROWS / 1e6
    core_seconds = per_row * GAIA_ROWS + b * cores * gaia_parts
    print("\nscale-up estimate for 1.8e9 rows. Method: core-seconds = (GROUP BY over all"
          " rows - per-query cost a) / rows x cores x 1.8e9 (the per-row cost of a scan"
          " through the table's view, where Spark packs small files into few tasks) + b x"
          " cores x 1,800 (the measured cost of one more partition file, an upper bound"
          " on the per-file overhead, for Gaia DR3 in partitions of 1M rows as hats-import"
          " writes them); divided by the executor cores. Cones and small crossmatches read"
          " <= 4 partitions (and margins) whatever the catalogue's size.")
    print(f"  full scan (GROUP BY of one column): {core_seconds:,.0f} core-seconds:"
          f" {core_seconds / 2 / 3600:,.1f} h on 2 cores, {core_seconds / 64 / 60:,.1f} min"
          f" on 64 executor cores, {core_seconds / 512 / 60:,.1f} min on 512")
    print(f"  cone: ~ the per-query overhead {overhead * 1e3:.0f} ms + <= 4 partition files"
          f" ({4 * b:.1f} s at most by b); independent of the row count")
    pair_crossmatch(both, args, a, cores, spark_p50['crossmatch 2 catalogues 1"'])
    both.spark.close()


def pair_crossmatch(both: Both, args: argparse.Namespace, a: float, cores: int,
                    seconds: float) -> None:
    """Per-task cost of the partition-aligned crossmatch of the two catalogues, and its
    scale-up."""
    from taphouse.adql import translate
    from taphouse.catalogue.hats import partitions
    from taphouse.engine.spark import _pair_joins

    adql = (f"SELECT COUNT(*) FROM {DB}.{TABLE} AS s JOIN {DB}.{TABLE}_b AS b ON 1 ="
            " CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', b.ra, b.dec, 1.0/3600))")
    t = translate(adql, both.scope(both.spark.relation), dialect="spark")
    aligned = any("partition-aligned" in n for n in t.notes)
    with both.spark.cursor() as cur:
        df = cur.sql(_pair_joins(both.spark, cur, t.sql))
        plan = df._jdf.queryExecution().executedPlan().toString()
        tasks = cur.pair_tasks
    shuffles = plan.count("Exchange")
    nb = len(partitions(both.copy.path).files)
    per_task = max(seconds - a, 1e-9) * cores / max(tasks, 1)
    per_row = max(seconds - a, 1e-9) * cores / args.rows
    print(f"\ncrossmatch of two partitioned catalogues (the table x the same rows in {nb}"
          f" coarser partitions, 1 arcsec): partition-aligned {'yes' if aligned else 'NO'},"
          f" {tasks} per-pixel tasks, exchanges in the plan: {shuffles} (the COUNT's"
          f" final merge only; no scan of either table by Spark); p50 {seconds:.2f} s ->"
          f" {per_task * 1e3:.0f} core-ms per task of ~{args.rows / max(tasks, 1):,.0f}"
          f" left rows")
    gaia = per_row * GAIA_ROWS
    print("  scale-up: core-seconds = (p50 - per-query cost a) x cores / left rows x"
          " 1.8e9 (per-row cost of a task: reading its left partition, the right"
          " partition and margin, the cell join; linear in the rows of a task, as the"
          " tasks are independent). Caveat: the synthetic sky is ~10^4 times sparser"
          " than Gaia, so a Gaia task meets more candidate pairs per row than measured"
          f" here. Gaia x Gaia-sized: {gaia:,.0f} core-seconds, {gaia / 64 / 60:,.1f} min on"
          f" 64 executor cores, {gaia / 512 / 60:,.1f} min on 512")


if __name__ == "__main__":
    main()
