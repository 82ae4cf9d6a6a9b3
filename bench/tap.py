"""TAP benchmark: the workload a TAP client sends, against a real server over HTTP.

    python bench/tap.py [--rows 10000000] [--positions 200] [--upload-rows 100000]
                        [--dachs URL [--dachs-table SCHEMA.TABLE]] [--skip-client]
                        [--backend postgres]

On a synthetic Gaia-like catalogue (``taphouse demo synth``; written once to bench/data/
and ingested once into bench/data/tapbench_<rows>/), with ``taphouse serve`` in a
subprocess. With httpx (keep-alive):

- ``SELECT TOP 1`` sync, 1,000 sequential requests: p50, p95 (target p50 <= 5 ms);
- sync cone search, r = 0.05 deg, at positions drawn from the catalogue (warm cache):
  p50 and p95 (target p50 <= 10 ms); a 1 deg x 1 deg BOX and a 5-vertex POLYGON of
  about the same area at the same positions beside a CIRCLE of that area (target: p50
  within 2x of the circle's);
- a 100,000-row upload (VOTable TABLEDATA, as pyvo sends it) crossmatched at 1 arcsec:
  from sending the upload to the last byte of the result;
- GROUP BY FLOOR(phot_g_mean_mag) over all rows;
- a 1M-row result streamed as VOTable (BINARY, the default; BINARY2) and as Parquet:
  time to first and last byte, MB/s.

With stock pyvo (``pyvo.dal.TAPService``), end to end into an astropy Table:

- cone r = 0.05 deg ``run_sync``: p50;
- 1M rows ``run_async`` in the service's default format (target: faster than DaCHS);
- the 100k-row upload crossmatch ``run_sync(uploads=...)`` (target <= 2.5 s).

With the taphouse client (logged in): ``client.query`` of the 1M rows into pandas,
pyarrow and astropy (target < 3 s for pandas/pyarrow).

``--backend postgres`` starts a throwaway PostgreSQL (tests/pg_server.py; Debian's
``postgresql``), loads the same catalogue there (COPY, HEALPix index), registers it with a
read-only role and prints the cone p50 and the 100k upload crossmatch beside the same SQL
run directly on PostgreSQL (targets: p50 <= 20 ms, crossmatch <= 5 s, within 20 %).

``--dachs URL`` runs the stock-pyvo figures against that TAP service too (it must hold the
same catalogue as ``--dachs-table``, default ``bench.synthetic``, e.g. loaded from
bench/data/synthetic_<rows>_1.parquet); without it the README keeps dated DaCHS figures.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE))
from serving import serve  # noqa: E402


def prepare(rows: int) -> Path:
    """Synthetic Parquet + a data directory with it ingested as bench.synthetic."""
    from taphouse.catalogue.ingest import ingest_files
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.catalogue.synth import write_synthetic
    from taphouse.metadata import MetadataDB

    DATA.mkdir(exist_ok=True)
    parquet = DATA / f"synthetic_{rows}_1.parquet"
    if not parquet.exists():
        print(f"writing {parquet} ...", flush=True)
        write_synthetic(parquet, rows, seed=1)
    data_dir = DATA / f"tapbench_{rows}"
    meta = MetadataDB(data_dir / "meta.sqlite")
    store = CatalogueStore(meta, data_dir / "tables")
    table = store.table("bench", "synthetic")
    if table is None or table.nrows != rows:
        print(f"ingesting {rows} rows ...", flush=True)
        ingest_files(store, [parquet], "bench", "synthetic", progress=True)
    from taphouse.auth.accounts import AccountStore
    from taphouse.auth.passwords import PasswordHashing

    accounts = AccountStore(meta, PasswordHashing())
    try:
        accounts.add_user("bench", PASSWORD)
    except Exception:  # noqa: BLE001 - already there from an earlier run
        pass
    meta.close()
    return data_dir


def positions(data_dir: Path, n: int, seed: int = 7) -> np.ndarray:
    import duckdb

    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB

    table = CatalogueStore(MetadataDB(data_dir / "meta.sqlite"), data_dir / "tables").table(
        "bench", "synthetic")
    con = duckdb.connect(str(table.path), read_only=True)
    total = table.nrows
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(total, size=n, replace=False))
    ids = ",".join(str(int(p)) for p in picks)
    # rowid, not row_number() OVER (): the latter follows a parallel scan's order, so
    # the picks (and the crossmatch's match count) would change from run to run.
    rows = con.execute(f"SELECT ra, dec FROM data WHERE rowid IN ({ids})"
                       " ORDER BY rowid").fetchall()
    con.close()
    return np.array(rows)


PASSWORD = "bench password 123"


def sync(client: httpx.Client, base: str, query: str, fmt: str = "votable",
         maxrec: int | None = None) -> bytes:
    params = {"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": fmt}
    if maxrec is not None:
        params["MAXREC"] = str(maxrec)
    r = client.post(base + "/tap/sync", data=params)
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {r.text[:500]}")
    return r.content


def bench_cone(client: httpx.Client, base: str, pos: np.ndarray) -> tuple[float, float, int]:
    def q(ra: float, dec: float) -> str:
        return ("SELECT source_id, ra, dec, phot_g_mean_mag FROM bench.synthetic WHERE "
                f"1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {float(ra)!r}, {float(dec)!r}, 0.05))")

    for ra, dec in pos:  # warm the cache
        sync(client, base, q(ra, dec))
    times = []
    rows = 0
    for ra, dec in pos:
        t0 = time.perf_counter()
        body = sync(client, base, q(ra, dec))
        times.append(time.perf_counter() - t0)
        rows += body.count(b"<TR>") if b"<TR>" in body else 0
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], rows


def bench_top1(client: httpx.Client, base: str, n: int = 1000) -> tuple[float, float]:
    query = "SELECT TOP 1 source_id FROM bench.synthetic"
    for _ in range(20):
        sync(client, base, query)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        sync(client, base, query)
        times.append(time.perf_counter() - t0)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def region_queries(ra: float, dec: float) -> dict[str, str]:
    """A CIRCLE, a 1 x 1 deg BOX and a regular 5-vertex POLYGON of the box's area,
    centred on (ra, dec) (kept 2 deg from the poles so the box stays a box)."""
    ra, dec = float(ra), float(np.clip(dec, -87.0, 87.0))
    area = 1.0  # deg^2 (near enough for a 1 x 1 deg box at these sizes)
    radius = float(np.degrees(np.arccos(1 - np.radians(1) ** 2 * area / (2 * np.pi))))
    # regular pentagon of area 1 deg^2: R = sqrt(2 A / (5 sin 72 deg))
    big_r = float(np.sqrt(2 * area / (5 * np.sin(np.radians(72)))))
    angles = np.radians(90 + 72 * np.arange(5))
    verts = ", ".join(f"{float(ra + big_r * np.cos(a) / np.cos(np.radians(dec)))!r}, "
                      f"{float(dec + big_r * np.sin(a))!r}" for a in angles)
    head = "SELECT source_id, ra, dec FROM bench.synthetic WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
    return {"circle": f"{head}CIRCLE('ICRS', {ra!r}, {dec!r}, {radius!r}))",
            "box": f"{head}BOX('ICRS', {ra!r}, {dec!r}, 1.0, 1.0))",
            "polygon": f"{head}POLYGON('ICRS', {verts}))"}


def bench_regions(client: httpx.Client, base: str, pos: np.ndarray) -> dict[str, float]:
    out = {}
    for kind in ("circle", "box", "polygon"):
        times = []
        for ra, dec in pos:
            q = region_queries(ra, dec)[kind]
            sync(client, base, q, fmt="parquet")  # warm
            t0 = time.perf_counter()
            sync(client, base, q, fmt="parquet")
            times.append(time.perf_counter() - t0)
        out[kind] = statistics.median(times)
    return out


def pyvo_figures(url: str, table: str, pos: np.ndarray, up: Any, rows: int,
                 label: str) -> None:
    """Stock pyvo, end to end into an astropy Table, against the TAP service at ``url``."""
    import warnings

    import pyvo

    service = pyvo.dal.TAPService(url)
    times = []
    for ra, dec in pos[:50]:
        q = (f"SELECT source_id, ra, dec, phot_g_mean_mag FROM {table} WHERE 1 = CONTAINS("
             f"POINT('ICRS', ra, dec), CIRCLE('ICRS', {float(ra)!r}, {float(dec)!r}, 0.05))")
        service.run_sync(q).to_table()  # warm
        t0 = time.perf_counter()
        service.run_sync(q).to_table()
        times.append(time.perf_counter() - t0)
    print(f"[{label}] pyvo run_sync cone r=0.05 deg -> astropy: p50"
          f" {statistics.median(times) * 1000:.1f} ms", flush=True)
    query = (f"SELECT TOP {rows} source_id, ra, dec, parallax, pmra, pmdec, phot_g_mean_mag,"
             f" bp_rp FROM {table}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        job = service.submit_job(query, maxrec=rows)
        job.run()
        job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=3600)
        t_job = time.perf_counter() - t0
        result = job.fetch_result()
        t_fetch = time.perf_counter() - t0
        got = result.to_table()
        total = time.perf_counter() - t0
        job.delete()
    print(f"[{label}] pyvo run_async {rows} rows, default format -> astropy: {total:.2f} s"
          f" end to end (job done {t_job:.2f} s, download+parse {t_fetch - t_job:.2f} s,"
          f" to_table {total - t_fetch:.2f} s; {len(got)} rows)", flush=True)
    xmatch = ("SELECT u.id, s.source_id, s.ra, s.dec FROM tap_upload.up AS u "
              f"JOIN {table} AS s ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), "
              "CIRCLE('ICRS', u.ra, u.dec, 1.0/3600))")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        matched = service.run_sync(xmatch, uploads={"up": up}, maxrec=10 * len(up)).to_table()
        secs = time.perf_counter() - t0
        buf = io.BytesIO()
        t0 = time.perf_counter()
        up.write(buf, format="votable")  # what pyvo does with the table before sending it
        writing = time.perf_counter() - t0
    print(f"[{label}] pyvo run_sync upload crossmatch {len(up)} rows at 1 arcsec -> astropy:"
          f" {secs:.2f} s, {len(matched)} matches (target <= 2.5 s; of which astropy writing"
          f" the upload as TABLEDATA in the client: {writing:.2f} s)", flush=True)


def client_figures(base: str, rows: int, up: Any) -> None:
    """The taphouse client (logged in), ``client.query`` into each output."""
    import pandas  # noqa: F401  (imported before timing: a notebook has it already)

    import taphouse

    client = taphouse.connect(base, interactive=False, progress=False)
    client.login("bench", PASSWORD)
    for old in client.jobs():  # earlier runs' job_<id> tables count against the quota
        old.delete()
    query = (f"SELECT TOP {rows} source_id, ra, dec, parallax, pmra, pmdec, phot_g_mean_mag,"
             " bp_rp FROM bench.synthetic")
    for output in ("pandas", "pyarrow", "astropy"):  # warm each conversion
        _forget(client, client.query("SELECT TOP 10 * FROM bench.synthetic", output=output))
    for output in ("pandas", "pyarrow", "astropy"):
        t0 = time.perf_counter()
        got = client.query(query, maxrec=rows, output=output)
        secs = time.perf_counter() - t0
        _forget(client, got)
        print(f"taphouse client.query {rows} rows -> {output}: {secs:.2f} s ({len(got)} rows;"
              " target < 3 s for pandas/pyarrow)", flush=True)
    xmatch = ("SELECT u.id, s.source_id, s.ra, s.dec FROM tap_upload.up AS u "
              "JOIN bench.synthetic AS s ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), "
              "CIRCLE('ICRS', u.ra, u.dec, 1.0/3600))")
    for output in ("astropy", "pandas"):
        t0 = time.perf_counter()
        got = client.query(xmatch, uploads={"up": up}, maxrec=10 * len(up), output=output)
        secs = time.perf_counter() - t0
        _forget(client, got)
        print(f"taphouse client.query upload crossmatch {len(up)} rows at 1 arcsec -> {output}:"
              f" {secs:.2f} s ({len(got)} matches; the upload is sent as VO-Parquet)", flush=True)


def _forget(client: Any, result: Any) -> None:
    """Delete the job of a client.query result (and its job_<id> table with it: the
    bench user's quota would fill up over runs, and then the tables are not kept)."""
    meta = getattr(result, "attrs", None)
    if meta is None:
        meta = getattr(result, "meta", None)
    if meta is None:  # pyarrow: the job id is in the schema metadata
        meta = {k.decode(): v.decode() for k, v in (result.schema.metadata or {}).items()}
    if meta.get("job_id"):
        client.job(meta["job_id"]).delete()


def upload_votable(pos: np.ndarray, n: int) -> bytes:
    buf = io.BytesIO()
    upload_table(pos, n).write(buf, format="votable", tabledata_format="tabledata")
    return buf.getvalue()


def upload_table(pos: np.ndarray, n: int) -> Any:
    """The upload as a user holds it: a plain astropy Table (no masks)."""
    from astropy.table import Table

    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(pos), size=n)
    # positions near catalogue stars (0.3 arcsec jitter) and random ones
    ra = pos[idx, 0] + rng.normal(0, 0.3 / 3600, n)
    dec = np.clip(pos[idx, 1] + rng.normal(0, 0.3 / 3600, n), -90, 90)
    half = n // 2
    ra[half:] = rng.uniform(0, 360, n - half)
    dec[half:] = np.degrees(np.arcsin(rng.uniform(-1, 1, n - half)))
    t = Table({"id": np.arange(n, dtype=np.int64), "ra": ra % 360.0, "dec": dec})
    t["ra"].unit = "deg"
    t["dec"].unit = "deg"
    return t


