"""The query path's fixed cost, in process (no HTTP): ``QueryService.prepare`` (scope,
translation, table lease) and ``execute`` (engine, VOTable writer, audit) of small
queries, as an anonymous caller.

    python bench/query_path.py [--rows 2000000] [--repeat 400]

Uses the data directory of bench/tap.py (built on first use) through a copy, so that
nothing the server keeps there changes. Prints the median and p95 of each query after
a warm-up. Compare two trees by running it with ``PYTHONPATH=<tree>/src``, alternated.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tap import prepare  # noqa: E402

QUERIES = {
    "TOP 1": "SELECT TOP 1 source_id FROM bench.synthetic",
    "cone r=0.05 deg": "SELECT source_id, ra, dec FROM bench.synthetic WHERE 1 = CONTAINS("
                       "POINT('ICRS', ra, dec), CIRCLE('ICRS', 45.0, 10.0, 0.05))",
    "TAP_SCHEMA columns": "SELECT column_name FROM TAP_SCHEMA.columns",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=400)
    args = ap.parse_args()
    source = prepare(args.rows)
    from taphouse.auth.identity import ANONYMOUS
    from taphouse.query.request import parse_query_spec
    from taphouse.server import Platform
    from taphouse.settings import Settings

    with tempfile.TemporaryDirectory(prefix="taphouse-bench-query-") as work:
        data = Path(work) / "data"
        shutil.copytree(source, data)
        platform = Platform(Settings.from_env(data_dir=str(data)))
        try:
            service = platform.query_service
            warm = max(10, args.repeat // 8)
            for label, query in QUERIES.items():
                spec = parse_query_spec({"lang": "ADQL", "query": query}, platform.settings)
                times = []
                for _ in range(args.repeat + warm):
                    t0 = time.perf_counter()
                    prepared = service.prepare(ANONYMOUS, spec)
                    b"".join(service.execute(prepared))
                    times.append(time.perf_counter() - t0)
                times = sorted(times[warm:])
                print(f"{label:20} median {1000 * statistics.median(times):7.2f} ms,"
                      f" p95 {1000 * times[int(0.95 * (len(times) - 1))]:7.2f} ms")
        finally:
            platform.stop()


if __name__ == "__main__":
    main()
