"""Storage benchmark: backup and restore throughput, a maintenance round over many
retired versions, the byte-quota watcher's cost on a write, start-up permission checks.

    python bench/storage.py [--rows 2000000] [--versions 2000] [--files 20000]

Works in a fresh data directory under bench/data/ (git-ignored), removed at the end.
Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _best(fn, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--versions", type=int, default=2000)
    parser.add_argument("--files", type=int, default=20_000)
    args = parser.parse_args()

    from taphouse.catalogue.ingest import ingest_files
    from taphouse.catalogue.model import ColumnMeta, TableMeta
    from taphouse.catalogue.store import CatalogueStore, Retention
    from taphouse.catalogue.synth import write_synthetic
    from taphouse.engine.duckdb import DuckDBEngine
    from taphouse.metadata import MetadataDB
    from taphouse.settings import Settings
    from taphouse.storage.backup import backup, restore
    from taphouse.storage.datadir import TmpArea, enforce_permissions

    (HERE / "data").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="taphouse-bench-storage-", dir=HERE / "data"))
    try:
        settings = Settings(data_dir=work / "data")
        meta = MetadataDB(settings.meta_path)
        store = CatalogueStore(meta, settings.tables_dir)
        parquet = work / "synthetic.parquet"
        write_synthetic(parquet, args.rows, seed=1)
        table = ingest_files(store, [parquet], "bench", "synthetic")
        parquet.unlink()
        mb = table.nbytes / 1e6

        start = time.perf_counter()
        report = backup(settings, work / "backup")
        seconds = time.perf_counter() - start
        print(f"backup: {report.bytes / 1e6:.0f} MB ({args.rows:,} rows) in {seconds:.2f} s"
              f" = {report.bytes / 1e6 / seconds:.0f} MB/s (SHA-256 and fsync included)")
        start = time.perf_counter()
        report = restore(work / "backup", work / "restored")
        seconds = time.perf_counter() - start
        print(f"restore: {report.bytes / 1e6:.0f} MB in {seconds:.2f} s"
              f" = {report.bytes / 1e6 / seconds:.0f} MB/s (checked, then copied)")

        area = TmpArea(settings.tmp_dir)
        engine = DuckDBEngine(settings.tables_dir, threads=2, memory_limit="1GB",
                              temp_dir=area.path)
        source = engine.relation(table)
        sql = f"SELECT * FROM {source}"

        def write(limit: int | None) -> None:
            path = store.new_version_path("bench", "copy")
            engine.write_table(sql, path, max_bytes=limit)
            path.unlink()

        plain = _best(lambda: write(None))
        watched = _best(lambda: write(10**12))
        print(f"write of {mb:.0f} MB: {plain:.2f} s; with the byte-quota watcher"
              f" {watched:.2f} s ({100 * (watched - plain) / plain:+.1f} %)")

        store.create_database("many")
        for i in range(args.versions):
            path = store.new_version_path("many", "t")
            engine.write_table(f"SELECT {i} AS x", path)
            store.publish(TableMeta("many", "t", [ColumnMeta("x", "long")], nrows=1), path)
        gc_store = CatalogueStore(meta, settings.tables_dir, Retention(grace=3600.0))
        idle = _best(gc_store.collect_garbage)
        gc_store.retention = Retention(grace=0.0)
        start = time.perf_counter()
        removed = gc_store.collect_garbage()
        busy = time.perf_counter() - start
        print(f"maintenance round, {args.versions} retired versions: nothing due"
              f" {idle * 1000:.0f} ms; deleting {removed} files {busy:.2f} s")

        folder = settings.jobs_dir / "bench"
        folder.mkdir(parents=True)
        for i in range(args.files):
            (folder / f"f{i}").write_bytes(b"")
        seconds = _best(lambda: enforce_permissions(settings.data_dir))
        print(f"start-up permission check over {args.files:,} files: {seconds * 1000:.0f} ms")
        area.close()
        meta.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
