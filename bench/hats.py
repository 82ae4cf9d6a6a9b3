"""Partitioned (HATS) versus single-file catalogue: ingest, cones, crossmatch, full scan.

    python bench/hats.py [--rows 10000000] [--positions 200] [--upload 100000]
                         [--partition-rows 1000000] [--memory-limit 1GB] [--rebuild]
                         [--data bench/data/hats]

The synthetic Gaia-like Parquet file (bench/data/, git-ignored) is ingested three times
into bench/data/hats/: as one DuckDB file (``flat``), with ``--partitioned`` (``part``:
DuckDB reads the Parquet partitions) and with ``--partitioned --duckdb-copy`` (``copy``:
DuckDB reads the version's DuckDB copy), each in a child process whose peak resident
memory is measured alone; all are reused by later runs (``--rebuild`` ingests again).
Then, on one engine, warm, the same ADQL on each, the tables alternated:

* cone r = 0.05 deg at positions drawn from the catalogue: p50 / p95, and how many
  partitions each cone reads;
* a 1-arcsec crossmatch of an uploaded table (positions of catalogue rows, moved by up
  to 0.5 arcsec) against the catalogue;
* a full-table GROUP BY.

Targets (issue #24) are printed with the figures: cones and crossmatches no slower than
the single file, a cone reads at most 3 partitions, ingest peak memory no higher.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "hats"
DB = "bench"
#: The tables: single file, partitioned read as Parquet, partitioned with a DuckDB copy.
NAMES = ("flat", "part", "copy")


def child(parquet: Path, data_dir: Path, table: str, memory_limit: str,
          partition_rows: int | None) -> None:
    from dataclasses import replace

    from taphouse.catalogue.hats import PartitionOptions
    from taphouse.catalogue.ingest import ingest_files
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB

    store = CatalogueStore(MetadataDB(data_dir / "meta.sqlite"), data_dir / "tables")
    options = PartitionOptions(max_rows=partition_rows) if partition_rows else None
    if options is not None and table == "copy":
        options = replace(options, duckdb_copy=True)
    start = time.perf_counter()
    t = ingest_files(store, [parquet], DB, table, progress=False,
                     engine_memory_limit=memory_limit, partitioned=options)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": t.nrows, "seconds": seconds, "bytes": t.nbytes,
                      "peak_kib": peak}))


def ingest(parquet: Path, table: str, args) -> dict:
    cmd = [sys.executable, __file__, "--memory-limit", args.memory_limit,
           "--child", str(parquet), str(DATA), table]
    if table != "flat":
        cmd += ["--partition-rows", str(args.partition_rows)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    (DATA / f"{table}.json").write_text(json.dumps(result))
    return result


def main() -> None:
    global DATA
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--positions", type=int, default=200)
    ap.add_argument("--upload", type=int, default=100_000)
    ap.add_argument("--partition-rows", type=int, default=1_000_000)
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit of ingest")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--data", type=Path, default=DATA,
                    help="where the two tables are kept (one directory per --partition-rows)")
    ap.add_argument("--child", nargs=3, metavar=("PARQUET", "DATA_DIR", "TABLE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.child[2], args.memory_limit,
              args.partition_rows if args.child[2] != "flat" else None)
        return

    DATA = args.data
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.catalogue.synth import write_synthetic
    from taphouse.metadata import MetadataDB

    parquet = HERE / "data" / f"synthetic_{args.rows}_1.parquet"
    if not parquet.exists():
        parquet.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic(parquet, args.rows, seed=1)
    if args.rebuild:
        shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True, exist_ok=True)
    meta = MetadataDB(DATA / "meta.sqlite")
    store = CatalogueStore(meta, DATA / "tables")
    built = {}
    for name in NAMES:
        t = store.table(DB, name)
        if t is None or t.nrows != args.rows or not (DATA / f"{name}.json").exists():
            print(f"ingesting {args.rows:,} rows as {DB}.{name} ...", file=sys.stderr)
            built[name] = ingest(parquet, name, args)
        else:
            built[name] = json.loads((DATA / f"{name}.json").read_text())
    tables = {name: store.table(DB, name) for name in NAMES}
    flat, part = tables["flat"], tables["part"]
    meta.close()

    from taphouse.catalogue.hats import partitions

    nparts = len(partitions(part.path).files)
    print(f"catalogue: {args.rows:,} rows; single file {flat.nbytes / 2**20:,.0f} MiB;"
          f" partitioned {nparts} partitions, {part.nbytes / 2**20:,.0f} MiB"
          f" (with the margin); with the DuckDB copy {tables['copy'].nbytes / 2**20:,.0f} MiB")
    print("\n== ingest (child process each; peak = its ru_maxrss) ==")
    for name in NAMES:
        r = built[name]
        print(f"  {name:<5} {r['seconds']:7.1f} s  {r['rows'] / r['seconds']:>10,.0f} rows/s"
              f"  peak {r['peak_kib'] / 2**20:.2f} GiB")
    mem_ok = all(built[n]["peak_kib"] <= built["flat"]["peak_kib"] * 1.05 for n in NAMES)

    from taphouse.engine import DuckDBEngine

    engine = DuckDBEngine(DATA / "tables", threads=2, memory_limit="4GB",
                          temp_dir=DATA / "tmp")
    cone, most = bench_cones(engine, tables, args)
    xm = bench_crossmatch(engine, tables, args)
    lxm, how = bench_local_crossmatch(engine, tables, args)
    agg = bench_aggregate(engine, tables)

    print("\n== targets (part: DuckDB reads the Parquet; copy: --duckdb-copy) ==")
    for name in ("part", "copy"):
        _target(f"{name}: cone p50 no slower than single file",
                cone[name] <= cone["flat"] * 1.10,
                f"{cone[name]:.2f} ms vs {cone['flat']:.2f} ms")
    _target("a cone reads <= 3 partitions", most <= 3, f"at most {most}")
    for name in ("part", "copy"):
        _target(f"{name}: crossmatch no slower than single file",
                xm[name] <= xm["flat"] * 1.10, f"{xm[name]:.2f} s vs {xm['flat']:.2f} s")
        _target(f"{name}: crossmatch of a field, partition by partition with the margin,"
                " no slower", lxm[name] <= lxm["flat"] * 1.10 and "partition by partition"
                in how[name], f"{lxm[name]:.3f} s vs {lxm['flat']:.3f} s")
    _target("ingest peak memory no higher", mem_ok, " vs ".join(
        f"{built[n]['peak_kib'] / 2**20:.2f} GiB ({n})" for n in NAMES))
    print("  (full-table GROUP BY: " + ", ".join(f"{n} {agg[n]:.2f} s" for n in NAMES) + ")")


def _target(what: str, ok: bool, detail: str) -> None:
    print(f"  [{'met' if ok else 'NOT met'}] {what}: {detail}")


def _scope(engine, *tables, upload=None):
    from taphouse.adql.scope import Scope
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    up = TableMeta("tap_upload", "xm", [ColumnMeta("uid", "long"),
                                        ColumnMeta("ra", "double", unit="deg"),
                                        ColumnMeta("dec", "double", unit="deg")],
                   kind="upload", nrows=0 if upload is None else upload.num_rows)
    inline = {("tap_upload", "xm"): upload} if upload is not None else {}
    return Scope({**{(t.database, t.name): t for t in tables}, ("tap_upload", "xm"): up},
                 engine.relation, inline=inline)


def _run(engine, sql, upload=None) -> int:
    inline = {"_inline_tap_upload_xm": upload} if upload is not None else None
    with engine.cursor(inline) as cur:
        return len(cur.execute(sql).fetchall())


def _positions(engine, table, n: int) -> list[tuple[float, float]]:
    with engine.cursor() as cur:
        step = max(1, table.nrows // n)
        return cur.execute(
            f"SELECT ra, dec FROM {engine.relation(table)} WHERE hash(source_id) % {step} = 0"
            f" ORDER BY source_id LIMIT {n}").fetchall()


def bench_cones(engine, tables, args) -> tuple[dict[str, float], int]:
    from taphouse.adql import translate
    from taphouse.catalogue.hats import partitions

    scope = _scope(engine, *tables.values())
    pos = _positions(engine, tables["flat"], args.positions)
    print(f"\n== cone r=0.05 deg, {len(pos)} positions from the catalogue, warm,"
          " the tables alternated ==")
    cone = ("SELECT source_id, ra, dec, phot_g_mean_mag FROM bench.{t} WHERE 1=CONTAINS("
            "POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra!r}, {dec!r}, 0.05))")
    files = partitions(tables["part"].path).files
    sqls = {name: [translate(cone.format(t=name, ra=ra, dec=dec), scope).sql
                   for ra, dec in pos] for name in tables}
    reads = [sum(1 for f in files if f"'{f}'" in s) for s in sqls["part"]]
    for name in sqls:
        for sql in sqls[name]:
            _run(engine, sql)
    times: dict[str, list[float]] = {name: [] for name in tables}
    rows = dict.fromkeys(times, 0)
    for i in range(len(pos)):
        for name in _order(list(tables), i):
            t0 = time.perf_counter()
            rows[name] += _run(engine, sqls[name][i])
            times[name].append((time.perf_counter() - t0) * 1000)
    result = {}
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=20)
        result[name] = statistics.median(ts)
        print(f"  {name:<5} p50 {result[name]:6.2f} ms  p95 {q[18]:6.2f} ms"
              f"  ({rows[name] / len(pos):.1f} rows per cone)")
    print(f"  partitions read per cone (part): mean {statistics.mean(reads):.2f},"
          f" max {max(reads)} (of {len(files)}); copy: {_parquet_reads(sqls['copy'])}"
          " Parquet files read")
    return result, max(reads)


def _order(names: list[str], i: int) -> list[str]:
    """The tables in a different order at each round (a rotation, reversed every other)."""
    k = i % len(names)
    turned = names[k:] + names[:k]
    return turned if i % 2 else turned[::-1]


def _parquet_reads(sqls: list[str]) -> int:
    return sum(s.upper().count(".PARQUET'") for s in sqls)


def _upload_positions(engine, flat, n):
    import numpy as np
    import pyarrow as pa

    pos = np.array(_positions(engine, flat, n))
    rng = np.random.default_rng(5)
    jitter = rng.uniform(-0.5, 0.5, (len(pos), 2)) / 3600
    ra = (pos[:, 0] + jitter[:, 0] / np.cos(np.radians(pos[:, 1])).clip(0.01)) % 360
    dec = np.clip(pos[:, 1] + jitter[:, 1], -90, 90)
    return pa.table({"uid": np.arange(len(pos), dtype=np.int64), "ra": ra, "dec": dec})


XMATCH = ("SELECT u.uid, s.source_id FROM TAP_UPLOAD.xm AS u JOIN bench.{t} AS s ON"
          " 1=CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ra, u.dec, 1./3600))")


def bench_crossmatch(engine, tables, args) -> dict[str, float]:
    from taphouse.adql import translate

    upload = _upload_positions(engine, tables["flat"], args.upload)
    scope = _scope(engine, *tables.values(), upload=upload)
    print(f"\n== crossmatch, {upload.num_rows:,} uploaded positions, 1 arcsec ==")
    sqls = {name: translate(XMATCH.format(t=name), scope).sql for name in tables}
    return _alternated(engine, sqls, upload, "pairs")


def bench_local_crossmatch(engine, tables, args) -> tuple[dict[str, float], dict[str, str]]:
    """An upload of positions in one field (catalogue rows within 1 deg of a point,
    moved): the partitioned table is matched partition by partition with its margin."""
    import numpy as np
    import pyarrow as pa

    from taphouse.adql import translate

    with engine.cursor() as cur:
        pos = np.array(cur.execute(
            f"SELECT ra, dec FROM {engine.relation(tables['flat'])} WHERE dec BETWEEN 29"
            " AND 31 AND ra BETWEEN 149 AND 151.3 LIMIT 20000").fetchall())
    rng = np.random.default_rng(6)
    jitter = rng.uniform(-0.5, 0.5, (len(pos), 2)) / 3600
    upload = pa.table({"uid": np.arange(len(pos), dtype=np.int64),
                       "ra": (pos[:, 0] + jitter[:, 0] / np.cos(np.radians(pos[:, 1]))) % 360,
                       "dec": pos[:, 1] + jitter[:, 1]})
    scope = _scope(engine, *tables.values(), upload=upload)
    print(f"\n== crossmatch, {len(pos):,} uploaded positions in a 2x2 deg field, 1 arcsec ==")
    translated = {name: translate(XMATCH.format(t=name), scope) for name in tables}
    how = {name: "; ".join(n for n in t.notes if "crossmatch" in n)
           for name, t in translated.items()}
    for name in ("part", "copy"):
        print(f"  plan ({name}): {how[name]}")
    times = _alternated(engine, {k: v.sql for k, v in translated.items()}, upload, "pairs")
    return times, how


def _alternated(engine, sqls: dict[str, str], upload, what: str, n: int = 6
                ) -> dict[str, float]:
    """Median seconds of each query, run alternately (a loaded machine slows all)."""
    times: dict[str, list[float]] = {name: [] for name in sqls}
    counts = {}
    for sql in sqls.values():
        _run(engine, sql, upload)
    for i in range(n):
        for name in _order(list(sqls), i):
            t0 = time.perf_counter()
            counts[name] = _run(engine, sqls[name], upload)
            times[name].append(time.perf_counter() - t0)
    out = {name: statistics.median(ts) for name, ts in times.items()}
    for name in sqls:
        print(f"  {name:<5} {out[name]:6.3f} s  ({counts[name]:,} {what})")
    return out


def bench_aggregate(engine, tables) -> dict[str, float]:
    from taphouse.adql import translate

    scope = _scope(engine, *tables.values())
    print("\n== full-table GROUP BY ==")
    sqls = {name: translate(f"SELECT ROUND(phot_g_mean_mag) AS g, COUNT(*), AVG(parallax)"
                            f" FROM bench.{name} GROUP BY ROUND(phot_g_mean_mag)", scope).sql
            for name in tables}
    return _alternated(engine, sqls, None, "groups")


if __name__ == "__main__":
    main()
