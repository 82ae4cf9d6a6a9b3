"""Catalogues served from PostgreSQL through the same TAP endpoint as DuckDB ones.

One server with the demo databases on DuckDB (``gaia``, ``hipparcos``) and the same rows
in a throwaway PostgreSQL cluster, registered with ``register_postgres`` as ``gaiapg``
and ``hippg`` (one connection config, so they can be joined), queried over real HTTP
with stock pyvo. The SQL PostgreSQL receives is recorded, to check that WHERE, TOP and
aggregates run there.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
import pyvo

from accounts import PASSWORD
from pg_demo import DBNAME, READER
from pg_server import dsn_of
from servers import raw_store_bytes
from taphouse.catalogue.model import CatalogueError
from taphouse.engine.pg_register import register_postgres, secret_name


@pytest.fixture(scope="module")
def served(pg_demo):
    """The session's both-backend server (pg_demo.py): (server, registrations, the SQL
    sent to PostgreSQL, the setup connection, the query role's DSN)."""
    return pg_demo.server, pg_demo.regs, pg_demo.sent, pg_demo.setup, pg_demo.reader_dsn


def _pyvo(server) -> pyvo.dal.TAPService:
    return pyvo.dal.TAPService(server.tap)


def _rows(server, query: str) -> list[tuple]:
    table = _pyvo(server).run_sync(query, maxrec=1_000_000).to_table()
    return [tuple(r) for r in table.as_array().tolist()]


def test_registered_from_the_postgres_catalogue(served):
    server, regs, _, _, _ = served
    gaia = regs["gaiapg"].tables[0]
    assert (gaia.database, gaia.name, gaia.backend, gaia.backend_ref) == (
        "gaiapg", "dr3_bright", "postgres", "demo")
    assert (gaia.ra_column, gaia.dec_column, gaia.healpix_column) == ("ra", "dec",
                                                                       "_healpix_29")
    ra = next(c for c in gaia.columns if c.name == "ra")
    assert ra.unit == "deg" and ra.ucd.startswith("pos.eq.ra")
    assert regs["hippg"].skipped == {"hip2": ["notes (jsonb)"]}
    assert "notes" not in {c.name for c in regs["hippg"].tables[0].columns}
    # the query DSN is sealed, never stored in clear
    platform = server.platform
    assert platform.secrets.get(secret_name("demo")).reveal().startswith("host=")
    # (read in another process: an open() here would drop the server's SQLite locks)
    raw = raw_store_bytes(platform.settings.data_dir)
    assert b"th_reader" not in raw and b"dbname=th_demo" not in raw
    # VOSI /tables lists the PostgreSQL databases beside the DuckDB ones
    tables = httpx.get(server.tap + "/tables", timeout=30).text
    assert "gaiapg.dr3_bright" in tables and "gaia.dr3_bright" in tables


def test_same_answers_as_duckdb_and_work_runs_in_postgres(served):
    server, _, sent, _, _ = served
    queries = [
        # cones at RA 0/360 and at the poles
        "SELECT COUNT(*) FROM {g}.dr3_bright WHERE 1=CONTAINS(POINT(ra, dec),"
        " CIRCLE(0, 0, 2))",
        "SELECT COUNT(*) FROM {g}.dr3_bright WHERE 1=CONTAINS(POINT(ra, dec),"
        " CIRCLE(359.9, 10, 3))",
        "SELECT COUNT(*) FROM {g}.dr3_bright WHERE 1=CONTAINS(POINT(ra, dec),"
        " CIRCLE(0, 90, 5))",
        "SELECT COUNT(*) FROM {g}.dr3_bright WHERE 1=CONTAINS(POINT(ra, dec),"
        " CIRCLE(120, -90, 5))",
        "SELECT TOP 5 source_id, ra, dec FROM {g}.dr3_bright WHERE dec > 80"
        " ORDER BY source_id",
        "SELECT COUNT(*) AS n, ROUND(AVG(phot_g_mean_mag), 6) AS g FROM {g}.dr3_bright",
    ]
    for q in queries:
        duck = _rows(server, q.format(g="gaia"))
        sent.clear()
        pg = _rows(server, q.format(g="gaiapg"))
        assert pg == duck, q
        assert len(sent) == 1, q
        if "CONTAINS" in q:
            assert "WHERE" in sent[0] and '"_healpix_29"' in sent[0], sent[0]
        if "TOP 5" in q:
            assert "LIMIT 5" in sent[0] and "ORDER BY" in sent[0], sent[0]
        if "COUNT" in q:
            assert "COUNT(" in sent[0].upper(), sent[0]


