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

The well-behaved clients honour Retry-After and keep their token when a login is
refused. A refusal (503/429) to a well-behaved client is counted as ``refused`` and is a
miss of the target; the abuser's are expected (its callers together get at most
``anonymous_sync_share`` of the sync slots). Prints, per run and kind of request:
requests, failed (HTTP >= 400 other than refusals), refused, client (no answer), 5xx,
p50 and p99 latency; the server's RSS and open files before and after each run (files
by kind where they changed: sockets by TCP state, files by directory); jobs not in a
final phase 30 s after the run ("stuck"). Targets (issue 11, 2 cores, N=20, 2 minutes): 0 errors and 0 5xx for the
well-behaved clients, TOP 1 p99 < 1 s during the abuse, RSS and open files within
+-10 % across two consecutive runs, 0 stuck jobs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serving import serve  # noqa: E402

DATA = HERE / "data" / "load"
PASSWORD = "load benchmark password"
WIDE = "SELECT TOP 5000 '" + "w" * 99_000 + "' AS s, source_id FROM gaia.dr3_bright"
SLOW = ("SELECT COUNT(*) AS n FROM gaia.dr3_bright AS a JOIN gaia.dr3_bright AS b"
        " ON a.source_id % 500 = b.source_id % 500")
FINAL = {"COMPLETED", "ERROR", "ABORTED"}


