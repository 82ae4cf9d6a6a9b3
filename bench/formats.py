"""Throughput of the result writers: 1M rows x 8 Gaia-like columns, 64k-row batches.

Run: /work/venv/bin/python bench/formats.py [rows]
Prints, per format, seconds end to end (encoding all batches and consuming the chunks),
output MB and MB/s.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pyarrow as pa

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats import ResultInfo, get_writer

BATCH = 65_536


def gaia_like(n: int) -> pa.Table:
    rng = np.random.default_rng(1)
    mag = rng.uniform(3, 21, n).astype(np.float32)
    parallax = rng.normal(1, 2, n)
    return pa.table({
        "source_id": pa.array(rng.integers(0, 2**62, n, dtype=np.int64)),
        "ra": pa.array(rng.uniform(0, 360, n)),
        "dec": pa.array(np.degrees(np.arcsin(rng.uniform(-1, 1, n)))),
        "parallax": pa.array(parallax, mask=rng.random(n) < 0.2),
        "pmra": pa.array(rng.normal(0, 5, n)),
        "pmdec": pa.array(rng.normal(0, 5, n)),
        "phot_g_mean_mag": pa.array(mag),
        "ruwe": pa.array(rng.uniform(0.8, 3, n).astype(np.float32)),
    })


COLUMNS = [
    ColumnMeta("source_id", "long", ucd="meta.id;meta.main"),
    ColumnMeta("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main"),
    ColumnMeta("dec", "double", unit="deg", ucd="pos.eq.dec;meta.main"),
    ColumnMeta("parallax", "double", unit="mas", ucd="pos.parallax"),
    ColumnMeta("pmra", "double", unit="mas.yr**-1", ucd="pos.pm;pos.eq.ra"),
    ColumnMeta("pmdec", "double", unit="mas.yr**-1", ucd="pos.pm;pos.eq.dec"),
    ColumnMeta("phot_g_mean_mag", "float", unit="mag", ucd="phot.mag;em.opt"),
    ColumnMeta("ruwe", "float", ucd="stat.fit.goodness"),
]


def run(fmt: str, table: pa.Table) -> tuple[float, float, int]:
    writer = get_writer(fmt)
    info = ResultInfo(query="SELECT * FROM gaia", limit=table.num_rows)
    start = time.perf_counter()
    first = None
    size = 0
    for chunk in writer.write(table.to_batches(BATCH), COLUMNS, info):
        if first is None:
            first = time.perf_counter() - start
        size += len(chunk)
    return first or 0.0, time.perf_counter() - start, size


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    table = gaia_like(n)
    print(f"{n} rows x {table.num_columns} columns, batches of {BATCH}")
    print(f"{'format':12} {'first(s)':>9} {'total(s)':>9} {'MB':>8} {'MB/s':>8}")
    for fmt in ["votable", "votable/td", "csv", "tsv", "parquet", "json", "fits"]:
        first, total, size = run(fmt, table)
        mb = size / 1e6
        print(f"{fmt:12} {first:9.3f} {total:9.3f} {mb:8.1f} {mb / total:8.1f}")


if __name__ == "__main__":
    main()