def test_hipparcos_gaia_crossmatch_equal(served):
    server, _, sent, _, _ = served
    q = ("SELECT h.hip, g.source_id FROM {h}.hip2 AS h JOIN {g}.dr3_bright AS g"
         " ON 1=CONTAINS(POINT(g.ra, g.dec), CIRCLE(h.ra, h.dec, 1.0/3600))"
         " WHERE h.hpmag < 6")
    duck = sorted(_rows(server, q.format(h="hipparcos", g="gaia")))
    sent.clear()
    pg = sorted(_rows(server, q.format(h="hippg", g="gaiapg")))
    assert len(duck) > 50
    assert pg == duck
    assert "JOIN" in sent[0].upper()


def test_duckdb_and_postgres_tables_in_one_query_named(served):
    server, _, _, _, _ = served
    r = httpx.post(server.tap + "/sync", data={
        "REQUEST": "doQuery", "LANG": "ADQL",
        "QUERY": "SELECT TOP 1 * FROM gaia.dr3_bright AS a JOIN hippg.hip2 AS b"
                 " ON a.source_id = b.hip"}, timeout=60)
    # [federation] would move hippg.hip2 to DuckDB for the join, but all of it is too
    # many rows: refused naming it and both backends.
    assert r.status_code == 400
    assert "(duckdb)" in r.text and "hippg.hip2 on postgres (demo)" in r.text


def test_upload_joins_a_postgres_table(served):
    server, _, sent, _, _ = served
    from astropy.table import Table

    mine = Table({"hip": [1, 2, 3, 999999999], "tag": ["a", "b", "c", "none"]})
    svc = _pyvo(server)
    q = "SELECT u.tag, h.hip FROM TAP_UPLOAD.mine AS u JOIN {h}.hip2 AS h ON h.hip = u.hip"
    sent.clear()
    pg = sorted(tuple(r) for r in svc.run_sync(q.format(h="hippg"),
                                                uploads={"mine": mine}).to_table())
    duck = sorted(tuple(r) for r in svc.run_sync(q.format(h="hipparcos"),
                                                  uploads={"mine": mine}).to_table())
    assert pg == duck and len(pg) == 3
    assert "_inline_tap_upload_mine" in sent[0]


def test_upload_crossmatch_cells_computed_when_loaded(served):
    """An uploaded table crossmatched with a PostgreSQL catalogue: the upload's 3x3
    HEALPix blocks are computed in Python as it is copied there (no per-row PL/pgSQL
    call) and the catalogue is probed by index range; the rows are DuckDB's exactly,
    ``SELECT *`` shows no helper column, positions near RA 0/360, the poles and NULL."""
    import numpy as np
    from astropy.table import MaskedColumn, Table

    server, _, sent, _, _ = served
    svc = _pyvo(server)
    stars = svc.run_sync("SELECT TOP 400 source_id, ra, dec FROM gaia.dr3_bright"
                         " ORDER BY source_id").to_table()
    rng = np.random.default_rng(17)
    n = len(stars)
    ra = np.concatenate([np.asarray(stars["ra"]) + rng.normal(0, 0.4 / 3600, n),
                         [359.99999, 0.00001, 10.0, 200.0, 1.0]]) % 360
    dec = np.concatenate([np.asarray(stars["dec"]) + rng.normal(0, 0.4 / 3600, n),
                          [0.0, 0.0, 89.99999, -89.99999, 0.0]])
    mine = Table({"k": np.arange(len(ra)),
                  "ra": MaskedColumn(ra, mask=[False] * (len(ra) - 1) + [True]),
                  "dec": dec})
    q = ("SELECT {cols} FROM TAP_UPLOAD.mine AS u JOIN {g}.dr3_bright AS g"
         " ON 1 = CONTAINS(POINT(g.ra, g.dec), CIRCLE(u.ra, u.dec, 1.0/3600))")
    for cols in ("u.k, g.source_id, g.phot_g_mean_mag", "*"):
        sent.clear()
        pg = svc.run_sync(q.format(cols=cols, g="gaiapg"), uploads={"mine": mine},
                          maxrec=100000).to_table()
        duck = svc.run_sync(q.format(cols=cols, g="gaia"), uploads={"mine": mine},
                            maxrec=100000).to_table()
        assert pg.colnames == duck.colnames and not any(
            c.startswith("_th") for c in pg.colnames)
        rows = sorted((tuple(r) for r in pg.as_array().tolist()), key=repr)
        want = sorted((tuple(r) for r in duck.as_array().tolist()), key=repr)
        assert rows == want and 300 < len(rows) <= n
        assert "TAPHOUSE_HEALPIX_NEIGHBOURS" not in sent[0].upper()
        assert "UNNEST" in sent[0].upper() and " BETWEEN " in sent[0].upper()


