"""Joins, subqueries, WITH and set operations."""

from __future__ import annotations

import pytest
from backends import same_rows

from taphouse.adql import AdqlError

CORPUS = [
    ("SELECT s.id, o.obs_id FROM demo.stars AS s JOIN demo.obs AS o ON s.id = o.id",
     [(1, 100), (1, 101), (2, 102), (3, 103)]),
    ("SELECT s.id, o.obs_id FROM demo.stars AS s INNER JOIN demo.obs AS o ON s.id = o.id "
     "WHERE o.band = 'R'", [(1, 101)]),
    ("SELECT s.id, o.obs_id FROM demo.stars AS s LEFT OUTER JOIN demo.obs AS o "
     "ON s.id = o.id WHERE s.id IN (3, 4)", [(3, 103), (4, None)]),
    ("SELECT s.id, o.obs_id FROM demo.stars AS s LEFT JOIN demo.obs AS o ON s.id = o.id "
     "AND o.band = 'R' WHERE s.id <= 2", [(1, 101), (2, None)]),
    ("SELECT s.id, o.obs_id FROM demo.stars AS s RIGHT OUTER JOIN demo.obs AS o "
     "ON s.id = o.id WHERE o.obs_id >= 103", [(3, 103), (None, 104)]),
    ("SELECT s.id, o.obs_id FROM demo.stars AS s FULL OUTER JOIN demo.obs AS o "
     "ON s.id = o.id WHERE o.obs_id = 104 OR s.id = 10", [(10, None), (None, 104)]),
    ("SELECT id, obs_id FROM demo.stars NATURAL JOIN demo.obs WHERE band = 'G'",
     [(1, 100), (2, 102), (3, 103)]),
    ("SELECT id, obs_id, name FROM demo.obs JOIN demo.stars USING (id) WHERE id = 2",
     [(2, 102, "beta")]),
    ("SELECT COUNT(*) FROM demo.stars CROSS JOIN demo.obs", [(50,)]),
    ("SELECT COUNT(*) FROM demo.stars AS a, demo.obs AS b WHERE a.id = b.id", [(4,)]),
    ("SELECT a.id, b.id FROM demo.stars AS a JOIN demo.stars AS b ON b.id = a.id + 1 "
     "WHERE a.id < 3", [(1, 2), (2, 3)]),
    # subqueries
    ("SELECT id FROM demo.stars WHERE id IN (SELECT id FROM demo.obs WHERE band = 'R')",
     [(1,)]),
    ("SELECT id FROM demo.stars WHERE id NOT IN (SELECT id FROM demo.obs) AND id < 6",
     [(4,), (5,)]),
    ("SELECT id FROM demo.stars AS s WHERE EXISTS (SELECT 1 FROM demo.obs AS o "
     "WHERE o.id = s.id AND o.flux > 2)", [(1,), (2,)]),
    ("SELECT id FROM demo.stars AS s WHERE NOT EXISTS (SELECT * FROM demo.obs AS o "
     "WHERE o.id = s.id) AND s.id > 8", [(9,), (10,)]),
    ("SELECT id, (SELECT MAX(flux) FROM demo.obs AS o WHERE o.id = s.id) AS fmax "
     "FROM demo.stars AS s WHERE id <= 2", [(1, 2.5), (2, 3.0)]),
    ("SELECT id FROM demo.stars WHERE mag = (SELECT MIN(mag) FROM demo.stars)", [(6,)]),
    ("SELECT d.band, d.n FROM (SELECT band, COUNT(*) AS n FROM demo.obs GROUP BY band) AS d "
     "WHERE d.n > 1", [("G", 3)]),
    ("SELECT x.k FROM (SELECT id AS k FROM demo.stars) AS x WHERE x.k > 9", [(10,)]),
    ("SELECT t.a FROM (SELECT id FROM demo.stars) AS t(a) WHERE t.a = 3", [(3,)]),
    # WITH
    ("WITH bright AS (SELECT id, mag FROM demo.stars WHERE mag < 12) "
     "SELECT id FROM bright", [(6,), (7,)]),
    ("WITH a AS (SELECT id FROM demo.stars WHERE id < 4), b AS (SELECT id FROM a WHERE id > 1)"
     " SELECT b.id, o.obs_id FROM b JOIN demo.obs AS o ON o.id = b.id", [(2, 102), (3, 103)]),
    # set operations
    ("SELECT id FROM demo.stars WHERE id < 3 UNION SELECT id FROM demo.obs",
     [(1,), (2,), (3,), (99,)]),
    ("SELECT id FROM demo.stars WHERE id < 3 UNION ALL SELECT id FROM demo.obs WHERE id = 1",
     [(1,), (1,), (1,), (2,)]),
    ("SELECT id FROM demo.stars INTERSECT SELECT id FROM demo.obs", [(1,), (2,), (3,)]),
    ("SELECT id FROM demo.obs EXCEPT SELECT id FROM demo.stars", [(99,)]),
    ("SELECT id FROM demo.obs INTERSECT ALL SELECT id FROM demo.obs WHERE id = 1",
     [(1,), (1,)]),
    ("SELECT id FROM demo.obs EXCEPT ALL SELECT id FROM demo.stars", [(1,), (99,)]),
    ("SELECT id AS k FROM demo.stars WHERE id < 3 UNION SELECT id FROM demo.obs ORDER BY k "
     "DESC", [(99,), (3,), (2,), (1,)]),
]