def bench_crossmatch(client: httpx.Client, base: str, votable: bytes) -> tuple[float, int]:
    query = ("SELECT u.id, s.source_id, s.ra, s.dec FROM tap_upload.up AS u "
             "JOIN bench.synthetic AS s ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), "
             "CIRCLE('ICRS', u.ra, u.dec, 1.0/3600))")
    t0 = time.perf_counter()
    r = client.post(base + "/tap/sync",
                    data={"LANG": "ADQL", "QUERY": query, "UPLOAD": "up,param:up",
                          "MAXREC": "1000000", "RESPONSEFORMAT": "votable"},
                    files={"up": ("up.xml", votable, "application/x-votable+xml")})
    seconds = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {r.text[:500]}")
    from astropy.io.votable import parse_single_table

    rows = len(parse_single_table(io.BytesIO(r.content)).array)
    return seconds, rows


def bench_stream(client: httpx.Client, base: str, fmt: str, rows: int) -> tuple[float, float, int]:
    query = (f"SELECT TOP {rows} source_id, ra, dec, parallax, pmra, pmdec, phot_g_mean_mag,"
             " bp_rp FROM bench.synthetic")
    params = {"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": fmt, "MAXREC": str(rows)}
    t0 = time.perf_counter()
    first = None
    size = 0
    with client.stream("POST", base + "/tap/sync", data=params) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code}: {r.read()[:500]!r}")
        for chunk in r.iter_raw():
            if first is None:
                first = time.perf_counter() - t0
            size += len(chunk)
    return first or 0.0, time.perf_counter() - t0, size


