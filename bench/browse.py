"""Metadata requests of a service with many tables (what the web page's table browser
and search ask for, and, for comparison, VOSI and a trivial query).

Run: ``python bench/browse.py [--tables 10000] [--repeat 5]``. Builds a temporary data
directory with that many one-row tables in databases of 1,000 (published through the
catalogue store, every version a hard link to one small file), starts a server in this
process and prints the median and worst time of each request, warm.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import publish_tiny_tables, start_live  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taphouse-bench-browse-") as work:
        root = Path(work)
        server = start_live(root / "data")
        try:
            t0 = time.perf_counter()
            databases = [f"survey{i:02d}" for i in range((args.tables + 999) // 1000)]
            for i, db in enumerate(databases):
                publish_tiny_tables(server.platform.catalogue, db,
                                    min(1000, args.tables - 1000 * i), root)
            print(f"{args.tables:,} tables published in {time.perf_counter() - t0:.1f} s")
            requests = [
                ("GET /api/databases", "get", "/api/databases", None),
                ("a database's 1,000 tables", "get", f"/api/databases/{databases[0]}/tables", None),
                ("one table with columns", "get", f"/api/tables/{databases[0]}/t00042", None),
                ("search a description", "get", "/api/tables?q=field%20742%20of", None),
                ("search every column (200 found)", "get", "/api/tables?q=magnitude", None),
                ("VOSI /tap/tables?detail=min", "get", "/tap/tables?detail=min", None),
                ("VOSI /tap/tables/<table>", "get", f"/tap/tables/{databases[0]}.t00042", None),
                ("a one-row sync query", "post", "/tap/sync",
                 {"LANG": "ADQL", "QUERY": f"SELECT * FROM {databases[0]}.t00042",
                  "RESPONSEFORMAT": "csv"}),
            ]
            with httpx.Client(base_url=server.url, timeout=300) as client:
                print(f"{'request':36} {'median':>9} {'worst':>9} {'bytes':>10}")
                for label, method, path, data in requests:
                    times = []
                    size = 0
                    for _ in range(args.repeat + 1):  # the first warms caches
                        t = time.perf_counter()
                        r = getattr(client, method)(path, **({"data": data} if data else {}))
                        times.append(time.perf_counter() - t)
                        r.raise_for_status()
                        size = len(r.content)
                    warm = times[1:]
                    print(f"{label:36} {1000 * statistics.median(warm):7.0f} ms"
                          f" {1000 * max(warm):7.0f} ms {size:10,}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
