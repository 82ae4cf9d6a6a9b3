"""Ingest benchmark: a synthetic Gaia-like Parquet file into a fresh data directory.

    python bench/ingest.py [--rows 10000000] [--memory-limit 1GB] [--keep]

The Parquet file is written once to bench/data/ (git-ignored) and reused. The ingest runs
in a child process, so its peak resident memory (``ru_maxrss`` of the child) is measured
alone; the script prints rows per second and that peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(parquet: Path, data_dir: Path, memory_limit: str) -> None:
    from taphouse.catalogue.ingest import ingest_files
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB

    store = CatalogueStore(MetadataDB(data_dir / "meta.sqlite"), data_dir / "tables")
    start = time.perf_counter()
    table = ingest_files(store, [parquet], "bench", "synthetic", progress=True,
                         engine_memory_limit=memory_limit)
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": table.nrows, "seconds": seconds, "bytes": table.nbytes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--child", nargs=2, metavar=("PARQUET", "DATA_DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.memory_limit)
        return

    from taphouse.catalogue.synth import write_synthetic

    parquet = HERE / "data" / f"synthetic_{args.rows}_{args.seed}.parquet"
    if not parquet.exists():
        start = time.perf_counter()
        write_synthetic(parquet, args.rows, seed=args.seed)
        print(f"wrote {parquet} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    data_dir = Path(tempfile.mkdtemp(prefix="taphouse-bench-", dir=HERE / "data"))
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-limit", args.memory_limit,
             "--child", str(parquet), str(data_dir)],
            stdout=subprocess.PIPE, check=True, text=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    rows, seconds = result["rows"], result["seconds"]
    print(f"rows:            {rows:,}")
    print(f"parquet size:    {parquet.stat().st_size / 2**20:,.0f} MiB")
    print(f"version file:    {result['bytes'] / 2**20:,.0f} MiB")
    print(f"ingest time:     {seconds:.1f} s")
    print(f"rows per second: {rows / seconds:,.0f}")
    print(f"peak memory:     {peak_kib / 2**20:.2f} GiB (ru_maxrss of the ingest process)")


if __name__ == "__main__":
    main()