@pytest.mark.parametrize(("adql", "expected"), CORPUS, ids=[c[0][:60] for c in CORPUS])
def test_corpus(backend, adql, expected):
    _, rows = backend.run(adql)
    same_rows(rows, expected, "ORDER BY" in adql.upper())


def test_union_column_metadata(env):
    t, _ = env.run("SELECT mag FROM demo.stars UNION SELECT mag FROM demo.stars")
    assert (t.columns[0].name, t.columns[0].unit) == ("mag", "mag")
    t, _ = env.run("SELECT mag FROM demo.stars UNION SELECT flux FROM demo.obs")
    assert t.columns[0].unit is None


def test_derived_table_keeps_metadata(env):
    t, _ = env.run("SELECT x.m FROM (SELECT mag AS m FROM demo.stars) AS x")
    assert (t.columns[0].unit, t.columns[0].ucd) == ("mag", "phot.mag")


INVALID = [
    ("SELECT id FROM demo.stars JOIN demo.obs ON stars.id = obs.id", "ambiguous"),
    ("SELECT x FROM (SELECT id FROM demo.stars)", "needs an alias"),
    ("SELECT id FROM demo.stars UNION SELECT id, band FROM demo.obs", "different numbers"),
    ("SELECT a.id FROM demo.stars AS a JOIN demo.obs AS a ON 1 = 1", "used twice"),
    ("SELECT s.nope FROM demo.stars AS s", "unknown column nope in demo.stars"),
    ("SELECT q.id FROM demo.stars AS s", "unknown table q"),
    ("SELECT id FROM demo.stars JOIN demo.obs USING (band)", "USING column band"),
    ("WITH RECURSIVE r AS (SELECT 1 AS n) SELECT n FROM r", "RECURSIVE"),
    ("SELECT id FROM demo.stars UNION SELECT id FROM demo.obs ORDER BY mag",
     "must name an output column"),
    ("SELECT id FROM demo.stars ORDER BY 3", "there are 1 columns"),
    # a qualified join without ON/USING is an error, not a silent cross join
    ("SELECT s.id FROM demo.stars AS s JOIN demo.obs AS o", "JOIN demo.obs AS o has no join"),
    ("SELECT s.id FROM demo.stars AS s INNER JOIN demo.obs AS o WHERE s.id = o.id",
     "INNER JOIN demo.obs AS o has no join condition"),
    ("SELECT s.id FROM demo.stars AS s LEFT JOIN demo.obs", "LEFT JOIN demo.obs has no"),
    ("SELECT s.id FROM demo.stars AS s LEFT OUTER JOIN demo.obs", "LEFT OUTER JOIN"),
    ("SELECT s.id FROM demo.stars AS s RIGHT JOIN demo.obs", "RIGHT JOIN demo.obs has no"),
    ("SELECT s.id FROM demo.stars AS s FULL OUTER JOIN demo.obs", "FULL OUTER JOIN"),
    ("SELECT s.id FROM demo.stars AS s JOIN (SELECT id FROM demo.obs) AS o",
     "write CROSS JOIN"),
    ("SELECT s.id FROM demo.stars AS s, demo.obs AS o JOIN demo.stars AS t",
     "JOIN demo.stars AS t has no join condition"),
    ("SELECT s.id FROM demo.stars AS s CROSS JOIN demo.obs AS o ON s.id = o.id",
     "CROSS JOIN demo.obs AS o cannot have an ON"),
    ("SELECT id FROM demo.stars NATURAL JOIN demo.obs USING (id)",
     "NATURAL JOIN demo.obs cannot have"),
]


@pytest.mark.parametrize(("adql", "message"), INVALID, ids=[c[0][:60] for c in INVALID])
def test_invalid(env, adql, message):
    with pytest.raises(AdqlError, match=message):
        env.translate(adql)


def test_fixed_text_widths_of_combined_columns():
    # a fixed width declared by the catalogue (arraysize="5") would cut the other parts'
    # longer values in BINARY results: UNION/COALESCE/CASE keep it only when all agree
    from taphouse.adql.columns import joined_arraysize
    from taphouse.catalogue.model import ColumnMeta

    five, star = ColumnMeta("a", "char", "5"), ColumnMeta("b", "char", "*")
    assert joined_arraysize([five, ColumnMeta("c", "char", "5")]) == "5"
    assert joined_arraysize([five, star]) == "*"
    assert joined_arraysize([five, ColumnMeta("c", "char", "7")]) == "*"
    assert joined_arraysize([ColumnMeta("x", "double"), ColumnMeta("y", "double")]) is None
    assert joined_arraysize([ColumnMeta("x", "int"), star]) is None  # (as before)
