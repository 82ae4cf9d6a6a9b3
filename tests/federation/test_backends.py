"""A federated join whose local table lives on another backend than the embedded
DuckDB: a catalogue served by PostgreSQL (engine/postgres.py, the throwaway cluster of
tests/pg_server.py) joined with the remote taphouse's table. The local side is read
and the local part runs on that backend, through the Backend protocol only; the answer
equals the same crossmatch done on DuckDB."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from astropy.io.votable import parse_single_table
from federation_helpers import LOOPBACK, audit_queries, sync

from pg_server import dsn_of, fresh_database
from servers import LiveServer, start_live
from taphouse.engine.duckdb import DuckDBEngine

READER = "th_fed_reader"
DBNAME = "th_fed"


@pytest.fixture(scope="module")
def pg_here(pg_server: Any, demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
            far: LiveServer) -> Iterator[LiveServer]:
    """A platform whose ``hippg.hip2`` (the demo Hipparcos table) is served by PostgreSQL."""
    from taphouse.engine.pg_register import register_postgres
    from taphouse.engine.postgres import load_table

    data = tmp_path_factory.mktemp("pghere") / "data"
    shutil.copytree(demo_data_dir, data, symlinks=True)
    server = start_live(data, outbound_allow=LOOPBACK)
    platform = server.platform
    platform.remotes.add("far", far.tap)
    setup_dsn, setup = fresh_database(pg_server, DBNAME, READER)
    hip = platform.catalogue.table("hipparcos", "hip2")
    with platform.engine.cursor() as cur:
        arrow = cur.sql(f"SELECT hip, ra, dec, hpmag FROM {platform.engine.relation(hip)}"
                        " WHERE dec BETWEEN 10 AND 12").to_arrow_table()
    load_table(setup, "hip_pg", "hip2", arrow, ra_column="ra", dec_column="dec")
    setup.execute(f"GRANT USAGE ON SCHEMA hip_pg TO {READER}")
    setup.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA hip_pg TO {READER}")
    register_postgres(platform.catalogue, platform.secrets, "hippg",
                      dsn_of(pg_server, user=READER, dbname=DBNAME), "hip_pg",
                      setup_dsn=setup_dsn, connection="fed")
    backend = platform.backends.backend(("postgres", "fed"))
    sent: list[str] = []
    backend._sent_hook = sent.append
    server.sent = sent  # type: ignore[attr-defined]
    yield server
    setup.close()
    server.stop()


def rows(response: Any) -> list[tuple]:
    assert response.status_code == 200, response.text
    table = parse_single_table(io.BytesIO(response.content)).to_table()
    return sorted(tuple(r) for r in table.as_array().tolist())


def test_a_postgres_catalogue_joined_with_a_remote(pg_here: Any, far: Any) -> None:
    query = ("SELECT t.hip AS mine, r.hip AS theirs, r.plx FROM hippg.hip2 AS t JOIN"
             " far.hipparcos.hip2 AS r ON 1=CONTAINS(POINT(t.ra, t.dec),"
             " CIRCLE(r.ra, r.dec, 1/3600.)) WHERE t.hpmag < 8")
    before = len(pg_here.sent)
    got = rows(sync(pg_here, None, query))
    want = rows(sync(pg_here, None, query.replace("hippg.hip2", "hipparcos.hip2").replace(
        "far.hipparcos.hip2", "hipparcos.hip2").replace("WHERE t.hpmag", "WHERE t.dec"
                                                        " BETWEEN 10 AND 12 AND t.hpmag")))
    assert got == want and len(want) > 20
    # The local side was read in PostgreSQL (its own WHERE term there), and only its key
    # and positions went to the remote.
    read, residual = pg_here.sent[before:before + 2]
    assert read.startswith('SELECT "t"."ra" AS "ra", "t"."dec" AS "dec", "t"."hip" AS "hip"'
                           ' FROM "hip_pg"."hip2" AS "t" WHERE "t"."hpmag" < 8')
    # ... and the local part ran there too, over the fetched rows as temporary tables.
    assert '"_inline_tap_upload_taphouse_remote" AS "r" ON "t"."taphouse_key" =' in residual
    sent = next(q for q in audit_queries(far) if "TAP_UPLOAD" in q)
    assert sent.startswith("SELECT t.taphouse_key, r.plx, r.hip FROM TAP_UPLOAD.taphouse_block")


class RecordingEngine(DuckDBEngine):
    """A real second DuckDB engine that keeps the SQL it ran."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sent: list[str] = []

    def stream(self, cur: Any, sql: str, *args: Any, **kw: Any) -> Any:
        self.sent.append(sql)
        return super().stream(cur, sql, *args, **kw)


CROSS = ("SELECT h.hip, g.source_id, g.phot_g_mean_mag FROM hipparcos.hip2 AS h"
         " JOIN gaia.dr3_bright AS g ON h.hip = g.hip WHERE h.hpmag < 6")


def test_catalogues_of_two_local_backends_join(start_server: Any) -> None:
    server = start_server(demo=True)
    platform = server.platform
    second = RecordingEngine(platform.settings.tables_dir)
    platform.backends.register("second", lambda ref: second)
    want = rows(sync(server, None, CROSS))
    platform.catalogue.set_backend("hipparcos", "second", "conn-a")
    r = sync(server, None, CROSS)
    assert rows(r) == want and len(want) > 50
    # Hipparcos (fewer rows than Gaia) was read on its backend with its own term; the
    # join ran on the default engine.
    (read,) = second.sent
    assert read.startswith('SELECT "h"."hip" AS "hip" FROM') and '"hpmag" < 6' in read
    assert b"CROSS_BACKEND" in r.content
    too_big = sync(server, None, CROSS.replace(" WHERE h.hpmag < 6", ""))
    assert too_big.status_code == 400
    assert "hipparcos.hip2 on second (conn-a) has 117955 rows after its own WHERE terms," \
        " more than the 100000 this service moves to the other tables' backend (duckdb)" \
        in too_big.text, too_big.text
    assert len(second.sent) == 1  # refused from its row count: nothing read


def test_a_postgres_catalogue_joined_with_a_duckdb_one(pg_here: Any) -> None:
    xmatch = ("SELECT h.hip, g.source_id FROM {hip} AS h JOIN gaia.dr3_bright AS g"
              " ON 1=CONTAINS(POINT(h.ra, h.dec), CIRCLE(g.ra, g.dec, 5/3600.))"
              " WHERE h.hpmag < 9{band}")
    before = len(pg_here.sent)
    got = rows(sync(pg_here, None, xmatch.format(hip="hippg.hip2", band="")))
    want = rows(sync(pg_here, None, xmatch.format(
        hip="hipparcos.hip2", band=" AND h.dec BETWEEN 10 AND 12")))
    assert got == want and len(want) > 20
    # Hipparcos in PostgreSQL (fewer rows) was read there with its own term; the
    # crossmatch ran on DuckDB with Gaia.
    (read,) = pg_here.sent[before:]
    assert '"hip_pg"."hip2"' in read and '"hpmag" < 9' in read


def test_a_backend_not_configured_is_a_clear_error(start_server: Any) -> None:
    server = start_server(demo=True)
    server.platform.catalogue.set_backend("hipparcos", "nosuch", "nowhere")
    r = sync(server, None, CROSS)
    assert r.status_code == 400
    assert "no 'nosuch' backend configured" in r.text, r.text