def test_upload_over_the_row_cap_is_a_clear_error(served, monkeypatch):
    server, _, _, _, _ = served
    from astropy.table import Table

    backend = server.platform.backends.backend(("postgres", "demo"))
    monkeypatch.setattr(backend, "temp_max_rows", 2)
    mine = Table({"hip": [1, 2, 3]})
    with pytest.raises(pyvo.dal.DALQueryError, match="table tap_upload.mine has more than 2 rows"):
        _pyvo(server).run_sync("SELECT h.hip FROM TAP_UPLOAD.mine AS u JOIN hippg.hip2"
                               " AS h ON h.hip = u.hip", uploads={"mine": mine})


def test_query_role_cannot_write(served, pg_server):
    _, _, _, _, reader_dsn = served
    with psycopg.connect(reader_dsn, autocommit=True) as conn:
        for sql in ("INSERT INTO hip_pg.hip2 (hip) VALUES (1)", "DELETE FROM gaia_pg.dr3_bright",
                    "CREATE TABLE public.x (a int)", "CREATE TABLE gaia_pg.x (a int)",
                    "CREATE OR REPLACE FUNCTION taphouse.f() RETURNS int LANGUAGE sql"
                    " AS 'SELECT 1'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
        # temporary tables are allowed (joins with uploads)
        conn.execute("CREATE TEMPORARY TABLE t (a int)")


def test_registration_refuses_roles_that_may_do_more(served, pg_server, tmp_path):
    server, _, _, setup, _ = served
    platform = server.platform
    # the cluster's superuser
    with pytest.raises(CatalogueError, match="superuser"):
        register_postgres(platform.catalogue, platform.secrets, "bad1",
                          dsn_of(pg_server, dbname=DBNAME), "gaia_pg")
    setup.execute("DROP ROLE IF EXISTS th_writer")
    setup.execute("CREATE ROLE th_writer LOGIN IN ROLE pg_read_server_files")
    setup.execute("GRANT USAGE ON SCHEMA gaia_pg TO th_writer")
    setup.execute("GRANT SELECT, INSERT ON gaia_pg.dr3_bright TO th_writer")
    with pytest.raises(CatalogueError) as err:
        register_postgres(platform.catalogue, platform.secrets, "bad2",
                          dsn_of(pg_server, user="th_writer", dbname=DBNAME), "gaia_pg")
    assert "pg_read_server_files" in str(err.value) and "dr3_bright" in str(err.value)
    assert "th_writer" in str(err.value) and "host=" not in str(err.value)
    assert platform.catalogue.database("bad2") is None
    assert platform.secrets.get(secret_name("bad2")) is None


def test_cancellation_reaches_postgres(served, pg_server):
    """An aborted async job's query stops in PostgreSQL (pg_cancel_backend's signal,
    sent with the protocol's cancel request), not just in taphouse."""
    server, _, _, setup, _ = served
    svc = _pyvo(server)
    job = svc.submit_job("SELECT COUNT(*) FROM gaiapg.dr3_bright AS a, gaiapg.dr3_bright"
                         " AS b, hippg.hip2 AS c WHERE a.ra + b.ra > c.ra")
    job.run()

    def active() -> int:
        return setup.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename=%s AND state='active'"
            " AND backend_type = 'client backend'",
            (READER,)).fetchone()[0]

    deadline = time.time() + 30
    while active() == 0 and time.time() < deadline:
        time.sleep(0.1)
    assert active() == 1, job.phase
    started = time.time()
    job.abort()
    while active() and time.time() - started < 10:
        time.sleep(0.1)
    assert active() == 0
    assert time.time() - started < 10


