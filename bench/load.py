"""Load benchmark: well-behaved users under anonymous abuse, with default settings.

    python bench/load.py [--clients 20] [--seconds 120] [--runs 2] [--abusers 10]

Starts ``taphouse serve --demo`` in a subprocess with the default settings (data in
bench/data/load/, the demo catalogues loaded once), creates the users, then, per run:

- ``--clients`` well-behaved logged-in users, each in a thread of its own bound to its
  own source address 127.0.0.(10+i), one request at a time with a short pause between
  them (so each stays within its per-caller limits), mixing: cone searches, ``TOP 1``
  queries (the latency target), TAP_SCHEMA reads, async jobs (created, waited for,
  fetched, deleted), uploads joined with a catalogue table, DEST writes into their own
  schema, and logins (name and password for a new token);
- one abusive anonymous client spread over ``--abusers`` addresses 127.0.0.(100+j), four
  threads per address sending slow queries (a self-join over the Gaia table) and wide
  ones (5,000 rows of a 99 kB string) back to back, plus anonymous async jobs.

A 503 to a well-behaved client counts as an error; the abuser's 503s are expected (its
callers together get at most ``anonymous_sync_share`` of the sync slots). Prints, per
run and kind of request: requests, errors, 5xx, p50 and p99 latency; the server's RSS
and open files before and after each run; jobs not in a final phase 30 s after the run
("stuck"). Targets (issue 11, 2 cores, N=20, 2 minutes): 0 errors and 0 5xx for the
well-behaved clients, TOP 1 p99 < 1 s during the abuse, RSS and open files within
+-10 % across two consecutive runs, 0 stuck jobs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import psutil

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "load"
PASSWORD = "load benchmark password"
WIDE = "SELECT TOP 5000 '" + "w" * 99_000 + "' AS s, source_id FROM gaia.dr3_bright"
SLOW = ("SELECT COUNT(*) AS n FROM gaia.dr3_bright AS a JOIN gaia.dr3_bright AS b"
        " ON a.source_id % 500 = b.source_id % 500")
FINAL = {"COMPLETED", "ERROR", "ABORTED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stats:
    """Latencies and outcomes per (group, kind), thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.errors: dict[tuple[str, str], int] = defaultdict(int)
        self.status5xx: dict[tuple[str, str], int] = defaultdict(int)
        self.refused: dict[tuple[str, str], int] = defaultdict(int)
        self.examples: dict[tuple[str, str], str] = {}

    def record(self, group: str, kind: str, seconds: float, status: int | None,
               error: str | None = None) -> None:
        key = (group, kind)
        with self.lock:
            self.times[key].append(seconds)
            if status is not None and status >= 500:
                self.status5xx[key] += 1
            if status == 503:
                self.refused[key] += 1
            if error is not None:
                self.errors[key] += 1
                self.examples.setdefault(key, error[:200])


def _timed(stats: Stats, group: str, kind: str, send, path: str, **kwargs):
    """``send(path, **kwargs)``, timed and recorded; the response if it succeeded."""
    t0 = time.monotonic()
    try:
        r = send(path, **kwargs)
    except httpx.HTTPError as exc:
        stats.record(group, kind, time.monotonic() - t0, None, f"{type(exc).__name__}: {exc}")
        return None
    good = r.status_code < 400
    stats.record(group, kind, time.monotonic() - t0, r.status_code,
                 None if good else f"HTTP {r.status_code}: {r.text[:150]}")
    return r if good else None


def _upload_table(rng: random.Random) -> bytes:
    lines = ["ra,dec"] + [f"{rng.uniform(0, 360):.6f},{rng.uniform(-60, 60):.6f}"
                          for _ in range(200)]
    return ("\n".join(lines) + "\n").encode()


