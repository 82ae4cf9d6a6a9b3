"""Throughput of the result writers: 1M rows x 8 Gaia-like columns, 64k-row batches.

Run: python bench/formats.py [rows]
Prints, per format, seconds end to end (encoding all batches and consuming the chunks),
output MB and MB/s, and for the VOTable serialisations and Parquet the seconds astropy
needs to read the document into a Table (what a stock pyvo user waits for after the
download: ``parse(...).get_first_table().to_table()``; Parquet via
``Table.read(format="parquet.votable")``). The default VOTable serialisation (BINARY)
was chosen on these figures.
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


def run(fmt: str, table: pa.Table) -> tuple[float, float, int, bytes]:
    writer = get_writer(fmt)
    info = ResultInfo(query="SELECT * FROM gaia", limit=table.num_rows)
    start = time.perf_counter()
    first = None
    chunks = []
    for chunk in writer.write(table.to_batches(BATCH), COLUMNS, info):
        if first is None:
            first = time.perf_counter() - start
        chunks.append(chunk)
    total = time.perf_counter() - start
    data = b"".join(chunks)
    return first or 0.0, total, len(data), data


def astropy_read(fmt: str, data: bytes) -> float:
    import io

    from astropy.io.votable import parse
    from astropy.table import Table

    start = time.perf_counter()
    if fmt == "parquet":
        Table.read(io.BytesIO(data), format="parquet.votable")
    else:
        parse(io.BytesIO(data)).get_first_table().to_table()
    return time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    table = gaia_like(n)
    print(f"{n} rows x {table.num_columns} columns, batches of {BATCH}")
    print(f"{'format':12} {'first(s)':>9} {'total(s)':>9} {'MB':>8} {'MB/s':>8}"
          f" {'astropy read(s)':>16}")
    for fmt in ["votable", "votable/b2", "votable/td", "csv", "tsv", "parquet", "json", "fits"]:
        first, total, size, data = run(fmt, table)
        mb = size / 1e6
        read = ""
        if fmt.startswith("votable") or fmt == "parquet":
            read = f"{astropy_read(fmt, data):16.3f}"
        print(f"{fmt:12} {first:9.3f} {total:9.3f} {mb:8.1f} {mb / total:8.1f} {read}")


if __name__ == "__main__":
    main()