def test_backend_time_limit_cancels(served):
    from taphouse.query.cancel import CancelHandle

    server, _, _, _, _ = served
    backend = server.platform.backends.backend(("postgres", "demo"))
    handle = CancelHandle()
    started = time.time()
    with backend.cursor() as cur:
        handle.attach(cur)
        threading.Timer(0.3, handle.cancel, ("time limit",)).start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            list(backend.stream(cur, "SELECT pg_sleep(20)"))
        handle.detach()
    assert time.time() - started < 5
    # the pooled connection is usable again, outside any transaction, temp tables gone
    with backend.cursor() as cur:
        got = list(backend.stream(cur, "SELECT current_setting('transaction_read_only'),"
                                       " current_setting('jit'), current_setting("
                                       "'search_path')"))
    row = [got[0].column(i)[0].as_py() for i in range(3)]
    assert row == ["on", "off", "taphouse"]


def test_cli_add_postgres(served, pg_server, tmp_path):
    import os
    import subprocess
    import sys

    _, _, _, _, reader_dsn = served
    env = {**os.environ, "TH_DSN": reader_dsn}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir",
                               str(tmp_path / "d"), "--init", "db", "add-postgres", *args],
                              capture_output=True, text=True, env=env, timeout=120)

    done = cli("hipcli", "--dsn-env", "TH_DSN", "--schema", "hip_pg")
    assert done.returncode == 0, done.stderr
    assert "hipcli.hip2:" in done.stdout and "positions ra/dec, HEALPix index" in done.stdout
    assert "skipped column(s) of unsupported types: notes (jsonb)" in done.stderr
    assert "th_reader" not in done.stdout + done.stderr  # the DSN is never shown
    again = cli("hipcli", "--dsn-env", "TH_DSN", "--schema", "hip_pg")
    assert again.returncode == 2 and "already exists" in again.stderr
    superuser = cli("hipsu", "--dsn", dsn_of(pg_server, dbname=DBNAME), "--schema", "hip_pg")
    assert superuser.returncode == 2 and "superuser" in superuser.stderr
    assert "port=" not in superuser.stderr