def well_behaved(i: int, url: str, stop: float, stats: Stats) -> None:
    rng = random.Random(i)
    user = f"load{i:02d}"
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{10 + i}")
    with httpx.Client(base_url=url, transport=transport, timeout=120) as c:
        r = _timed(stats, "users", "login", c.post, "/auth/token",
                   data={"username": user, "password": PASSWORD})
        token = r.json()["access_token"] if r is not None else ""
        c.headers["Authorization"] = f"Bearer {token}"
        kinds = ["top1"] * 4 + ["cone"] * 4 + ["tap_schema", "async", "upload", "dest",
                                                "login"]
        while time.monotonic() < stop:
            kind = rng.choice(kinds)
            if kind == "top1":
                _timed(stats, "users", kind, c.post, "/tap/sync", data={
                    "LANG": "ADQL", "QUERY": "SELECT TOP 1 source_id FROM gaia.dr3_bright"})
            elif kind == "cone":
                ra, dec = rng.uniform(0, 360), rng.uniform(-60, 60)
                _timed(stats, "users", kind, c.post, "/tap/sync", data={
                    "LANG": "ADQL", "QUERY": "SELECT source_id, ra, dec, phot_g_mean_mag"
                    " FROM gaia.dr3_bright WHERE 1=CONTAINS(POINT('ICRS', ra, dec),"
                    f" CIRCLE('ICRS', {ra:.4f}, {dec:.4f}, 0.5))"})
            elif kind == "tap_schema":
                _timed(stats, "users", kind, c.post, "/tap/sync", data={
                    "LANG": "ADQL", "QUERY": "SELECT table_name, description"
                    " FROM TAP_SCHEMA.tables"})
            elif kind == "async":
                run_job(c, stats, "users", "SELECT TOP 100 source_id, ra, dec FROM"
                        " gaia.dr3_bright WHERE phot_g_mean_mag < 8", stop)
            elif kind == "upload":
                table = _upload_table(rng)
                _timed(stats, "users", kind, c.post, "/tap/sync", data={
                    "LANG": "ADQL", "UPLOAD": "pos,param:pos", "QUERY":
                    "SELECT p.ra, p.dec, g.source_id FROM TAP_UPLOAD.pos AS p JOIN"
                    " gaia.dr3_bright AS g ON 1=CONTAINS(POINT('ICRS', g.ra, g.dec),"
                    " CIRCLE('ICRS', p.ra, p.dec, 0.2))"},
                    files={"pos": ("pos.csv", table, "text/csv")})
            elif kind == "dest":
                ra = rng.uniform(0, 360)
                _timed(stats, "users", kind, c.post, "/tap/sync", data={
                    "LANG": "ADQL", "DEST": "mydb.slice", "DEST_MODE": "replace",
                    "QUERY": "SELECT source_id, ra, dec FROM gaia.dr3_bright"
                    f" WHERE ra BETWEEN {ra:.3f} AND {ra + 1:.3f}"})
            elif kind == "login":
                r = _timed(stats, "users", kind, c.post, "/auth/token",
                           data={"username": user, "password": PASSWORD},
                           headers={"Authorization": ""})
                if r is not None:
                    c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            time.sleep(rng.uniform(0.1, 0.5))


def run_job(c: httpx.Client, stats: Stats, group: str, query: str, stop: float) -> None:
    t0 = time.monotonic()
    try:
        r = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN"})
        if r.status_code != 303:
            stats.record(group, "async", time.monotonic() - t0, r.status_code,
                         f"HTTP {r.status_code}: {r.text[:150]}")
            return
        job = r.headers["location"]
        phase = ""
        while time.monotonic() < stop + 60:
            phase = c.get(job + "/phase").text
            if phase in FINAL:
                break
            c.get(job, params={"WAIT": "5", "PHASE": phase})
        if phase == "COMPLETED":
            r = c.get(job + "/results/result")
            ok = r.status_code == 200
            stats.record(group, "async", time.monotonic() - t0, r.status_code,
                         None if ok else f"result HTTP {r.status_code}")
        else:
            stats.record(group, "async", time.monotonic() - t0, None, f"job ended {phase}")
        c.delete(job)
    except httpx.HTTPError as exc:
        stats.record(group, "async", time.monotonic() - t0, None, f"{type(exc).__name__}")


def abuser(j: int, k: int, url: str, stop: float, stats: Stats) -> None:
    rng = random.Random(1000 * j + k)
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{100 + j}")
    jobs: list[str] = []
    with httpx.Client(base_url=url, transport=transport, timeout=700) as c:
        while time.monotonic() < stop:
            kind = rng.choice(["slow", "wide", "wide", "async"])
            t0 = time.monotonic()
            try:
                if kind == "async":
                    r = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": SLOW,
                                                   "PHASE": "RUN"})
                    status = r.status_code
                    if status == 303:
                        jobs.append(r.headers["location"])
                elif kind == "wide":
                    with c.stream("POST", "/tap/sync", data={
                            "LANG": "ADQL", "QUERY": WIDE, "RESPONSEFORMAT": "csv"}) as r:
                        for _ in r.iter_raw(1 << 20):
                            pass
                        status = r.status_code
                else:
                    r = c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": SLOW})
                    status = r.status_code
                stats.record("abuser", kind, time.monotonic() - t0, status)
                if status == 503:
                    time.sleep(0.2)  # hammering, but not a busy loop in this process
            except httpx.HTTPError as exc:
                stats.record("abuser", kind, time.monotonic() - t0, None, type(exc).__name__)
        for job in jobs:  # the abuser goes away; its queued jobs are deleted (by id)
            try:
                c.delete(job, timeout=30)
            except httpx.HTTPError:
                pass


def abusive_client(addresses: int, url: str, seconds: float, queue: Any) -> None:
    """The abusive anonymous client (in a process of its own): four threads per address
    until ``seconds`` have passed; puts its observations on ``queue``."""
    stats = Stats()
    stop = time.monotonic() + seconds
    threads = [threading.Thread(target=abuser, args=(j, k, url, stop, stats), daemon=True)
               for j in range(1, addresses + 1) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 900)
    out: dict[tuple[str, str], list[tuple[float, int | None, str | None]]] = {}
    for key, times in stats.times.items():
        # (statuses are not kept per request: replay the counts)
        n5, n503, nerr = stats.status5xx[key], stats.refused[key], stats.errors[key]
        rows = []
        for i, t in enumerate(times):
            status = 503 if i < n503 else (500 if i < n5 else 200)
            rows.append((t, status, "error" if i < nerr else None))
        out[key] = rows
    queue.put(out)


