"""A PostgreSQL query role that may do more than read is refused — by `db add-postgres`
and at query time — with an error naming what it may do and on which object: a
superuser, CREATEROLE, a member of pg_read_server_files..., and any privilege that
writes (INSERT/UPDATE/DELETE/TRUNCATE/REFERENCES/TRIGGER on a table, view or column,
USAGE on a sequence, CREATE on a schema or the database), owning an object, or any of
these through a role it is a member of or through PUBLIC. Registration checked the role
once, and pooled connections went on running queries as a superuser; the check rides on
the pool's per-lease liveness query (no extra round trip; privileges in full on one
lease every ``role_recheck`` seconds, 0 here); fixing the role makes the database
answer again, without a restart. TEMPORARY is allowed (uploads are copied in as
temporary tables), and a correct reading role is accepted. Membership of pg_read_all_data
and the other predefined roles that reach beyond the catalogue, and EXECUTE on a
superuser's SECURITY DEFINER function, are refused too. At query time any TAP caller gets
the 503: it says only that the database is refused, and the server log (once, not once
a request) names the role, what it may do and the objects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import logging

import httpx
import psycopg
import pyarrow as pa
import pytest

from pg_server import dsn_of
from servers import start_live
from taphouse.catalogue.model import CatalogueError
from taphouse.engine.pg_register import register_postgres, role_problems, secret_name
from taphouse.engine.postgres import load_table

ROLE = "th_promoted"
DBNAME = "th_roles"
GROUP = "th_promoted_group"


@pytest.fixture(scope="module")
def served(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = start_live(tmp_path_factory.mktemp("pgroles") / "data")
    admin = psycopg.connect(pg_server.dsn, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {DBNAME}")
    admin.execute(f"CREATE DATABASE {DBNAME}")
    for role in (ROLE, GROUP, "th_promoted_admin"):
        admin.execute(f"DROP ROLE IF EXISTS {role}")
    admin.execute(f"CREATE ROLE {ROLE} LOGIN")
    admin.execute(f"CREATE ROLE {GROUP}")
    admin.execute("CREATE ROLE th_promoted_admin SUPERUSER")
    setup_dsn = dsn_of(pg_server, dbname=DBNAME)
    setup = psycopg.connect(setup_dsn, autocommit=True)
    load_table(setup, "promo", "stars", pa.table({
        "id": list(range(100)), "ra": [i * 3.6 for i in range(100)],
        "dec": [(i % 90) - 45.0 for i in range(100)]}), ra_column="ra", dec_column="dec")
    setup.execute("CREATE VIEW promo.bright AS SELECT id, ra, dec FROM promo.stars")
    setup.execute("CREATE SEQUENCE promo.ids")
    setup.execute(f"GRANT USAGE ON SCHEMA promo TO {ROLE}")
    setup.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA promo TO {ROLE}")
    register_postgres(server.platform.catalogue, server.platform.secrets, "promodb",
                      dsn_of(pg_server, user=ROLE, dbname=DBNAME), "promo",
                      setup_dsn=setup_dsn, connection="promo")
    backend = server.platform.backends.backend(("postgres", "promo"))
    backend.role_recheck = 0  # every lease checks the privileges in full
    yield server, admin, setup, pg_server
    admin.execute(f"ALTER ROLE {ROLE} NOSUPERUSER NOCREATEROLE")
    setup.close()
    admin.close()
    server.stop()


def count(server: Any) -> httpx.Response:
    return httpx.post(server.tap + "/sync", timeout=120, data={
        "LANG": "ADQL", "QUERY": "SELECT COUNT(*) AS n FROM promodb.stars",
        "RESPONSEFORMAT": "csv"})


def answers(server: Any) -> None:
    r = count(server)
    assert r.status_code == 200 and r.text.split() == ["n", "100"], r.text


GENERIC = ("the PostgreSQL database promo is unavailable: its query role is refused by"
           " the server's safety check; the operator has the details in the server log")


def refused(server: Any, caplog: pytest.LogCaptureFixture, *named: str) -> str:
    """Two queries answered 503 with the generic message, naming none of ``named``
    (nor the role); the server log has one warning naming them all: its text."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="taphouse.postgres"):
        for _ in range(2):
            r = count(server)
            assert r.status_code == 503 and GENERIC in r.text, r.text
            for word in (ROLE, "stars", *named):
                assert word not in r.text, (word, r.text)
    logged = [rec.getMessage() for rec in caplog.records
              if rec.name == "taphouse.postgres" and "may do more than read" in rec.getMessage()]
    assert len(logged) == 1, logged  # once, not once a request
    for word in (ROLE, *named):
        assert word in logged[0], (word, logged[0])
    assert "password" not in logged[0] and "host=" not in logged[0], logged[0]
    return logged[0]


