"""SELECT: columns, TOP, DISTINCT, ORDER BY, OFFSET, names, identifiers, limits."""

from __future__ import annotations

import math

import pytest
from backends import same_rows

from taphouse.adql import AdqlError

# (ADQL, expected rows in order)
CORPUS = [
    ("SELECT id FROM demo.stars WHERE id < 3 ORDER BY id", [(1,), (2,)]),
    ("SELECT TOP 2 id FROM demo.stars ORDER BY id DESC", [(10,), (9,)]),
    ("select top 3 id from DEMO.STARS order by ID asc", [(1,), (2,), (3,)]),
    ("SELECT DISTINCT band FROM demo.obs ORDER BY band", [("G",), ("K",), ("R",)]),
    ("SELECT ALL band FROM demo.obs WHERE id = 1 ORDER BY band", [("G",), ("R",)]),
    ("SELECT id FROM demo.stars ORDER BY id OFFSET 8", [(9,), (10,)]),
    ("SELECT TOP 1 id FROM demo.stars ORDER BY id OFFSET 2", [(3,)]),
    ("SELECT id AS n FROM demo.stars WHERE id <= 2 ORDER BY n DESC", [(2,), (1,)]),
    ("SELECT id, mag FROM demo.stars WHERE id <= 3 ORDER BY 2 DESC", [(3, 14.0), (2, 13.0),
                                                                     (1, 12.5)]),
    ("SELECT stars.id FROM demo.stars WHERE demo.stars.id = 4", [(4,)]),
    ("SELECT s.id FROM demo.stars AS s WHERE s.id = 4", [(4,)]),
    ("SELECT s.id FROM demo.stars s WHERE s.id = 4", [(4,)]),
    ('SELECT "id", "dec" FROM demo."stars" WHERE "id" = 1', [(1, 10.0)]),
    ("SELECT id FROM stars WHERE id = 1", [(1,)]),  # unqualified table, unique in scope
    ("SELECT id -- the id\nFROM demo.stars /* a block\ncomment */ WHERE id = 1", [(1,)]),
    ("SELECT id FROM demo.stars WHERE name LIKE 'a%'", [(1,)]),
    ("SELECT id FROM demo.stars WHERE name ILIKE 'ALP%'", [(1,)]),
    ("SELECT id FROM demo.stars WHERE name NOT LIKE '%a' ORDER BY id", [(5,)]),
    ("SELECT id FROM demo.stars WHERE mag BETWEEN 12 AND 13 ORDER BY id", [(1,), (2,)]),
    ("SELECT id FROM demo.stars WHERE mag NOT BETWEEN 11.2 AND 19 ORDER BY id", [(6,)]),
    ("SELECT id FROM demo.stars WHERE parallax IS NULL ORDER BY id", [(3,), (10,)]),
    ("SELECT COUNT(*) FROM demo.stars WHERE parallax IS NOT NULL", [(8,)]),
    ("SELECT id FROM demo.stars WHERE id IN (2, 4) ORDER BY id", [(2,), (4,)]),
    ("SELECT id FROM demo.stars WHERE NOT (id > 1) OR id = 10 ORDER BY id", [(1,), (10,)]),
    ("SELECT id FROM demo.stars WHERE id <> 1 AND id != 2 AND id >= 9", [(9,), (10,)]),
    ("SELECT name || '-' || band FROM demo.stars JOIN demo.obs USING (id) "
     "WHERE obs_id = 100", [("alpha-G",)]),
    ("SELECT 1 + 2 * 3, 7 / 2.0, -(2) FROM demo.stars WHERE id = 1", [(7, 3.5, -2)]),
    ("SELECT 0x1F FROM demo.stars WHERE id = 1", [(31,)]),
    ("SELECT 1e2, .5 FROM demo.stars WHERE id = 1", [(100.0, 0.5)]),
    ("SELECT id FROM demo.stars WHERE id & 1 = 1 AND id | 0 < 4 ORDER BY id", [(1,), (3,)]),
    ('SELECT "size" FROM demo.obs WHERE obs_id = 100', [(0.3,)]),
]


@pytest.mark.parametrize(("adql", "expected"), CORPUS, ids=[c[0][:50] for c in CORPUS])
def test_corpus(backend, adql, expected):
    _, rows = backend.run(adql)
    same_rows(rows, expected, "ORDER BY" in adql.upper())


def test_duplicate_names_made_unique(env):
    t, rows = env.run("SELECT s.id, o.id, s.id AS id FROM demo.stars AS s JOIN demo.obs AS o "
                      "ON s.id = o.id WHERE o.obs_id = 102")
    assert [c.name for c in t.columns] == ["id", "id_2", "id_3"]
    assert rows == [(2, 2, 2)]


def test_star_expands_in_table_order(env):
    t, _ = env.run("SELECT * FROM demo.obs")
    assert [c.name for c in t.columns] == ["obs_id", "id", "band", "flux", "size"]
    t, _ = env.run("SELECT o.*, s.name FROM demo.obs AS o JOIN demo.stars AS s ON s.id = o.id")
    assert [c.name for c in t.columns] == ["obs_id", "id", "band", "flux", "size", "name"]


def test_metadata_carried(env):
    t, _ = env.run("SELECT mag, ra AS alpha, mag + 1 AS m1, 2 * mag AS m2, ROUND(mag, 1) AS r,"
                   " name, CAST(mag AS REAL) AS f FROM demo.stars")
    cols = {c.name: c for c in t.columns}
    assert (cols["mag"].unit, cols["mag"].ucd, cols["mag"].description) == \
        ("mag", "phot.mag", "G magnitude")
    assert (cols["alpha"].unit, cols["alpha"].ucd) == ("deg", "pos.eq.ra;meta.main")
    assert cols["m1"].unit == "mag" and cols["m1"].ucd is None  # shifted, same unit
    assert cols["m2"].unit is None and cols["m2"].ucd is None  # scaled: no longer mag
    assert (cols["r"].unit, cols["r"].ucd) == ("mag", "phot.mag")
    assert (cols["name"].datatype, cols["name"].arraysize) == ("char", "*")
    assert (cols["f"].datatype, cols["f"].unit) == ("float", "mag")


