"""Server memory while streaming hostile results: RSS before, during and after.

    python bench/memory.py [--formats votable,csv,...] [--rows 5000] [--engine-memory 256MB]

Starts ``taphouse serve --demo`` in a subprocess with ``engine_memory_limit`` set, then
for each output format streams results built to be wide (a 99 kB string literal on every
row, as a constant and as a computed value) and large (every column of every row), and
samples the server's RSS every 20 ms. Target (issue 11): RSS <= idle + engine memory +
128 MB while streaming any single result, and back within 10 % of idle afterwards.
Prints one line per (query, format): bytes received, seconds, peak RSS over idle, RSS
after (5 s of quiet) against idle, open files.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serving import serve  # noqa: E402

DATA = HERE / "data"
FORMATS = ["votable", "votable/td", "csv", "tsv", "json", "fits", "parquet"]
LITERAL = "x" * 99_000


def queries(rows: int) -> dict[str, tuple[str, int]]:
    return {
        "wide literal": (f"SELECT TOP {rows} '{LITERAL}' AS s, source_id"
                         " FROM gaia.dr3_bright", rows),
        "wide computed": (f"SELECT TOP {rows} '{LITERAL}' || source_id AS s"
                          " FROM gaia.dr3_bright", rows),
        "all columns": ("SELECT * FROM gaia.dr3_bright", 1_000_000),
    }


class Sampler:
    """Peak RSS of a process, sampled in a thread."""

    def __init__(self, proc: psutil.Process, period: float = 0.02) -> None:
        self.proc, self.period, self.peak = proc, period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(self.period)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def quiet_rss(proc: psutil.Process, seconds: float = 5.0) -> int:
    time.sleep(seconds)
    return proc.memory_info().rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--engine-memory", default="256MB")
    parser.add_argument("--queries", default="")
    args = parser.parse_args()

    DATA.mkdir(exist_ok=True)
    server, url = serve(DATA / "memory",
                        {"TAPHOUSE_ENGINE_MEMORY_LIMIT": args.engine_memory}, demo=True,
                        log=DATA / "memory-server.log", timeout=600)
    try:
        proc = psutil.Process(server.pid)
        cold = quiet_rss(proc, 3)
        chosen = [q for q in args.queries.split(",") if q] or list(queries(args.rows))
        # "Idle" is a warm server: every query run once (tables read into the engine's
        # cache, code paths loaded), then a few quiet seconds.
        with httpx.Client(base_url=url, timeout=600) as c:
            for name in chosen:
                query, maxrec = queries(args.rows)[name]
                c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query,
                                          "MAXREC": str(maxrec), "RESPONSEFORMAT": "csv"})
        idle = quiet_rss(proc)
        limit = _bytes(args.engine_memory)
        print(f"idle RSS {idle / 2**20:.0f} MiB warm ({cold / 2**20:.0f} MiB cold);"
              f" target peak <= idle + {limit / 2**20:.0f} + 128 MiB,"
              " after within 10 % of idle")
        worst = 0
        for name in chosen:
            query, maxrec = queries(args.rows)[name]
            for fmt in args.formats.split(","):
                got = 0
                t0 = time.monotonic()
                status = "?"
                with Sampler(proc) as sampler, httpx.Client(base_url=url, timeout=600) as c:
                    try:
                        with c.stream("POST", "/tap/sync", data={
                                "LANG": "ADQL", "QUERY": query, "MAXREC": str(maxrec),
                                "RESPONSEFORMAT": fmt}) as r:
                            status = str(r.status_code)
                            for chunk in r.iter_raw(1 << 20):
                                got += len(chunk)
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                seconds = time.monotonic() - t0
                after = quiet_rss(proc)
                over = sampler.peak - idle
                worst = max(worst, over)
                print(f"{name:14s} {fmt:11s} {status:4s} {got / 2**20:8.1f} MiB"
                      f" {seconds:6.1f} s  peak idle+{over / 2**20:5.0f} MiB"
                      f"  after {100 * (after - idle) / idle:+5.1f} %"
                      f"  files {proc.num_fds()}", flush=True)
        print(f"worst peak: idle + {worst / 2**20:.0f} MiB"
              f" (target idle + {(limit + 128 * 2**20) / 2**20:.0f} MiB)")
    finally:
        server.terminate()
        server.wait(30)
    return 0


def _bytes(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20,
             "GIB": 2**30}
    t = text.strip().upper()
    for unit, factor in units.items():
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * factor)
    return int(t)


if __name__ == "__main__":
    sys.exit(main())