@pytest.mark.parametrize("grant, word", [("SUPERUSER", "superuser"),
                                         ("CREATEROLE", "create roles")])
def test_a_role_given_more_after_registration_is_refused(
        served: Any, grant: str, word: str, caplog: pytest.LogCaptureFixture) -> None:
    server, admin, _, _ = served
    answers(server)
    admin.execute(f"ALTER ROLE {ROLE} {grant}")
    try:
        # the pooled connection of the first query, now superuser
        refused(server, caplog, word)
    finally:
        admin.execute(f"ALTER ROLE {ROLE} NO{grant}")
    answers(server)


# (grant, take back, what the error says; run by the database's superuser): each a
# privilege that writes, or a way to get one
WRITES = {
    "insert": (f"GRANT INSERT ON promo.stars TO {ROLE}",
               f"REVOKE INSERT ON promo.stars FROM {ROLE}", "INSERT on table promo.stars"),
    "update": (f"GRANT UPDATE ON promo.stars TO {ROLE}",
               f"REVOKE UPDATE ON promo.stars FROM {ROLE}", "UPDATE on table promo.stars"),
    "delete": (f"GRANT DELETE ON promo.stars TO {ROLE}",
               f"REVOKE DELETE ON promo.stars FROM {ROLE}", "DELETE on table promo.stars"),
    "truncate": (f"GRANT TRUNCATE ON promo.stars TO {ROLE}",
                 f"REVOKE TRUNCATE ON promo.stars FROM {ROLE}",
                 "TRUNCATE on table promo.stars"),
    "references": (f"GRANT REFERENCES ON promo.stars TO {ROLE}",
                   f"REVOKE REFERENCES ON promo.stars FROM {ROLE}",
                   "REFERENCES on table promo.stars"),
    "trigger": (f"GRANT TRIGGER ON promo.stars TO {ROLE}",
                f"REVOKE TRIGGER ON promo.stars FROM {ROLE}", "TRIGGER on table promo.stars"),
    "column": (f"GRANT UPDATE (ra) ON promo.stars TO {ROLE}",
               f"REVOKE UPDATE (ra) ON promo.stars FROM {ROLE}",
               "UPDATE on column ra of promo.stars"),
    "view": (f"GRANT INSERT ON promo.bright TO {ROLE}",
             f"REVOKE INSERT ON promo.bright FROM {ROLE}", "INSERT on view promo.bright"),
    "sequence": (f"GRANT USAGE ON SEQUENCE promo.ids TO {ROLE}",
                 f"REVOKE USAGE ON SEQUENCE promo.ids FROM {ROLE}",
                 "USAGE on sequence promo.ids"),
    "create in schema": (f"GRANT CREATE ON SCHEMA promo TO {ROLE}",
                         f"REVOKE CREATE ON SCHEMA promo FROM {ROLE}",
                         "CREATE on schema promo"),
    "create in public": (f"GRANT CREATE ON SCHEMA public TO {ROLE}",
                         f"REVOKE CREATE ON SCHEMA public FROM {ROLE}",
                         "CREATE on schema public"),
    "create schemas": (f"GRANT CREATE ON DATABASE {DBNAME} TO {ROLE}",
                       f"REVOKE CREATE ON DATABASE {DBNAME} FROM {ROLE}",
                       f"CREATE on database {DBNAME}"),
    "owns a table": (f"CREATE TABLE promo.mine (a int); ALTER TABLE promo.mine"
                     f" OWNER TO {ROLE}", "DROP TABLE promo.mine", "owns table promo.mine"),
    "owns a function": ("CREATE FUNCTION taphouse.th_mine() RETURNS int"
                        " LANGUAGE sql AS 'SELECT 1'; ALTER FUNCTION taphouse.th_mine()"
                        f" OWNER TO {ROLE}", "DROP FUNCTION taphouse.th_mine()",
                        "owns function taphouse.th_mine()"),
    "through PUBLIC": ("GRANT DELETE ON promo.stars TO PUBLIC",
                       "REVOKE DELETE ON promo.stars FROM PUBLIC",
                       "DELETE on table promo.stars"),
    "inherited from a group": (
        f"GRANT INSERT, UPDATE ON promo.stars TO {GROUP}; GRANT {GROUP} TO {ROLE}",
        f"REVOKE {GROUP} FROM {ROLE}; REVOKE ALL ON promo.stars FROM {GROUP}",
        "INSERT, UPDATE on table promo.stars"),
    "a group it may SET ROLE to": (
        f"GRANT TRUNCATE ON promo.stars TO {GROUP};"
        f" GRANT {GROUP} TO {ROLE}; ALTER ROLE {ROLE} NOINHERIT",
        f"ALTER ROLE {ROLE} INHERIT; REVOKE {GROUP} FROM {ROLE};"
        f" REVOKE ALL ON promo.stars FROM {GROUP}",
        f"role {GROUP}, of which it is a member, has TRUNCATE on table promo.stars"),
    "a superuser group": (f"GRANT th_promoted_admin TO {ROLE}",
                          f"REVOKE th_promoted_admin FROM {ROLE}",
                          "role th_promoted_admin, of which it is a member, is a superuser"),
    **{role: (f"GRANT {role} TO {ROLE}", f"REVOKE {role} FROM {ROLE}",
              f"member of {role}")
       for role in ("pg_write_server_files", "pg_read_server_files",
                    "pg_execute_server_program", "pg_write_all_data", "pg_read_all_data",
                    "pg_read_all_settings", "pg_read_all_stats", "pg_stat_scan_tables",
                    "pg_monitor", "pg_signal_backend", "pg_checkpoint")},
    "a superuser's SECURITY DEFINER function": (
        "CREATE FUNCTION public.th_definer(a int) RETURNS int LANGUAGE sql"
        " SECURITY DEFINER AS 'SELECT a'", "DROP FUNCTION public.th_definer(int)",
        "EXECUTE on function public.th_definer(a integer), SECURITY DEFINER of superuser"),
}


