"""Async result benchmark: what keeping a logged-in user's result as mydb.job_<id> costs.

    python bench/async_result.py [--rows 2000000] [--result-rows 1000000] [--repeat 3]

On the synthetic catalogue of bench/tap.py (``bench.synthetic``, prepared the same way),
with ``taphouse serve`` in a subprocess: async jobs (UWS over HTTP, PHASE=RUN, WAIT
polling) of ``SELECT TOP n`` positional columns, run alternately by an anonymous caller
(the result file only) and by a logged-in user (the result file and the job_<id> table,
sorted by HEALPix index), from creating the job to the last byte of its result. Prints
the median of each and the difference: the price of the stored table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import tap as tapbench  # noqa: E402  (bench/tap.py: prepare, free_port, PASSWORD)


def run_job(client: httpx.Client, base: str, query: str, rows: int) -> float:
    t0 = time.perf_counter()
    r = client.post(base + "/tap/async", data={"LANG": "ADQL", "QUERY": query,
                                               "MAXREC": str(rows), "PHASE": "RUN"},
                    follow_redirects=False)
    if r.status_code != 303:
        raise RuntimeError(f"job not created: HTTP {r.status_code} {r.text[:300]}")
    job = r.headers["location"]
    while True:
        phase = client.get(job + "/phase").text
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            break
        time.sleep(0.02)
    if phase != "COMPLETED":
        raise RuntimeError(client.get(job).text)
    with client.stream("GET", job + "/results/result") as resp:
        for _ in resp.iter_bytes():
            pass
    secs = time.perf_counter() - t0
    client.delete(job, follow_redirects=False)
    return secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--result-rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data_dir = tapbench.prepare(args.rows)
    port = tapbench.free_port()
    env = {**os.environ, "TAPHOUSE_MAXREC_LIMIT": "20000000", "TAPHOUSE_WORKERS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "taphouse.cli", "--data-dir",
                               str(data_dir), "serve", "--port", str(port), "--log-level",
                               "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    query = (f"SELECT TOP {args.result_rows} source_id, ra, dec, parallax, pmra, pmdec,"
             " phot_g_mean_mag, bp_rp FROM bench.synthetic")
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/tap/availability", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        anon = httpx.Client(timeout=600)
        user = httpx.Client(timeout=600, auth=("bench", tapbench.PASSWORD))
        run_job(anon, base, query, args.result_rows)  # warm
        times: dict[str, list[float]] = {"anonymous": [], "logged-in": []}
        for _ in range(args.repeat):
            times["anonymous"].append(run_job(anon, base, query, args.result_rows))
            times["logged-in"].append(run_job(user, base, query, args.result_rows))
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in times.items():
            print(f"async {args.result_rows} rows, {k}: median {med[k]:.2f} s"
                  f" ({', '.join(f'{t:.2f}' for t in v)})", flush=True)
        print(f"job_<id> table costs {med['logged-in'] - med['anonymous']:+.2f} s"
              f" ({med['logged-in'] / med['anonymous']:.2f}x)")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