@pytest.mark.parametrize(("expr", "unit", "ucd"), [
    # exact conversions between angle units keep the quantity (and its UCD)
    ("DISTANCE(POINT(ra, dec), POINT(10, 10)) * 3600", "arcsec", "pos.angDistance"),
    ("3600 * DISTANCE(POINT(ra, dec), POINT(10, 10))", "arcsec", "pos.angDistance"),
    ("DISTANCE(POINT(ra, dec), POINT(10, 10)) * 60", "arcmin", "pos.angDistance"),
    ("DISTANCE(POINT(ra, dec), POINT(10, 10)) * 3600000", "mas", "pos.angDistance"),
    ("DISTANCE(POINT(ra, dec), POINT(10, 10)) * 3.6e6", "mas", "pos.angDistance"),
    ("DISTANCE(POINT(ra, dec), POINT(10, 10)) * (60 * 60)", "arcsec", "pos.angDistance"),
    ("parallax / 1000", "arcsec", "pos.parallax"),
    ("parallax / 1000.", "arcsec", "pos.parallax"),
    ("ra * 1", "deg", "pos.eq.ra;meta.main"),
    ("ra / 1", "deg", "pos.eq.ra;meta.main"),
    # any other factor: no unit, no UCD
    ("DISTANCE(POINT(ra, dec), POINT(10, 10)) * 3601", None, None),
    ("ra * 2", None, None),
    ("2 * mag", None, None),
    ("mag / 2.5", None, None),
    ("ra * dec", None, None),
    ("ra / dec", None, None),
    ("ra * parallax", None, None),
    ("mag * 3600", None, None),  # not an angle: no conversion known
    # sums: same unit, or a constant term, keep the unit; the UCD goes
    ("ra + dec", "deg", None),
    ("ra - 1", "deg", None),
    ("1 + ra", "deg", None),
    ("ra + parallax", None, None),
    ("ra + id", None, None),  # id has no unit: ambiguous
    ("-ra", "deg", None),
    ("MOD(ra, 360)", "deg", None),
])
def test_units_through_arithmetic(env, expr, unit, ucd):
    t, rows = env.run(f"SELECT {expr} AS x FROM demo.stars WHERE id = 1")
    assert (t.columns[0].unit, t.columns[0].ucd) == (unit, ucd)
    assert len(rows) == 1


def test_converted_distance_value(env):
    t, rows = env.run("SELECT DISTANCE(POINT(ra, dec), POINT(10, 10)) * 3600 AS d "
                      "FROM demo.stars WHERE id = 2")
    assert t.columns[0].unit == "arcsec"
    assert rows[0][0] == pytest.approx(0.01 * math.cos(math.radians(10)) * 3600, rel=1e-4)


def test_top_and_maxrec(env):
    t, rows = env.run("SELECT TOP 3 id FROM demo.stars")
    assert t.limit == 3 and len(rows) == 3
    t, rows = env.run("SELECT id FROM demo.stars", maxrec=4)
    assert t.limit == 4 and len(rows) == 5  # one more row: the caller sees the overflow
    t, rows = env.run("SELECT TOP 2 id FROM demo.stars", maxrec=4)
    assert t.limit == 2 and len(rows) == 2
    t, rows = env.run("SELECT TOP 9 id FROM demo.stars", maxrec=4)
    assert t.limit == 4 and len(rows) == 5
    t, rows = env.run("SELECT id FROM demo.stars", maxrec=0)
    assert t.limit == 0 and len(rows) == 1
    t, rows = env.run("SELECT id FROM demo.stars")
    assert t.limit is None and len(rows) == 10


def test_tables_reported(env):
    t = env.translate("SELECT s.id FROM demo.stars AS s JOIN demo.obs AS o ON s.id = o.id "
                      "WHERE o.id IN (SELECT uid FROM TAP_UPLOAD.mine)")
    assert sorted((tm.database, tm.name) for tm in t.tables) == [
        ("demo", "obs"), ("demo", "stars"), ("tap_upload", "mine")]


def test_schema_alias_and_search_path(env):
    from taphouse.adql import translate

    scope = env.scope(schema_aliases={"mydb": "demo"})
    t = translate("SELECT mydb.stars.id FROM mydb.stars", scope)
    assert t.tables[0].name == "stars"
    scope = env.scope(search_path=["demo"])
    assert translate("SELECT id FROM obs", scope).tables[0].name == "obs"


def test_ambiguous_table_name_is_an_error(env):
    from taphouse.adql import translate

    scope = env.scope()
    other = scope.tables[("demo", "obs")]
    import dataclasses

    scope.tables[("other", "obs")] = dataclasses.replace(other, database="other")
    with pytest.raises(AdqlError, match="ambiguous.*demo.obs.*other.obs"):
        translate("SELECT id FROM obs", scope)
    assert translate("SELECT id FROM obs", dataclasses.replace(
        scope, search_path=["other"])).tables[0].database == "other"


def test_delimited_identifiers_are_case_sensitive(env):
    with pytest.raises(AdqlError, match='unknown column ID.*did you mean id'):
        env.translate('SELECT "ID" FROM demo.stars')
    _, rows = env.run("SELECT ID FROM demo.stars WHERE Id = 1")
    assert rows == [(1,)]