def test_ingest_backend_postgres(served, pg_server, tmp_path):
    """`taphouse ingest --backend postgres` loads a file into a PostgreSQL-served
    database (COPY, HEALPix index column and its B-tree), which the running server
    then serves."""
    import os
    import subprocess
    import sys

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    server, _, sent, setup, _ = served
    platform = server.platform
    setup.execute("CREATE SCHEMA IF NOT EXISTS ing")
    setup.execute(f"GRANT USAGE ON SCHEMA ing TO {READER}")
    register_postgres(platform.catalogue, platform.secrets, "ingpg", None, "ing",
                      connection="demo")  # an empty schema: filled by ingest
    rng = np.random.default_rng(5)
    n = 5000
    ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    pq.write_table(pa.table({"id": np.arange(n), "ra": ra, "dec": dec,
                             "mag": rng.uniform(5, 20, n)}), tmp_path / "stars.parquet")
    env = {**os.environ, "TH_SETUP": dsn_of(pg_server, dbname=DBNAME),
           "TH_DSN": dsn_of(pg_server, user=READER, dbname=DBNAME)}
    # the command line, on a data directory of its own
    cli_dir = str(tmp_path / "cli")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", cli_dir,
                               "--init", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    setup.execute("CREATE SCHEMA IF NOT EXISTS ingcli")
    setup.execute(f"GRANT USAGE ON SCHEMA ingcli TO {READER}")
    done = cli("db", "add-postgres", "ingcli", "--dsn-env", "TH_DSN", "--schema", "ingcli")
    assert done.returncode == 0, done.stderr
    done = cli("ingest", str(tmp_path / "stars.parquet"), "-d", "ingcli", "-t", "stars",
               "--backend", "postgres", "--pg-schema", "ingcli", "--setup-dsn-env",
               "TH_SETUP", "--epoch", "2016.0", "-q")
    assert done.returncode == 0, done.stderr
    assert "ingcli.stars: 5,000 rows" in done.stdout and "HEALPix index" in done.stdout
    assert "host=" not in done.stdout + done.stderr
    refused = cli("ingest", str(tmp_path / "stars.parquet"), "-d", "ingcli", "-t", "stars",
                  "--backend", "postgres", "--pg-schema", "ingcli", "--setup-dsn-env",
                  "TH_SETUP")
    assert refused.returncode == 2 and "already exists" in refused.stderr
    # the server's own data directory: the same function in process
    from taphouse.engine.pg_register import ingest_postgres
    from taphouse.storage.datadir import TmpArea

    with TmpArea(platform.catalogue.root / "tmp") as area:
        ingest_postgres(platform.catalogue, platform.secrets, [tmp_path / "stars.parquet"],
                        "ingpg", "stars", schema="ing", setup_dsn=env["TH_SETUP"],
                        work_dir=area.path, epoch="2016.0")
    index = setup.execute("SELECT indexdef FROM pg_indexes WHERE schemaname='ing'"
                          " AND tablename='stars'").fetchall()
    assert any("_healpix_29" in i[0] for i in index)
    sent.clear()
    got = _rows(server, "SELECT COUNT(*) FROM ingpg.stars WHERE 1=CONTAINS(POINT(ra, dec),"
                        " CIRCLE(10, 20, 15))")[0][0]
    d = np.degrees(np.arccos(np.clip(np.sin(np.radians(dec)) * np.sin(np.radians(20))
                                     + np.cos(np.radians(dec)) * np.cos(np.radians(20))
                                     * np.cos(np.radians(ra - 10)), -1, 1)))
    assert got == int((d <= 15).sum()) > 0
    assert '"_healpix_29"' in sent[0]
    # the query role reads it, cannot write it
    with psycopg.connect(dsn_of(pg_server, user=READER, dbname=DBNAME)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ing.stars")


def _user_sync(server: Any, prefix: str) -> Callable[..., httpx.Response]:
    """A new logged-in user's sync TAP query (CSV), extra parameters as keywords."""
    user = f"{prefix}{os.getpid() % 1000}"
    server.platform.authenticator.accounts.add_user(user, PASSWORD)

    def sync(query: str, **extra: str) -> httpx.Response:
        return httpx.post(server.tap + "/sync", auth=(user, PASSWORD), timeout=120,
                          data={"LANG": "ADQL", "QUERY": query, "FORMAT": "csv", **extra})

    return sync


def test_user_table_joins_a_postgres_catalogue(served):
    """A logged-in user's table (DuckDB user space) joined with a catalogue table served
    by PostgreSQL: copied there as a temporary table for the query."""
    server, _, sent, _, _ = served
    sync = _user_sync(server, "pguser")

    r = sync("SELECT TOP 30 hip, ra, dec FROM hipparcos.hip2 ORDER BY hpmag",
             DEST="mydb.bright")
    assert r.status_code == 200, r.text
    q = ("SELECT b.hip, g.source_id FROM mydb.bright AS b JOIN {g}.dr3_bright AS g"
         " ON 1=CONTAINS(POINT(g.ra, g.dec), CIRCLE(b.ra, b.dec, 1.0/3600))"
         " ORDER BY b.hip, g.source_id")
    duck = sync(q.format(g="gaia"))
    sent.clear()
    pg = sync(q.format(g="gaiapg"))
    assert pg.status_code == 200, pg.text
    assert pg.text == duck.text and len(pg.text.splitlines()) > 5
    assert "_inline_user_" in sent[0] and "JOIN" in sent[0].upper()


def test_dest_from_a_postgres_catalogue(served):
    """DEST on a PostgreSQL-served table: every row (not MAXREC's) is streamed from
    PostgreSQL into the user's table (DuckDB user space); the response is read back from
    it; the stored table equals the same query's DEST on DuckDB, and joins later."""
    server, _, sent, _, _ = served
    sync = _user_sync(server, "pgdest")

    q = ("SELECT hip, ra, dec, hpmag, plx FROM {h}.hip2 WHERE 1=CONTAINS(POINT(ra, dec),"
         " CIRCLE(56.75, 24.12, 5)) ORDER BY hip")
    sent.clear()
    r = sync(q.format(h="hippg"), DEST="mydb.frompg", MAXREC="4")
    assert r.status_code == 200, r.text
    assert len(r.text.splitlines()) == 1 + 4  # the response: MAXREC rows
    assert sent and "LIMIT" not in sent[0].upper()  # PostgreSQL sent every row
    assert sync(q.format(h="hipparcos"), DEST="mydb.fromduck").status_code == 200
    stored = sync("SELECT * FROM mydb.frompg ORDER BY hip")
    assert stored.status_code == 200
    assert stored.text == sync("SELECT * FROM mydb.fromduck ORDER BY hip").text
    assert len(stored.text.splitlines()) > 20
    # the stored result is the user's table: it joins a PostgreSQL catalogue again
    j = sync("SELECT COUNT(*) FROM mydb.frompg AS m JOIN hippg.hip2 AS h ON m.hip = h.hip")
    assert j.status_code == 200 and j.text.splitlines()[1] == str(
        len(stored.text.splitlines()) - 1)
    # an error in PostgreSQL stores nothing
    bad = sync("SELECT hip, CAST(hip AS SMALLINT) * 1000 AS x FROM hippg.hip2",
               DEST="mydb.broken")
    assert bad.status_code == 400 and "out of range" in bad.text
    assert sync("SELECT * FROM mydb.broken").status_code == 400


# --- the same TAP/pyvo test bodies on both backends ------------------------------------------
BOTH = pytest.mark.parametrize("dbs", [("gaia", "hipparcos"), ("gaiapg", "hippg")],
                               ids=["duckdb", "postgres"])


@BOTH
def test_pyvo_sync_maxrec_overflow(served, dbs):
    server = served[0]
    g = dbs[0]
    res = _pyvo(server).run_sync(f"SELECT source_id FROM {g}.dr3_bright WHERE dec > 0",
                                 maxrec=7)
    assert len(res) == 7 and res.query_status == "OVERFLOW"
    res = _pyvo(server).run_sync(f"SELECT TOP 7 source_id FROM {g}.dr3_bright"
                                 " ORDER BY source_id")
    assert len(res) == 7 and res.query_status == "OK"


@BOTH
def test_pyvo_async_job(served, dbs):
    server = served[0]
    g, h = dbs
    job = _pyvo(server).submit_job(
        f"SELECT h.hip, COUNT(*) AS n FROM {h}.hip2 AS h JOIN {g}.dr3_bright AS g"
        " ON 1=CONTAINS(POINT(g.ra, g.dec), CIRCLE(h.ra, h.dec, 0.01))"
        " WHERE h.hpmag < 4 GROUP BY h.hip ORDER BY h.hip")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=120)
    assert job.phase == "COMPLETED"
    rows = [tuple(r) for r in job.fetch_result().to_table()]
    job.delete()
    assert len(rows) > 10
    expected = _rows(server, "SELECT h.hip, COUNT(*) AS n FROM hipparcos.hip2 AS h JOIN"
                             " gaia.dr3_bright AS g ON 1=CONTAINS(POINT(g.ra, g.dec),"
                             " CIRCLE(h.ra, h.dec, 0.01)) WHERE h.hpmag < 4 GROUP BY h.hip"
                             " ORDER BY h.hip")
    assert rows == expected