# --- [postgres] the same service with the catalogue in PostgreSQL ----------------------------
def prepare_postgres(rows: int, pg: Any) -> tuple[Path, str]:
    """A data directory whose ``bench`` database is served from the PostgreSQL cluster
    ``pg`` (tests/pg_server.py): the synthetic Parquet loaded with COPY and the HEALPix
    index, a read-only query role, registered with ``register_postgres``."""
    import shutil

    import psycopg
    import pyarrow.parquet as pq

    from taphouse.catalogue.store import CatalogueStore
    from taphouse.engine.pg_register import register_postgres
    from taphouse.engine.postgres import load_table
    from taphouse.metadata import MetadataDB
    from taphouse.secrets import SecretStore
    from taphouse.settings import Settings

    prepare(rows)  # the Parquet file (and the DuckDB data directory, for positions)
    parquet = DATA / f"synthetic_{rows}_1.parquet"
    setup_dsn = pg.dsn
    reader_dsn = f"host=127.0.0.1 port={pg.port} user=bench_reader dbname=postgres"
    with psycopg.connect(setup_dsn, autocommit=True) as conn:
        print(f"loading {rows} rows into PostgreSQL ...", flush=True)
        t0 = time.perf_counter()
        load_table(conn, "bench", "synthetic", pq.read_table(parquet), ra_column="ra",
                   dec_column="dec")
        print(f"  loaded in {time.perf_counter() - t0:.0f} s", flush=True)
        conn.execute("CREATE ROLE bench_reader LOGIN")
        conn.execute("GRANT USAGE ON SCHEMA bench TO bench_reader")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA bench TO bench_reader")
    data_dir = DATA / f"tapbench_pg_{rows}"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir)
    meta = MetadataDB(settings.meta_path)
    register_postgres(CatalogueStore(meta, settings.tables_dir),
                      SecretStore.from_settings(meta, settings), "bench", reader_dsn, "bench",
                      setup_dsn=setup_dsn)
    meta.close()
    return data_dir, reader_dsn


