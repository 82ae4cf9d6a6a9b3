"""Whole queries pushed down to one remote (a second real taphouse): the ADQL the remote
received (its audit log) and the rows that came back, not only the answers."""

from __future__ import annotations

from typing import Any

import pytest
from remote_helpers import REMOTE_MAXREC_HARD

from taphouse.adql.errors import AdqlError
from taphouse.adql.translator import parse
from taphouse.auth.identity import Identity
from taphouse.remotes.pushdown import plan_remote, run_remote, to_adql

ANYONE = Identity()


@pytest.fixture
def far(registry, remote_server) -> Any:  # noqa: ANN001
    registry.add("far", remote_server.tap)
    return registry


def received(remote_server: Any) -> str:
    """The last query the remote ran, as its audit log recorded it."""
    entries = remote_server.platform.authenticator.audit_log.entries(event="query", limit=5)
    return next(e["detail"] for e in entries if "TAP_SCHEMA" not in (e["detail"] or ""))


def test_cone_with_top_is_pushed_down_whole(far, remote_server) -> None:  # noqa: ANN001
    adql = ("SELECT TOP 10 hip, ra, dec FROM far.hipparcos.hip2"
            " WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 2))"
            " ORDER BY hpmag")
    plan = plan_remote(parse(adql), ANYONE, far, maxrec=1000)
    assert plan.adql == ("SELECT TOP 10 hip, ra, dec FROM hipparcos.hip2 WHERE 1 ="
                         " CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 2))"
                         " ORDER BY hpmag")
    assert plan.maxrec == 10
    answer = run_remote(plan, far)
    assert received(remote_server) == plan.adql
    assert answer.rows == 10 and not answer.overflow and answer.mode == "sync"  # TOP 10
    assert run_remote(plan, far, mode="async").table == answer.table
    # The same as asking the remote directly; only these 10 rows crossed the wire.
    direct = far.client("far").query_sync(plan.adql)
    assert answer.table.to_pylist() == direct.table.to_pylist()


def test_aggregates_and_group_by_travel(far, remote_server) -> None:  # noqa: ANN001
    adql = ("SELECT FLOOR(hpmag) AS m, COUNT(*) AS n, AVG(plx) AS p FROM far.hipparcos.hip2"
            " AS h WHERE h.hpmag < 6 AND h.dec > 0 GROUP BY FLOOR(hpmag) ORDER BY m")
    plan = plan_remote(parse(adql), ANYONE, far)
    assert "GROUP BY FLOOR(hpmag)" in plan.adql and "COUNT(*) AS n" in plan.adql
    assert "FROM hipparcos.hip2 AS h WHERE h.hpmag < 6 AND h.dec > 0" in plan.adql
    answer = run_remote(plan, far)
    assert received(remote_server) == plan.adql
    assert answer.rows <= 8  # a handful of groups came back, not the stars
    assert sum(answer.table.column("n").to_pylist()) > 1000


def test_distance_and_qualified_columns(far, remote_server) -> None:  # noqa: ANN001
    adql = ("SELECT far.hipparcos.hip2.hip, DISTANCE(POINT('ICRS', ra, dec),"
            " POINT('ICRS', 56.75, 24.12)) AS d FROM far.hipparcos.hip2 WHERE"
            " DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 56.75, 24.12)) < 0.5")
    plan = plan_remote(parse(adql), ANYONE, far)
    assert plan.adql.startswith("SELECT hipparcos.hip2.hip, DISTANCE(")
    assert "far." not in plan.adql
    answer = run_remote(plan, far)
    assert answer.rows > 0 and max(answer.table.column("d").to_pylist()) < 0.5


def test_maxrec_and_the_remote_hard_limit(far) -> None:  # noqa: ANN001
    plan = plan_remote(parse("SELECT hip FROM far.hipparcos.hip2"), ANYONE, far,
                       maxrec=1_000_000)
    assert plan.maxrec == REMOTE_MAXREC_HARD
    answer = run_remote(plan, far)
    assert answer.overflow and answer.rows == REMOTE_MAXREC_HARD  # never taken as complete


@pytest.mark.parametrize(("adql", "message"), [
    ("SELECT * FROM nosuchcatalog.hipparcos.hip2", "'nosuchcatalog' is not a remote"),
    ("SELECT * FROM far.hipparcos.nope", "remote 'far' has no table hipparcos.nope"),
    ("SELECT * FROM far.hipparcos.hip2 AS a JOIN hipparcos.hip2 AS b ON a.hip = b.hip",
     "mixes remote 'far' with the local table hipparcos.hip2"),
    ("SELECT * FROM far.hipparcos.hip2 AS a, other.x.y AS b", "'other' is not a remote"),
    ("SELECT my_udf(ra) FROM far.hipparcos.hip2", "does not advertise the function my_udf"),
    ('SELECT * FROM far."HIPPARCOS".hip2', "remote 'far' has no table HIPPARCOS.hip2"),
])
def test_refused_plans_say_why(far, adql: str, message: str) -> None:  # noqa: ANN001
    with pytest.raises(AdqlError) as err:
        plan_remote(parse(adql), ANYONE, far)
    assert message in str(err.value)


def test_group_restricted_remote_is_unknown_to_others(registry, remote_server) -> None:  # noqa: ANN001
    registry.add("inside", remote_server.tap, groups=("survey",))
    with pytest.raises(AdqlError, match="'inside' is not a remote service you can query"):
        plan_remote(parse("SELECT * FROM inside.hipparcos.hip2"), ANYONE, registry)
    member = Identity(username="a", user_id=1, groups=frozenset({"survey"}))
    assert plan_remote(parse("SELECT TOP 1 * FROM inside.hipparcos.hip2"), member,
                       registry).adql == "SELECT TOP 1 * FROM hipparcos.hip2"


def test_adql_text_is_generated_not_copied() -> None:
    tree = parse("select   distinct top 3 a from s.t  -- a comment\n where x = 'it''s'")
    assert to_adql(tree) == "SELECT DISTINCT TOP 3 a FROM s.t WHERE x = 'it''s'"
    nested = parse("SELECT TOP 2 q.a FROM (SELECT TOP 5 a FROM s.t ORDER BY a) AS q")
    assert to_adql(nested) == ("SELECT TOP 2 q.a FROM (SELECT TOP 5 a FROM s.t ORDER BY a)"
                               " AS q")


@pytest.mark.parametrize("adql", [
    "SELECT COUNT(*) FROM nosuchcatalog.hipparcos.hip2",
    "SELECT nosuchcatalog.hipparcos.hip2.hip FROM hipparcos.hip2",
])
def test_a_mistyped_remote_never_reads_local_data(remote_server, adql: str) -> None:  # noqa: ANN001
    # The three-part name used to be read as hipparcos.hip2: local rows for a typo.
    import httpx

    r = httpx.post(remote_server.tap + "/sync", data={"LANG": "ADQL", "QUERY": adql},
                   timeout=60)
    assert r.status_code == 400
    assert b"'nosuchcatalog' is not a remote service" in r.content
