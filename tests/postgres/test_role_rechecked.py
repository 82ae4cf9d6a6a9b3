"""A PostgreSQL query role given more than reading after its database was registered
(made superuser, CREATEROLE, a member of pg_read_server_files...) is refused at query
time with a clear error, not used: registration checked the role once, and pooled
connections went on running queries as a superuser. The check rides on the pool's
per-lease liveness query (no extra round trip); fixing the role makes the database
answer again, without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pyarrow as pa
import pytest

from pg_server import dsn_of
from servers import start_live
from taphouse.engine.pg_register import register_postgres
from taphouse.engine.postgres import load_table

ROLE = "th_promoted"
DBNAME = "th_roles"


@pytest.fixture(scope="module")
def served(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = start_live(tmp_path_factory.mktemp("pgroles") / "data")
    admin = psycopg.connect(pg_server.dsn, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {DBNAME}")
    admin.execute(f"CREATE DATABASE {DBNAME}")
    admin.execute(f"DROP ROLE IF EXISTS {ROLE}")
    admin.execute(f"CREATE ROLE {ROLE} LOGIN")
    setup_dsn = dsn_of(pg_server, dbname=DBNAME)
    with psycopg.connect(setup_dsn, autocommit=True) as setup:
        load_table(setup, "promo", "stars", pa.table({
            "id": list(range(100)), "ra": [i * 3.6 for i in range(100)],
            "dec": [(i % 90) - 45.0 for i in range(100)]}), ra_column="ra", dec_column="dec")
        setup.execute(f"GRANT USAGE ON SCHEMA promo TO {ROLE}")
        setup.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA promo TO {ROLE}")
    register_postgres(server.platform.catalogue, server.platform.secrets, "promodb",
                      dsn_of(pg_server, user=ROLE, dbname=DBNAME), "promo",
                      setup_dsn=setup_dsn, connection="promo")
    yield server, admin
    admin.execute(f"ALTER ROLE {ROLE} NOSUPERUSER NOCREATEROLE")
    admin.close()
    server.stop()


def count(server: Any) -> httpx.Response:
    return httpx.post(server.tap + "/sync", timeout=120, data={
        "LANG": "ADQL", "QUERY": "SELECT COUNT(*) AS n FROM promodb.stars",
        "RESPONSEFORMAT": "csv"})


@pytest.mark.parametrize("grant, word", [("SUPERUSER", "superuser"),
                                         ("CREATEROLE", "create roles")])
def test_a_role_given_more_after_registration_is_refused(served: Any, grant: str,
                                                         word: str) -> None:
    server, admin = served
    r = count(server)
    assert r.status_code == 200 and r.text.split() == ["n", "100"], r.text
    admin.execute(f"ALTER ROLE {ROLE} {grant}")
    try:
        r = count(server)  # the pooled connection of the first query, now superuser
        assert r.status_code == 503, r.text
        assert ROLE in r.text and word in r.text and "promo" in r.text, r.text
        assert "password" not in r.text and "host=" not in r.text
    finally:
        admin.execute(f"ALTER ROLE {ROLE} NO{grant}")
    r = count(server)
    assert r.status_code == 200 and r.text.split() == ["n", "100"], r.text
