"""Remote TAP services: what going through the platform costs.

    python bench/remotes.py [--cones 100] [--tables 1000]

Starts a second taphouse (``taphouse serve`` in a subprocess) as the remote, on a data
directory with the demo databases and ``--tables`` generated one-row tables, and
measures from this process, through :mod:`taphouse.remotes` (the outbound guard
allowing 127.0.0.1):

- a cone (r = ``--radius``, 0.1 deg; TOP 100) on ``hipparcos.hip2``: the remote's own sync answer
  (one POST with httpx) against the same query pushed down by the platform's client,
  sync and in the mode the platform chooses (sync for small results), p50 and the
  difference;
  target: at most 20 ms more than the remote's own cone;
- registering and refreshing the metadata of the remote with ``--tables`` tables;
  target: a refresh of a 1,000-table remote within 5 s;
- the /tables and TAP_SCHEMA of a workspace selecting that remote, built per request
  from the shared cache;
- the same cone end to end as a user sees it: a second ``taphouse serve`` (the
  platform, the remote registered with ``taphouse remote add``) answering
  ``/tap/sync`` for ``far.hipparcos.hip2`` (HTTP, ADQL checks, the remote's answer
  written again as VOTable), against the remote's own ``/tap/sync`` for the same cone in
  the same format; target as above.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # servers.publish_tiny_tables
sys.path.insert(0, str(HERE))
from serving import serve  # noqa: E402


def prepare(folder: Path, tables: int) -> Path:
    from servers import publish_tiny_tables
    from taphouse.catalogue.demo import load_demo
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB

    data = folder / "remote"
    meta = MetadataDB(data / "meta.sqlite")
    store = CatalogueStore(meta, data / "tables")
    load_demo(store)
    publish_tiny_tables(store, "many", tables, data)
    meta.close()
    return data


def cone(ra: float, dec: float, prefix: str = "", radius: float = 0.1) -> str:
    return (f"SELECT TOP 100 hip, ra, dec, hpmag FROM {prefix}hipparcos.hip2 WHERE"
            f" 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra!r}, {dec!r},"
            f" {radius!r}))")


def p50(times: list[float]) -> float:
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cones", type=int, default=100)
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--radius", type=float, default=0.1,
                    help="cone radius in degrees (0.1: ~0.1 Hipparcos rows a cone; 3: the"
                         " TOP 100 full)")
    args = ap.parse_args()

    from taphouse.adql.translator import parse
    from taphouse.auth.identity import Identity
    from taphouse.metadata import MetadataDB
    from taphouse.remotes import RemoteConfig, RemoteRegistry
    from taphouse.remotes.pushdown import SYNC_MAX_ROWS, plan_remote, run_remote

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = prepare(folder, args.tables)
        proc, base = serve(data, {"TAPHOUSE_WORKERS": "2"})
        try:
            meta = MetadataDB(folder / "platform.sqlite")
            registry = RemoteRegistry(meta, RemoteConfig(allow=("127.0.0.0/8", "::1")))
            t0 = time.perf_counter()
            registry.add("far", base + "/tap")
            added = time.perf_counter() - t0
            refreshes = []
            for _ in range(3):
                t0 = time.perf_counter()
                remote = registry.refresh("far")
                refreshes.append(time.perf_counter() - t0)
            print(f"metadata of a {remote.table_count}-table remote ({remote.metadata_source}):"
                  f" register {added:.2f} s, refresh median {statistics.median(refreshes):.2f} s"
                  " (target <= 5 s)")
            # A workspace selecting the remote: its /tables and TAP_SCHEMA are built per
            # request from the one shared cache (nothing copied into the workspace).
            from taphouse.remotes.catalog import RemoteSchemas
            from taphouse.tap.tap_schema import tap_schema_tables
            from taphouse.tap.vosi import tableset

            schemas, built = RemoteSchemas(registry), []
            for _ in range(5):
                t0 = time.perf_counter()
                dbs, tabs = schemas.metadata(Identity(), ["far"])
                tableset(dbs, tabs)
                tap_schema_tables(tabs)
                built.append(time.perf_counter() - t0)
            print(f"workspace selecting it: /tables + TAP_SCHEMA of its {len(tabs)} tables"
                  f" built in p50 {p50(built):.0f} ms per request")

            rng = np.random.default_rng(5)
            points = [(float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(
                rng.uniform(-1, 1))))) for _ in range(args.cones)]
            anyone, radius = Identity(), args.radius
            direct, sync_t, async_t, rows = [], [], [], 0
            with httpx.Client(timeout=60) as client:
                for ra, dec in points[:5]:  # warm up
                    client.post(base + "/tap/sync", data={"LANG": "ADQL",
                                                          "QUERY": cone(ra, dec, "", radius)})
                for ra, dec in points:
                    t0 = time.perf_counter()
                    r = client.post(base + "/tap/sync", data={
                        "LANG": "ADQL", "QUERY": cone(ra, dec, "", radius),
                        "RESPONSEFORMAT": remote.capabilities.preferred_format()})
                    r.raise_for_status()
                    direct.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    plan = plan_remote(parse(cone(ra, dec, "far.", radius)), anyone, registry)
                    answer = run_remote(plan, registry, mode="sync")
                    sync_t.append(time.perf_counter() - t0)
                    rows += answer.rows
                    t0 = time.perf_counter()
                    run_remote(plan, registry)
                    async_t.append(time.perf_counter() - t0)
            print(f"cone r={radius:g} deg TOP 100 on the remote ({len(points)} positions, {rows} rows):"
                  f" remote's own sync p50 {p50(direct):.1f} ms; through the platform: sync"
                  f" p50 {p50(sync_t):.1f} ms (+{p50(sync_t) - p50(direct):.1f} ms), the"
                  f" platform's choice (auto: sync up to {SYNC_MAX_ROWS:,} rows, else async)"
                  f" p50 {p50(async_t):.1f} ms (+{p50(async_t) - p50(direct):.1f} ms)"
                  " (target: +20 ms at most)")
            meta.close()
            end_to_end(folder, base, points, radius)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def end_to_end(folder: Path, remote_base: str, points: list[tuple[float, float]],
               radius: float) -> None:
    """The cone through the platform's own /tap/sync (a second server) against the
    remote's /tap/sync, alternating, VOTable (BINARY2) both ways."""
    allow = {"TAPHOUSE_OUTBOUND_ALLOW": "127.0.0.0/8", "TAPHOUSE_WORKERS": "2"}
    here_dir = folder / "platform"
    subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(here_dir),
                    "--init", "remote", "add", "far", remote_base + "/tap"], check=True,
                   env={**os.environ, **allow}, stdout=subprocess.DEVNULL)
    here, here_base = serve(here_dir, allow)
    try:
        direct: list[float] = []
        platform: list[float] = []
        fmt = {"RESPONSEFORMAT": "votable/b2"}
        with httpx.Client(timeout=60) as client:
            def post(base: str, query: str) -> httpx.Response:
                r = client.post(base + "/tap/sync", data={"LANG": "ADQL", "QUERY": query,
                                                          **fmt})
                r.raise_for_status()
                return r

            for ra, dec in points[:5]:  # warm up both
                post(remote_base, cone(ra, dec, "", radius))
                post(here_base, cone(ra, dec, "far.", radius))
            for ra, dec in points:
                t0 = time.perf_counter()
                post(remote_base, cone(ra, dec, "", radius))
                direct.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                post(here_base, cone(ra, dec, "far.", radius))
                platform.append(time.perf_counter() - t0)
        print(f"cone r={radius:g} deg end to end ({len(points)} positions, HTTP /tap/sync, BINARY2 VOTable):"
              f" the remote's own p50 {p50(direct):.1f} ms; through the platform"
              f" (far.hipparcos.hip2) p50 {p50(platform):.1f} ms"
              f" (+{p50(platform) - p50(direct):.1f} ms) (target: +20 ms at most)")
    finally:
        here.terminate()
        here.wait(timeout=30)




if __name__ == "__main__":
    main()
