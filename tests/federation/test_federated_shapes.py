"""Shapes an astronomer writes over a federated join, each answered like the same query
over the local copy of the remote table (tests/federation/conftest.py: ``far`` serves
the demo catalogue): WHERE terms over the joined result, ORDER BY / TOP / OFFSET,
DISTANCE(...) < r instead of CONTAINS, GROUP BY / HAVING, DISTINCT, a third (local)
table, a term on two local tables and the remote one. Shapes not federated are a 400
VOTable error naming what and where, never a wrong answer or a 500."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from astropy.io.votable import parse_single_table
from federation_helpers import audit_queries, sync

XM = "1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, 1/3600.))"
SHAPES = {
    "where_over_both": "SELECT t.hip, r.hpmag FROM mydb.targets AS t JOIN far.hipparcos.hip2"
    f" AS r ON {XM} WHERE r.hpmag - t.ra > -400 AND (r.hpmag < 8 OR t.hip < 2000)",
    "order_top": "SELECT TOP 5 t.hip, r.hpmag FROM mydb.targets AS t JOIN"
    f" far.hipparcos.hip2 AS r ON {XM} ORDER BY r.hpmag DESC, t.hip",
    "offset": "SELECT t.hip FROM mydb.targets AS t JOIN far.hipparcos.hip2 AS r ON t.hip ="
    " r.hip ORDER BY t.hip OFFSET 290",
    "distance_on": "SELECT t.hip AS mine, r.hip AS theirs FROM mydb.targets AS t JOIN"
    " far.hipparcos.hip2 AS r ON DISTANCE(POINT(t.ra, t.dec), POINT(r.ra, r.dec)) < 1/3600.",
    "distance_where": "SELECT t.hip AS mine, r.hip AS theirs FROM mydb.targets AS t,"
    " far.hipparcos.hip2 AS r WHERE DISTANCE(POINT(t.ra, t.dec), POINT(r.ra, r.dec)) < 1/3600.",
    "circle_on_the_local_side": "SELECT t.hip, r.hip AS h2 FROM mydb.targets AS t JOIN"
    " far.hipparcos.hip2 AS r ON CONTAINS(POINT(r.ra, r.dec), CIRCLE(t.ra, t.dec, 1/3600.)) = 1",
    "group_having": "SELECT t.hip, COUNT(*) AS n FROM mydb.targets AS t JOIN"
    " far.hipparcos.hip2 AS r ON 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, 0.5))"
    " GROUP BY t.hip HAVING COUNT(*) > 1 ORDER BY n DESC, t.hip",
    "distinct": f"SELECT DISTINCT r.hip FROM mydb.targets AS t JOIN far.hipparcos.hip2 AS r"
    f" ON {XM}",
    "third_local_table": "SELECT t.hip, h.hpmag, r.plx FROM mydb.targets AS t JOIN"
    f" hipparcos.hip2 AS h ON t.hip = h.hip JOIN far.hipparcos.hip2 AS r ON {XM}",
}


def table_of(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return parse_single_table(io.BytesIO(response.content)).to_table()


def as_rows(table: Any) -> list[str]:
    return [str(row) for row in table.as_array().tolist()]


@pytest.mark.parametrize("name", list(SHAPES))
def test_a_shape_answers_like_the_local_query(here: Any, name: str) -> None:
    query = SHAPES[name]
    got = table_of(sync(here, "alice", query))
    want = table_of(sync(here, "alice", query.replace("far.hipparcos.hip2", "hipparcos.hip2")))
    assert len(want) > 0 and got.colnames == want.colnames
    if "ORDER BY" in query:
        assert as_rows(got) == as_rows(want)
    else:
        assert sorted(as_rows(got)) == sorted(as_rows(want))


@pytest.mark.parametrize("term", ["r.hpmag <= h.hpmag", "r.hip = h.hip AND h.hpmag > 0"])
def test_a_term_on_another_local_table_and_the_remote_stays_local(
        here: Any, far: Any, term: str) -> None:
    """``r.hpmag <= h.hpmag`` names the remote and a second local table: it runs here over
    the fetched rows; the crossmatch with ``t`` still goes up as an upload (before: no
    upload side, a pull of the whole remote table, refused as too large)."""
    query = ("SELECT t.hip, h.hpmag, r.plx FROM mydb.targets AS t JOIN hipparcos.hip2 AS h"
             f" ON t.hip = h.hip JOIN far.hipparcos.hip2 AS r ON {XM} AND {term}")
    r = sync(here, "alice", query)
    got = table_of(r)
    want = table_of(sync(here, "alice", query.replace("far.hipparcos.hip2", "hipparcos.hip2")))
    assert sorted(as_rows(got)) == sorted(as_rows(want)) and len(want) > 100
    assert b'name="FEDERATION" value="upload"' in r.content
    sent = next(q for q in audit_queries(far) if "TAP_UPLOAD" in q)
    assert "h." not in sent and sent.startswith("SELECT t.taphouse_key, r.plx, r.h")


def error_of(response: Any) -> str:
    assert response.status_code == 400, (response.status_code, response.text)
    m = re.search(r'<INFO name="QUERY_STATUS" value="ERROR">(.*?)</INFO>', response.text, re.S)
    assert m, response.text
    return m.group(1)


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT COUNT(*) AS n FROM mydb.targets AS t NATURAL JOIN far.hipparcos.hip2 AS r"
     " WHERE r.hip < 50", "NATURAL JOIN between local and remote tables"),
    ("WITH x AS (SELECT hip, ra, dec FROM mydb.targets) SELECT x.hip, r.hip FROM x JOIN"
     " far.hipparcos.hip2 AS r ON x.hip = r.hip", "may not hold subqueries"),
    ("SELECT s.hip, r.hip FROM (SELECT hip FROM mydb.targets) AS s JOIN far.hipparcos.hip2"
     " AS r ON s.hip = r.hip", "may not hold subqueries"),
    ("SELECT hip FROM mydb.targets UNION SELECT hip FROM far.hipparcos.hip2",
     "must be one SELECT"),
    ("SELECT t.hip FROM mydb.targets AS t JOIN far.hipparcos.hip2 AS r ON t.hip = r.hip JOIN"
     " far.hipparcos.hip2 AS r2 ON r2.hip = t.hip", "reads 2 tables of remote 'far'"),
    ("SELECT * FROM mydb.targets AS t RIGHT JOIN far.hipparcos.hip2 AS r ON t.hip = r.hip",
     "RIGHT JOIN between local and remote tables"),
])
def test_shapes_not_federated_are_a_votable_error(here: Any, query: str, message: str) -> None:
    assert message in error_of(sync(here, "alice", query))