@BOTH
@pytest.mark.parametrize("fmt", ["csv", "votable/b2", "parquet"])
def test_formats(served, dbs, fmt):
    import io

    import pyarrow.parquet as pq

    server = served[0]
    q = (f"SELECT TOP 50 source_id, ra, dec, phot_g_mean_mag FROM {dbs[0]}.dr3_bright"
         " WHERE phot_g_mean_mag IS NOT NULL ORDER BY source_id")
    r = httpx.post(server.tap + "/sync", data={"LANG": "ADQL", "QUERY": q,
                                               "RESPONSEFORMAT": fmt}, timeout=60)
    assert r.status_code == 200, r.text
    if fmt == "csv":
        assert len(r.text.strip().splitlines()) == 51
    elif fmt == "parquet":
        assert pq.read_table(io.BytesIO(r.content)).num_rows == 50
    else:
        assert b"BINARY2" in r.content


@BOTH
def test_tap_schema_and_errors(served, dbs):
    server = served[0]
    cols = _rows(server, "SELECT column_name, datatype, unit, ucd FROM TAP_SCHEMA.columns"
                         f" WHERE table_name = '{dbs[1]}.hip2' ORDER BY column_name")
    duck = _rows(server, "SELECT column_name, datatype, unit, ucd FROM TAP_SCHEMA.columns"
                         " WHERE table_name = 'hipparcos.hip2' ORDER BY column_name")
    assert cols == duck and len(cols) > 5
    with pytest.raises(pyvo.dal.DALQueryError, match="unknown column nosuch"):
        _pyvo(server).run_sync(f"SELECT nosuch FROM {dbs[1]}.hip2")


