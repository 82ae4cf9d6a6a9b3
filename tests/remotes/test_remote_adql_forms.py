"""The ADQL sent to a remote is ADQL, in the words ADQL has, and uses only the optional
features the remote advertises. The remote ADQL is generated from the query's tree with
sqlglot's base SQL, which writes some functions as other SQL dialects do (``a % 2``,
``LOG(10, x)``, ``TRUNC``, ``CEIL``, ``CAST(x AS DOUBLE)``): a taphouse remote reads
those, a standard TAP service refuses them (or, for LOG, reads another function)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fake_tap import VOT, FakeTap, votable
from remote_helpers import LOOPBACK

from taphouse.adql.errors import AdqlError
from taphouse.adql.translator import parse
from taphouse.auth.identity import Identity
from taphouse.remotes.pushdown import plan_remote, to_adql


@pytest.mark.parametrize(("adql", "sent"), [
    ("SELECT MOD(a, 2) AS m FROM s.t", "SELECT MOD(a, 2) AS m FROM s.t"),
    ("SELECT LOG10(a), LOG(a), LN(a), EXP(a) FROM s.t",
     "SELECT LOG10(a), LOG(a), LOG(a), EXP(a) FROM s.t"),
    ("SELECT TRUNCATE(a, 2), TRUNCATE(a), CEILING(a), FLOOR(a), ROUND(a, 1) FROM s.t",
     "SELECT TRUNCATE(a, 2), TRUNCATE(a), CEILING(a), FLOOR(a), ROUND(a, 1) FROM s.t"),
    ("SELECT CAST(a AS DOUBLE PRECISION), CAST(a AS INTEGER), CAST(a AS REAL),"
     " CAST(a AS BIGINT), CAST(a AS VARCHAR(8)) FROM s.t",
     "SELECT CAST(a AS DOUBLE PRECISION), CAST(a AS INTEGER), CAST(a AS REAL),"
     " CAST(a AS BIGINT), CAST(a AS VARCHAR(8)) FROM s.t"),
    ("SELECT TOP 3 a FROM s.t WHERE MOD(a, 7) = 1 ORDER BY CEILING(a)",
     "SELECT TOP 3 a FROM s.t WHERE MOD(a, 7) = 1 ORDER BY CEILING(a)"),
])
def test_functions_are_written_as_adql(adql: str, sent: str) -> None:
    assert to_adql(parse(adql)) == sent


@pytest.fixture
def site(start_server, fake_tap: FakeTap) -> Any:  # noqa: ANN001
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, votable([(1, 0.5), (3, 1.5)]))
    server = start_server(outbound_allow=LOOPBACK)
    server.platform.remotes.add("odd", fake_tap.url)
    return server


def test_the_remote_receives_adql_through_the_platform(site, fake_tap: FakeTap) -> None:  # noqa: ANN001
    r = httpx.post(site.tap + "/sync", timeout=120, data={
        "LANG": "ADQL", "RESPONSEFORMAT": "csv",
        "QUERY": "SELECT TOP 5 id, raj2000 FROM odd.cat.stars WHERE MOD(id, 2) = 1"
                 " AND LOG10(raj2000 + 1) < 1 ORDER BY CEILING(raj2000)"})
    assert r.status_code == 200, r.text
    assert r.text.splitlines()[1:] == ["1,0.5", "3,1.5"]
    (query,) = [s for s in fake_tap.seen if s.path == "/tap/sync"]
    assert query.form["QUERY"] == ("SELECT TOP 5 id, raj2000 FROM cat.stars WHERE"
                                   " MOD(id, 2) = 1 AND LOG10(raj2000 + 1) < 1"
                                   " ORDER BY CEILING(raj2000)")


@pytest.mark.parametrize(("adql", "form"), [
    ("SELECT LOWER(raj2000) FROM odd.cat.stars", "LOWER"),
    ("SELECT id FROM odd.cat.stars WHERE raj2000 ILIKE 'x%'", "ILIKE"),
    ("SELECT CAST(id AS DOUBLE PRECISION) FROM odd.cat.stars", "CAST"),
    ("SELECT IN_UNIT(raj2000, 'rad') FROM odd.cat.stars", "IN_UNIT"),
])
def test_optional_features_the_remote_does_not_advertise_are_refused(
        registry, fake_tap: FakeTap, adql: str, form: str) -> None:  # noqa: ANN001
    # The fake advertises CONTAINS, POINT and CIRCLE only: nothing is sent.
    registry.add("odd", fake_tap.url)
    with pytest.raises(AdqlError) as err:
        plan_remote(parse(adql), Identity(), registry)
    assert "remote 'odd' does not advertise" in str(err.value) and form in str(err.value)
    assert not any(s.path == "/tap/sync" for s in fake_tap.seen)