def direct_figures(data_dir: Path, dsn: str, pos: np.ndarray, up: Any) -> dict[str, float]:
    """The SQL the service sends, run directly on PostgreSQL (psycopg, same session
    settings): cone p50 and the upload crossmatch (upload already in a temp table)."""
    from taphouse.adql import Scope, inline_name, translate
    from taphouse.catalogue.model import TableMeta
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.engine.postgres import PostgresBackend, pg_relation, relation_name
    from taphouse.formats.columns import columns_from_schema
    from taphouse.metadata import MetadataDB

    meta = MetadataDB(data_dir / "meta.sqlite")
    table = CatalogueStore(meta, data_dir / "tables").table("bench", "synthetic")
    meta.close()
    import pyarrow as pa

    arrow_up = pa.table({"id": np.asarray(up["id"]), "ra": np.asarray(up["ra"]),
                         "dec": np.asarray(up["dec"])})
    up_meta = TableMeta(database="tap_upload", name="up",
                        columns=columns_from_schema(arrow_up.schema), kind="upload",
                        ra_column="ra", dec_column="dec", nrows=arrow_up.num_rows)
    scope = Scope(tables={("bench", "synthetic"): table, ("tap_upload", "up"): up_meta},
                  relation=lambda t: relation_name(*pg_relation(t)),
                  inline={("tap_upload", "up"): arrow_up})
    out = {}
    backend = PostgresBackend(dsn, name="bench")
    try:
        with backend.cursor() as cur:
            conn = cur.conn  # the service's own session settings (search_path, jit=off)
            times = []
            for ra, dec in pos:
                sql = translate("SELECT source_id, ra, dec, phot_g_mean_mag FROM"
                                " bench.synthetic WHERE 1 = CONTAINS(POINT('ICRS', ra, dec),"
                                f" CIRCLE('ICRS', {float(ra)!r}, {float(dec)!r}, 0.05))",
                                scope, dialect="postgres").sql
                t0 = time.perf_counter()
                conn.execute(sql).fetchall()
                times.append(time.perf_counter() - t0)
            out["cone_p50"] = statistics.median(times)
            sql = translate("SELECT u.id, s.source_id, s.ra, s.dec FROM tap_upload.up AS u"
                            " JOIN bench.synthetic AS s ON 1 = CONTAINS(POINT('ICRS', s.ra,"
                            " s.dec), CIRCLE('ICRS', u.ra, u.dec, 1.0/3600))", scope,
                            dialect="postgres").sql
            # the upload as the service loads it (with its 3x3 HEALPix blocks, computed
            # in Python: Rules.inline_cells)
            data = scope.inline[("tap_upload", "up")]
            backend.load_temp_table(cur, inline_name(up_meta),
                                    data() if callable(data) else data, 10**8)
            t0 = time.perf_counter()
            conn.execute(sql).fetchall()
            out["crossmatch"] = time.perf_counter() - t0
    finally:
        backend.close()
    return out