def test_service_functions_have_a_fixed_search_path(served):
    setup = served[3]
    rows = setup.execute(
        "SELECT p.proname, l.lanname, p.proconfig, has_function_privilege(%s, p.oid,"
        " 'EXECUTE') FROM pg_proc p JOIN pg_namespace n ON n.oid=p.pronamespace"
        " JOIN pg_language l ON l.oid=p.prolang WHERE n.nspname='taphouse'",
        (READER,)).fetchall()
    assert {r[0] for r in rows} >= {"ivo_healpix_index", "taphouse_contains"}
    for name, lang, config, may_run in rows:
        assert may_run, name
        if lang == "plpgsql":
            assert config == ["search_path=taphouse, pg_catalog, pg_temp"], name


def test_client_disconnect_cancels_in_postgres(served):
    """A sync client that goes away mid-query: the statement stops in PostgreSQL."""
    server, _, _, setup, _ = served

    def active() -> int:
        return setup.execute("SELECT count(*) FROM pg_stat_activity WHERE usename=%s AND"
                             " backend_type = 'client backend'"
                             " AND state='active'", (READER,)).fetchone()[0]

    errors: list[BaseException] = []

    def request() -> None:
        try:
            httpx.post(server.tap + "/sync", timeout=6, data={
                "LANG": "ADQL", "QUERY": "SELECT COUNT(*) FROM gaiapg.dr3_bright AS a,"
                " gaiapg.dr3_bright AS b, hippg.hip2 AS c WHERE a.ra + b.ra > c.ra"})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    client = threading.Thread(target=request)
    client.start()
    seen = 0
    while client.is_alive() and not seen:
        seen = active()
        time.sleep(0.1)
    client.join()
    assert seen == 1  # it ran in PostgreSQL while the client waited
    assert isinstance(errors[0], httpx.ReadTimeout)  # the client gave up
    started = time.time()
    while active() and time.time() - started < 20:
        time.sleep(0.2)
    assert active() == 0


def test_string_literals_stay_literals_whatever_the_role_defaults(served, pg_server):
    """A backslash in an ADQL string is written as is in the SQL; a role or database
    with standard_conforming_strings=off (a DBA's setting) read it as an escape, so the
    next quote no longer closed the string and the rest of the ADQL text became SQL
    (injection as the query role: any table it may read, past taphouse's groups). The
    session pins standard_conforming_strings=on."""
    server, _, _, setup, _ = served
    platform = server.platform
    setup.execute("DROP ROLE IF EXISTS th_scs")
    setup.execute("CREATE ROLE th_scs LOGIN")
    setup.execute("GRANT USAGE ON SCHEMA hip_pg, taphouse TO th_scs")
    setup.execute("GRANT SELECT ON ALL TABLES IN SCHEMA hip_pg TO th_scs")
    setup.execute("ALTER ROLE th_scs SET standard_conforming_strings = off")
    register_postgres(platform.catalogue, platform.secrets, "hipscs",
                      dsn_of(pg_server, user="th_scs", dbname=DBNAME), "hip_pg",
                      connection="scs")
    assert _rows(server, "SELECT TOP 1 'a\\' AS b, 'OR 1=1 --' AS c FROM hipscs.hip2") \
        == [("a\\", "OR 1=1 --")]


@pytest.mark.parametrize("adql", [
    "SET default_transaction_read_only = off",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "RESET ALL",
    "BEGIN",
    "START TRANSACTION READ WRITE",
    "COMMIT",
    "SELECT TOP 1 hip FROM hippg.hip2; SET default_transaction_read_only = off",
    "SELECT TOP 1 hip FROM hippg.hip2; COMMIT; BEGIN READ WRITE",
    "SELECT set_config('default_transaction_read_only', 'off', false) FROM hippg.hip2",
    "SELECT TOP 1 current_setting('transaction_read_only') FROM hippg.hip2",
])
def test_adql_cannot_end_the_read_only_session(served, adql):
    """The session is read-only by default (session_options); ADQL cannot say SET,
    RESET, BEGIN or COMMIT, nor call set_config: each is a 400 naming what is refused,
    and nothing of it reaches PostgreSQL (the role check is the defence behind)."""
    server, _, sent, _, _ = served
    sent.clear()
    r = httpx.post(server.tap + "/sync", timeout=60, data={
        "LANG": "ADQL", "QUERY": adql, "RESPONSEFORMAT": "votable"})
    assert r.status_code == 400, r.text
    assert 'value="ERROR"' in r.text and "Traceback" not in r.text, r.text
    assert sent == [], sent