@pytest.mark.parametrize("case", list(WRITES))
def test_a_role_that_may_write_is_refused(served: Any, case: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """Refused by registration (the operator's error names it; nothing registered, no
    DSN stored) and, when granted after registration, at query time (a generic 503;
    the log names it); answers again once taken back."""
    server, _, setup, pg_server = served
    grant, revoke, said = WRITES[case]
    answers(server)
    for statement in grant.split("; "):
        setup.execute(statement)
    try:
        platform = server.platform
        with pytest.raises(CatalogueError) as err:
            register_postgres(platform.catalogue, platform.secrets, "promo2",
                              dsn_of(pg_server, user=ROLE, dbname=DBNAME), "promo",
                              connection="promo2")
        assert said in str(err.value) and ROLE in str(err.value), str(err.value)
        assert platform.catalogue.database("promo2") is None
        assert platform.secrets.get(secret_name("promo2")) is None
        refused(server, caplog, said)
    finally:
        for statement in revoke.split("; "):
            setup.execute(statement)
    answers(server)


def test_a_reading_role_with_temporary_tables_is_accepted(served: Any) -> None:
    """The registered role has TEMPORARY (and USAGE, SELECT, EXECUTE): accepted, also
    while another of its sessions holds a temporary table it owns, and an upload joined
    with the table is copied in as one."""
    server, _, _, pg_server = served
    with psycopg.connect(dsn_of(pg_server, user=ROLE, dbname=DBNAME),
                         autocommit=True) as other:
        other.execute("CREATE TEMPORARY TABLE held (a int)")
        other.execute("CREATE TEMPORARY SEQUENCE held_ids")
        assert role_problems(other) == (ROLE, [])
        answers(server)
        votable = ('<?xml version="1.0"?><VOTABLE version="1.4"'
                   ' xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>'
                   '<FIELD name="id" datatype="int"/><DATA><TABLEDATA>'
                   '<TR><TD>3</TD></TR><TR><TD>5</TD></TR></TABLEDATA></DATA></TABLE>'
                   '</RESOURCE></VOTABLE>')
        r = httpx.post(server.tap + "/sync", timeout=120, data={
            "LANG": "ADQL", "RESPONSEFORMAT": "csv", "UPLOAD": "mine,param:mine",
            "QUERY": "SELECT s.id FROM promodb.stars AS s JOIN TAP_UPLOAD.mine AS m"
                     " ON m.id = s.id ORDER BY s.id"}, files={"mine": ("mine.xml", votable)})
        assert r.status_code == 200 and r.text.split() == ["id", "3", "5"], r.text


def test_privileges_are_rechecked_every_role_recheck_seconds(
        served: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Privileges are checked in full on one lease every ``role_recheck`` seconds (their
    cost grows with the database's tables); attributes on every lease."""
    server, admin, setup, _ = served
    backend = server.platform.backends.backend(("postgres", "promo"))
    backend.role_recheck = 3600.0
    try:
        answers(server)  # checked in full just now (0 before)
        setup.execute(f"GRANT INSERT ON promo.stars TO {ROLE}")
        answers(server)  # not yet
        admin.execute(f"ALTER ROLE {ROLE} CREATEDB")
        # attributes: every lease; then all it may do
        refused(server, caplog, "create roles or databases", "INSERT on table promo.stars")
        admin.execute(f"ALTER ROLE {ROLE} NOCREATEDB")
        logged = refused(server, caplog, "INSERT on table promo.stars")
        assert "create roles" not in logged, logged
    finally:
        setup.execute(f"REVOKE INSERT ON promo.stars FROM {ROLE}")
        admin.execute(f"ALTER ROLE {ROLE} NOCREATEDB")
        backend.role_recheck = 0
    answers(server)


def test_security_definer_functions_it_cannot_reach_or_of_a_reader_are_accepted(
        served: Any) -> None:
    """A superuser's SECURITY DEFINER function in a schema the role may not use, one it
    may not EXECUTE, and one of a role that is no superuser are not the query role's
    problem; EXECUTE on the superuser's function once the role may use its schema is."""
    server, _, setup, pg_server = served
    setup.execute("CREATE SCHEMA th_hidden")
    setup.execute("CREATE FUNCTION th_hidden.th_definer() RETURNS int LANGUAGE sql"
                  " SECURITY DEFINER AS 'SELECT 1'")
    setup.execute("CREATE FUNCTION public.th_locked() RETURNS int LANGUAGE sql"
                  " SECURITY DEFINER AS 'SELECT 1'")
    setup.execute("REVOKE EXECUTE ON FUNCTION public.th_locked() FROM PUBLIC")
    setup.execute("CREATE FUNCTION public.th_group_definer() RETURNS int LANGUAGE sql"
                  " SECURITY DEFINER AS 'SELECT 1'")
    setup.execute(f"ALTER FUNCTION public.th_group_definer() OWNER TO {GROUP}")
    try:
        with psycopg.connect(dsn_of(pg_server, user=ROLE, dbname=DBNAME),
                             autocommit=True) as conn:
            assert role_problems(conn) == (ROLE, [])
            answers(server)
            setup.execute(f"GRANT USAGE ON SCHEMA th_hidden TO {ROLE}")
            assert role_problems(conn) == (ROLE, [
                "it has EXECUTE on function th_hidden.th_definer(), SECURITY DEFINER of"
                f" superuser {pg_server.user}"])
    finally:
        setup.execute("DROP SCHEMA th_hidden CASCADE")
        setup.execute("DROP FUNCTION public.th_locked(), public.th_group_definer()")
    answers(server)