def main_postgres(args: argparse.Namespace) -> None:
    """``--backend postgres``: its own throwaway PostgreSQL, the catalogue loaded there,
    the service's cone p50 and 100k upload crossmatch beside the same SQL run directly."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from pg_server import PostgresServer

    pg = PostgresServer()
    pg.start()
    server = None
    try:
        data_dir, reader_dsn = prepare_postgres(args.rows, pg)
        pos = positions(DATA / f"tapbench_{args.rows}", args.positions)
        server, base = serve(data_dir, {"TAPHOUSE_MAXREC_LIMIT": "20000000"})
        up = upload_table(pos, args.upload_rows)
        with httpx.Client(timeout=600) as client:
            p50, p95, _ = bench_cone(client, base, pos)
            vot = upload_votable(pos, args.upload_rows)
            secs, matched = bench_crossmatch(client, base, vot)
        direct = direct_figures(data_dir, reader_dsn, pos, up)
        print(f"[postgres] cone r=0.05 deg, {len(pos)} positions: p50 {p50 * 1000:.1f} ms,"
              f" p95 {p95 * 1000:.1f} ms (target p50 <= 20 ms); the same SQL directly:"
              f" p50 {direct['cone_p50'] * 1000:.1f} ms")
        print(f"[postgres] upload crossmatch {args.upload_rows} x {args.rows} at 1 arcsec:"
              f" {secs:.2f} s, {matched} matches (target <= 5 s); the same SQL directly"
              f" (upload already in a temp table): {direct['crossmatch']:.2f} s")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--positions", type=int, default=200)
    ap.add_argument("--upload-rows", type=int, default=100_000)
    ap.add_argument("--stream-rows", type=int, default=1_000_000)
    ap.add_argument("--top1", type=int, default=1000, help="TOP 1 requests (default 1000)")
    ap.add_argument("--dachs", help="base URL of a DaCHS TAP service with the same catalogue")
    ap.add_argument("--dachs-table", default="bench.synthetic")
    ap.add_argument("--skip-client", action="store_true", help="no taphouse client figures")
    ap.add_argument("--backend", choices=("duckdb", "postgres"), default="duckdb",
                    help="postgres: the catalogue in a throwaway PostgreSQL started here"
                         " (cone p50, 100k upload crossmatch, the same SQL directly)")
    args = ap.parse_args()
    if args.backend == "postgres":
        main_postgres(args)
        return

    data_dir = prepare(args.rows)
    pos = positions(data_dir, args.positions)
    server, base = serve(data_dir, {"TAPHOUSE_MAXREC_LIMIT": "20000000",
                                    "TAPHOUSE_WORKERS": "1"})
    try:
        with httpx.Client(timeout=600) as client:
            p50, p95 = bench_top1(client, base, args.top1)
            print(f"SELECT TOP 1 sync, {args.top1} sequential requests: p50"
                  f" {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms (target p50 <= 5 ms)")
            p50, p95, _ = bench_cone(client, base, pos)
            print(f"cone r=0.05 deg, {len(pos)} positions: p50 {p50 * 1000:.1f} ms,"
                  f" p95 {p95 * 1000:.1f} ms (target p50 <= 10 ms)")
            regions = bench_regions(client, base, pos[:50])
            print("regions of 1 deg^2 (50 positions, p50): " + ", ".join(
                f"{k} {v * 1000:.1f} ms" for k, v in regions.items())
                + f"; box/circle {regions['box'] / regions['circle']:.2f}x,"
                f" polygon/circle {regions['polygon'] / regions['circle']:.2f}x (target <= 2x)")
            vot = upload_votable(pos, args.upload_rows)
            secs, matched = bench_crossmatch(client, base, vot)
            print(f"upload crossmatch {args.upload_rows} x {args.rows} at 1 arcsec:"
                  f" {secs:.2f} s, {matched} matches, upload {len(vot) / 1e6:.1f} MB"
                  " (target < 3 s)")
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                sync(client, base, "SELECT FLOOR(phot_g_mean_mag) AS g, COUNT(*) AS n"
                     " FROM bench.synthetic GROUP BY FLOOR(phot_g_mean_mag)")
                times.append(time.perf_counter() - t0)
            print(f"GROUP BY FLOOR(phot_g_mean_mag) over {args.rows} rows: best"
                  f" {min(times):.3f} s, median {statistics.median(times):.3f} s (target < 0.3 s)")
            for fmt in ("votable", "votable/b2", "parquet"):
                bench_stream(client, base, fmt, args.stream_rows)  # warm
                first, last, size = bench_stream(client, base, fmt, args.stream_rows)
                print(f"{args.stream_rows} rows as {fmt}: first byte {first * 1000:.0f} ms,"
                      f" last byte {last:.2f} s, {size / 1e6:.0f} MB,"
                      f" {size / 1e6 / last:.0f} MB/s (target < 1.5 s)")
        up = upload_table(pos, args.upload_rows)
        pyvo_figures(base + "/tap", "bench.synthetic", pos, up, args.stream_rows, "taphouse")
        if not args.skip_client:
            client_figures(base, args.stream_rows, up)
        if args.dachs:
            pyvo_figures(args.dachs, args.dachs_table, pos, up, args.stream_rows, "DaCHS")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