def snapshot(proc: psutil.Process) -> tuple[int, int]:
    return proc.memory_info().rss, proc.num_fds()


def report(stats: Stats, title: str) -> dict[str, float]:
    print(f"\n{title}")
    print(f"  {'group':7s} {'kind':11s} {'requests':>8s} {'errors':>6s} {'5xx':>5s}"
          f" {'503':>5s} {'p50 ms':>8s} {'p99 ms':>8s}")
    figures: dict[str, float] = {}
    for (group, kind) in sorted(stats.times):
        times = sorted(stats.times[(group, kind)])
        p50 = statistics.median(times) * 1000
        p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))] * 1000
        key = (group, kind)
        print(f"  {group:7s} {kind:11s} {len(times):8d} {stats.errors[key]:6d}"
              f" {stats.status5xx[key]:5d} {stats.refused[key]:5d} {p50:8.0f} {p99:8.0f}")
        if group == "users":
            figures["errors"] = figures.get("errors", 0) + stats.errors[key]
            figures["5xx"] = figures.get("5xx", 0) + stats.status5xx[key]
            if kind == "top1":
                figures["top1_p99_ms"] = p99
    for key, text in stats.examples.items():
        if key[0] == "users":
            print(f"  example error {key[1]}: {text}")
    return figures


def stuck_jobs(data_dir: Path) -> int:
    import sqlite3

    con = sqlite3.connect(data_dir / "meta.sqlite")
    try:
        return con.execute("SELECT COUNT(*) FROM jobs WHERE phase IN"
                           " ('QUEUED', 'EXECUTING', 'PENDING')").fetchone()[0]
    finally:
        con.close()


def prepare_users(n: int) -> None:
    from taphouse.auth.accounts import AccountStore
    from taphouse.auth.passwords import PasswordHashing
    from taphouse.metadata import MetadataDB

    meta = MetadataDB(DATA / "meta.sqlite")
    accounts = AccountStore(meta, PasswordHashing(), password_min_length=10)
    for i in range(n):
        if accounts.user(f"load{i:02d}") is None:
            accounts.add_user(f"load{i:02d}", PASSWORD)
    meta.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--abusers", type=int, default=10)
    args = parser.parse_args()

    DATA.mkdir(parents=True, exist_ok=True)
    prepare_users(args.clients)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(DATA.parent / "load-server.log", "ab")  # noqa: SIM115
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPHOUSE_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "taphouse.cli", "--data-dir", str(DATA), "serve", "--demo",
         "--port", str(port), "--log-level", "warning"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.time() + 900
        while True:
            try:
                if httpx.get(url + "/tap/availability", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start (see bench/data/load-server.log)")
            time.sleep(0.5)
        proc = psutil.Process(server.pid)
        print(f"server pid {server.pid}, {args.clients} users, {args.abusers} abusive"
              f" addresses x 4 threads, {args.seconds:g} s per run, default settings")
        results = []
        for run in range(1, args.runs + 1):
            rss0, files0 = snapshot(proc)
            stats = Stats()
            stop = time.monotonic() + args.seconds
            # The abuser runs in a process of its own, so that its threads do not compete
            # with the users' for this process's interpreter lock (which would add its
            # own delays to the users' measured latencies).
            queue: multiprocessing.Queue = multiprocessing.Queue()
            abuse = multiprocessing.Process(target=abusive_client,
                                            args=(args.abusers, url, args.seconds, queue))
            abuse.start()
            threads = [threading.Thread(target=well_behaved, args=(i, url, stop, stats),
                                        daemon=True) for i in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=args.seconds + 900)
            abused = queue.get(timeout=args.seconds + 900)
            abuse.join(timeout=60)
            for key, values in abused.items():
                for seconds, status, error in values:
                    stats.record(key[0], key[1], seconds, status, error)
            time.sleep(30)  # let anonymous jobs queued by the abuser run out or time out
            rss1, files1 = snapshot(proc)
            figures = report(stats, f"run {run}")
            stuck = stuck_jobs(DATA)
            print(f"  server RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB,"
                  f" open files {files0} -> {files1}, jobs not final after 30 s: {stuck}")
            results.append((figures, rss1, files1, stuck))
        print("\nsummary (targets: 0 errors, 0 5xx, TOP 1 p99 < 1000 ms, RSS and open files"
              " within 10 % across runs)")
        for run, (figures, rss, files, stuck) in enumerate(results, start=1):
            print(f"  run {run}: errors {figures.get('errors', 0):.0f}, 5xx"
                  f" {figures.get('5xx', 0):.0f}, TOP 1 p99"
                  f" {figures.get('top1_p99_ms', float('nan')):.0f} ms, RSS"
                  f" {rss / 2**20:.0f} MiB, open files {files}, stuck jobs {stuck}")
        if len(results) >= 2:
            (_, r1, f1, _), (_, r2, f2, _) = results[-2], results[-1]
            print(f"  last two runs: RSS {100 * (r2 - r1) / r1:+.1f} %, open files"
                  f" {100 * (f2 - f1) / f1:+.1f} %")
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
