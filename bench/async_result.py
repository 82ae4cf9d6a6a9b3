"""Async result benchmark: what keeping a logged-in user's result as mydb.job_<id> costs.

    python bench/async_result.py [--rows 2000000] [--result-rows 1000000] [--repeat 3]
                                 [--format votable|parquet|...] [--client]

On the synthetic catalogue of bench/tap.py (``bench.synthetic``, prepared the same way),
with ``taphouse serve`` in a subprocess: async jobs (UWS over HTTP, PHASE=RUN, WAIT
polling) of ``SELECT TOP n`` positional columns, run alternately by an anonymous caller
(the result file only) and by a logged-in user (the result file and the job_<id> table,
sorted by HEALPix index), from creating the job to the last byte of its result. Prints
the median of each, the difference (the price of the stored table) and how each run
split into the job (creation to COMPLETED) and the download. ``--client``: also
``client.query(..., output="pandas")`` of the same rows with the taphouse client,
logged in (the [perf] target: <= 3 s), split into job, download and conversion.
Every job is deleted after its run (its job_<id> table with it: the bench user's quota
would otherwise fill up over runs, and a job whose table no longer fits is faster).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from serving import serve  # noqa: E402

import tap as tapbench  # noqa: E402  (bench/tap.py: prepare, PASSWORD)


def run_job(client: httpx.Client, base: str, query: str, rows: int,
            fmt: str = "votable") -> tuple[float, float]:
    """(seconds to the last byte of the result, of which until the job was COMPLETED)."""
    t0 = time.perf_counter()
    r = client.post(base + "/tap/async", data={"LANG": "ADQL", "QUERY": query,
                                               "MAXREC": str(rows), "PHASE": "RUN",
                                               "RESPONSEFORMAT": fmt},
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
    done = time.perf_counter() - t0
    with client.stream("GET", job + "/results/result") as resp:
        for _ in resp.iter_bytes():
            pass
    secs = time.perf_counter() - t0
    client.delete(job, follow_redirects=False)
    return secs, done


def client_query(base: str, query: str, rows: int, repeat: int) -> None:
    """``client.query(..., output="pandas")`` logged in, split into its parts."""
    import pandas  # noqa: F401  (imported before timing: a notebook has it already)

    import taphouse

    client = taphouse.connect(base, interactive=False, progress=False)
    client.login("bench", tapbench.PASSWORD)
    client.query("SELECT TOP 10 * FROM bench.synthetic", output="pandas")  # warm
    totals = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        frame = client.query(query, maxrec=rows, output="pandas")
        totals.append(time.perf_counter() - t0)
        client.job(frame.attrs["job_id"]).delete()
    parts = []
    for _ in range(repeat):  # the same, step by step (Client.query's own steps)
        t0 = time.perf_counter()
        job = client.submit(query, maxrec=rows, responseformat="parquet")
        job.wait()
        t1 = time.perf_counter()
        content = job._download(None)
        t2 = time.perf_counter()
        job._download = lambda timeout, c=content: c  # type: ignore[method-assign]
        job.results(output="pandas")
        t3 = time.perf_counter()
        job.delete()
        parts.append((t1 - t0, t2 - t1, t3 - t2))
    job_s, down_s, conv_s = (statistics.median(p[i] for p in parts) for i in range(3))
    print(f"taphouse client.query {rows} rows -> pandas (logged in): median"
          f" {statistics.median(totals):.2f} s ({', '.join(f'{t:.2f}' for t in totals)};"
          f" target <= 3 s); step by step: job {job_s:.2f} s, download {down_s:.2f} s,"
          f" Parquet -> pandas {conv_s:.2f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--result-rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--format", default="votable",
                    help="RESPONSEFORMAT of the jobs (the client asks for parquet)")
    ap.add_argument("--client", action="store_true",
                    help="also time client.query(..., output='pandas') logged in")
    args = ap.parse_args()
    data_dir = tapbench.prepare(args.rows)
    server, base = serve(data_dir, {"TAPHOUSE_MAXREC_LIMIT": "20000000",
                                    "TAPHOUSE_WORKERS": "1"})
    query = (f"SELECT TOP {args.result_rows} source_id, ra, dec, parallax, pmra, pmdec,"
             " phot_g_mean_mag, bp_rp FROM bench.synthetic")
    try:
        anon = httpx.Client(timeout=600)
        user = httpx.Client(timeout=600, auth=("bench", tapbench.PASSWORD))
        run_job(anon, base, query, args.result_rows, args.format)  # warm
        times: dict[str, list[tuple[float, float]]] = {"anonymous": [], "logged-in": []}
        for _ in range(args.repeat):
            for who, client in (("anonymous", anon), ("logged-in", user)):
                times[who].append(run_job(client, base, query, args.result_rows,
                                          args.format))
        med = {k: statistics.median(t for t, _ in v) for k, v in times.items()}
        for k, v in times.items():
            print(f"async {args.result_rows} rows ({args.format}), {k}: median"
                  f" {med[k]:.2f} s ({', '.join(f'{t:.2f}' for t, _ in v)}; job done after"
                  f" {statistics.median(d for _, d in v):.2f} s)", flush=True)
        print(f"job_<id> table costs {med['logged-in'] - med['anonymous']:+.2f} s"
              f" ({med['logged-in'] / med['anonymous']:.2f}x)", flush=True)
        if args.client:
            client_query(base, query, args.result_rows, args.repeat)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