class Stats:
    """Latencies and outcomes per (group, kind), thread-safe. Outcomes are counted apart:
    ``refused`` (the server said "not now": 503 or 429 with Retry-After), ``failed`` (any
    other HTTP status >= 400), ``client`` (no answer: a transport or protocol error on
    the benchmark's side or a dropped connection) and ``5xx``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.failed: dict[tuple[str, str], int] = defaultdict(int)
        self.client: dict[tuple[str, str], int] = defaultdict(int)
        self.status5xx: dict[tuple[str, str], int] = defaultdict(int)
        self.refused: dict[tuple[str, str], int] = defaultdict(int)
        self.examples: dict[tuple[str, str], str] = {}
        self.rows: dict[tuple[str, str], list[tuple[float, int | None, str | None]]] = \
            defaultdict(list)

    def record(self, group: str, kind: str, seconds: float, status: int | None,
               error: str | None = None) -> None:
        key = (group, kind)
        with self.lock:
            self.times[key].append(seconds)
            self.rows[key].append((seconds, status, error))
            if status is not None and status >= 500:
                self.status5xx[key] += 1
            if status in (429, 503):
                self.refused[key] += 1
            elif error is not None and status is None:
                self.client[key] += 1
            elif error is not None:
                self.failed[key] += 1
            if error is not None:
                self.examples.setdefault(key, error[:200])


def retry_after(r: httpx.Response | None) -> float:
    """Seconds a refusal (503/429) asks the client to wait; 0 for anything else."""
    if r is None or r.status_code not in (429, 503):
        return 0.0
    try:
        return max(0.0, float(r.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _timed(stats: Stats, group: str, kind: str, send, path: str, **kwargs):
    """``send(path, **kwargs)``, timed and recorded; the response (None when no answer
    came)."""
    t0 = time.monotonic()
    try:
        r = send(path, **kwargs)
    except httpx.HTTPError as exc:
        stats.record(group, kind, time.monotonic() - t0, None, f"{type(exc).__name__}: {exc}")
        return None
    good = r.status_code < 400
    stats.record(group, kind, time.monotonic() - t0, r.status_code,
                 None if good else f"HTTP {r.status_code}: {r.text[:150]}")
    return r


def _ok(r: httpx.Response | None) -> bool:
    return r is not None and r.status_code < 400


def _upload_table(rng: random.Random) -> bytes:
    lines = ["ra,dec"] + [f"{rng.uniform(0, 360):.6f},{rng.uniform(-60, 60):.6f}"
                          for _ in range(200)]
    return ("\n".join(lines) + "\n").encode()


def well_behaved(i: int, url: str, stop: float, stats: Stats) -> None:
    rng = random.Random(i)
    user = f"load{i:02d}"
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{10 + i}")
    with httpx.Client(base_url=url, transport=transport, timeout=120) as c:
        while True:  # a well-behaved client logs in first, coming back when told to
            r = _timed(stats, "users", "login", c.post, "/auth/token",
                       data={"username": user, "password": PASSWORD})
            if _ok(r) or time.monotonic() >= stop:
                break
            time.sleep(min(retry_after(r) or 1.0, max(0.0, stop - time.monotonic())))
        if not _ok(r):
            return
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        kinds = ["top1"] * 4 + ["cone"] * 4 + ["tap_schema", "async", "upload", "dest",
                                                "login"]
        while time.monotonic() < stop:
            kind = rng.choice(kinds)
            r = None
            if kind == "top1":
                r = _timed(stats, "users", kind, c.post, "/tap/sync", data={
                    "LANG": "ADQL", "QUERY": "SELECT TOP 1 source_id FROM gaia.dr3_bright"})
            elif kind == "cone":
                ra, dec = rng.uniform(0, 360), rng.uniform(-60, 60)
                r = _timed(stats, "users", kind, c.post, "/tap/sync", data={
                    "LANG": "ADQL", "QUERY": "SELECT source_id, ra, dec, phot_g_mean_mag"
                    " FROM gaia.dr3_bright WHERE 1=CONTAINS(POINT('ICRS', ra, dec),"
                    f" CIRCLE('ICRS', {ra:.4f}, {dec:.4f}, 0.5))"})
            elif kind == "tap_schema":
                r = _timed(stats, "users", kind, c.post, "/tap/sync", data={
                    "LANG": "ADQL", "QUERY": "SELECT table_name, description"
                    " FROM TAP_SCHEMA.tables"})
            elif kind == "async":
                r = run_job(c, stats, "users", "SELECT TOP 100 source_id, ra, dec FROM"
                            " gaia.dr3_bright WHERE phot_g_mean_mag < 8", stop)
            elif kind == "upload":
                table = _upload_table(rng)
                r = _timed(stats, "users", kind, c.post, "/tap/sync", data={
                    "LANG": "ADQL", "UPLOAD": "pos,param:pos", "QUERY":
                    "SELECT p.ra, p.dec, g.source_id FROM TAP_UPLOAD.pos AS p JOIN"
                    " gaia.dr3_bright AS g ON 1=CONTAINS(POINT('ICRS', g.ra, g.dec),"
                    " CIRCLE('ICRS', p.ra, p.dec, 0.2))"},
                    files={"pos": ("pos.csv", table, "text/csv")})
            elif kind == "dest":
                ra = rng.uniform(0, 360)
                r = _timed(stats, "users", kind, c.post, "/tap/sync", data={
                    "LANG": "ADQL", "DEST": "mydb.slice", "DEST_MODE": "replace",
                    "QUERY": "SELECT source_id, ra, dec FROM gaia.dr3_bright"
                    f" WHERE ra BETWEEN {ra:.3f} AND {ra + 1:.3f}"})
            elif kind == "login":
                r = _timed(stats, "users", kind, c.post, "/auth/token",
                           data={"username": user, "password": PASSWORD},
                           headers={"Authorization": ""})
                if _ok(r):  # refused: the client keeps the token it has
                    c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            # a refusal's Retry-After is honoured (well-behaved), then the usual pause
            time.sleep(min(retry_after(r), max(0.0, stop - time.monotonic()))
                       + rng.uniform(0.1, 0.5))


def run_job(c: httpx.Client, stats: Stats, group: str, query: str,
            stop: float) -> httpx.Response | None:
    """Creates, waits for, fetches and deletes one job; the creation's answer when it
    was refused (for its Retry-After), else None."""
    t0 = time.monotonic()
    try:
        r = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN"})
        if r.status_code != 303:
            stats.record(group, "async", time.monotonic() - t0, r.status_code,
                         f"HTTP {r.status_code}: {r.text[:150]}")
            return r
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
    return None


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
    out = dict(stats.rows)
    queue.put(out)


def snapshot(proc: psutil.Process) -> tuple[int, int]:
    return proc.memory_info().rss, proc.num_fds()


def open_files(proc: psutil.Process) -> Counter[str]:
    """The server's open file descriptors by kind: sockets by TCP state (CLOSE_WAIT is a
    connection the client closed and the server did not), files by directory/suffix."""
    states = {}
    try:
        for conn in proc.net_connections(kind="inet"):
            states[conn.fd] = conn.status
    except (psutil.Error, AttributeError):
        pass
    kinds: Counter[str] = Counter()
    fd_dir = Path(f"/proc/{proc.pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            kinds[f"socket {states.get(int(fd.name), 'unix/other')}"] += 1
        elif target.startswith(("pipe:", "anon_inode:")):
            kinds[target.split(":")[0] + (":" + target.split(":")[1]
                                          if target.startswith("anon") else "")] += 1
        else:
            path = Path(target)
            where = path.parent.name if path.parent != DATA else ""
            kinds[f"file {where}/*{path.suffix or path.name[-12:]}"] += 1
    return kinds


def print_files(before: Counter[str], after: Counter[str]) -> None:
    for kind in sorted(set(before) | set(after)):
        if before[kind] != after[kind] or after[kind] >= 5:
            print(f"    {kind:40s} {before[kind]:5d} -> {after[kind]:5d}")


def report(stats: Stats, title: str) -> dict[str, float]:
    print(f"\n{title}  (refused: 503/429 with Retry-After; failed: other HTTP >= 400;"
          " client: no answer)")
    print(f"  {'group':7s} {'kind':11s} {'requests':>8s} {'failed':>6s} {'refused':>7s}"
          f" {'client':>6s} {'5xx':>5s} {'p50 ms':>8s} {'p99 ms':>8s}")
    figures: dict[str, float] = {}
    for (group, kind) in sorted(stats.times):
        times = sorted(stats.times[(group, kind)])
        p50 = statistics.median(times) * 1000
        p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))] * 1000
        key = (group, kind)
        print(f"  {group:7s} {kind:11s} {len(times):8d} {stats.failed[key]:6d}"
              f" {stats.refused[key]:7d} {stats.client[key]:6d} {stats.status5xx[key]:5d}"
              f" {p50:8.0f} {p99:8.0f}")
        if group == "users":
            for name, table in (("failed", stats.failed), ("refused", stats.refused),
                                ("client", stats.client), ("5xx", stats.status5xx)):
                figures[name] = figures.get(name, 0) + table[key]
            if kind == "top1":
                figures["top1_p99_ms"] = p99
    for key, text in stats.examples.items():
        if key[0] == "users":
            print(f"  example {key[1]}: {text}")
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
    server, url = serve(DATA, demo=True, default_settings=True,
                        log=DATA.parent / "load-server.log", timeout=900)
    try:
        proc = psutil.Process(server.pid)
        print(f"server pid {server.pid}, {args.clients} users, {args.abusers} abusive"
              f" addresses x 4 threads, {args.seconds:g} s per run, default settings")
        results = []
        for run in range(1, args.runs + 1):
            rss0, files0 = snapshot(proc)
            kinds0 = open_files(proc)
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
            print_files(kinds0, open_files(proc))
            results.append((figures, rss1, files1, stuck))
        print("\nsummary (targets: nothing failed, refused or lost for the users, 0 5xx,"
              " TOP 1 p99 < 1000 ms, RSS and open files within 10 % across runs)")
        for run, (figures, rss, files, stuck) in enumerate(results, start=1):
            print(f"  run {run}: failed {figures.get('failed', 0):.0f}, refused"
                  f" {figures.get('refused', 0):.0f}, client errors"
                  f" {figures.get('client', 0):.0f}, 5xx {figures.get('5xx', 0):.0f},"
                  f" TOP 1 p99 {figures.get('top1_p99_ms', float('nan')):.0f} ms, RSS"
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
