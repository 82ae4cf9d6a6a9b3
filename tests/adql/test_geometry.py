"""Geometry functions, predicates, and the spatial fast paths (checked against the
exact answer at RA 0/360 and the poles)."""

from __future__ import annotations

import math

import pytest
from backends import same_rows

from taphouse.adql import AdqlError
from taphouse.adql.spatial import cone_ranges


def _expected_cone(sky, ra, dec, r):
    STARS, angdist = sky
    return sorted(s[0] for s in STARS if angdist(s[1], s[2], ra, dec) <= r)


CONE_SPELLINGS = [
    "1=CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {r}))",
    "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {r})) = 1",
    "1 = CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, {r}))",
    "CONTAINS(POINT(ra, dec), CIRCLE(POINT({ra}, {dec}), {r})) = 1",
    "INTERSECTS(CIRCLE({ra}, {dec}, {r}), POINT(ra, dec)) = 1",
    "DISTANCE(POINT(ra, dec), POINT({ra}, {dec})) < {r}",
    "DISTANCE(ra, dec, {ra}, {dec}) <= {r}",
    "{r} > DISTANCE(POINT({ra}, {dec}), POINT(ra, dec))",
    "1=CONTAINS(POINT({ra}, {dec}), CIRCLE(ra, dec, {r}))",
]
CONES = [(10, 10, 0.05), (10, 10, 0.5), (0, 0, 0.01), (359.99995, 0, 0.001),
         (45, 89.999, 0.02), (0, 90, 0.02), (123, -90, 0.01), (200, -45, 1), (300, 30, 2)]


@pytest.mark.parametrize("spelling", CONE_SPELLINGS)
@pytest.mark.parametrize("cone", CONES, ids=[str(c) for c in CONES])
def test_cone_fast_path_is_exact(backend, sky, spelling, cone):
    ra, dec, r = cone
    adql = "SELECT id FROM demo.stars WHERE " + spelling.format(ra=ra, dec=dec, r=r)
    t, rows = backend.run(adql)
    assert sorted(x[0] for x in rows) == _expected_cone(sky, ra, dec, r)
    assert any(n.startswith("cone on stars") for n in t.notes), t.sql


def test_cone_without_fast_path_same_answer(env):
    adql = "SELECT id FROM demo.stars WHERE 1=CONTAINS(POINT(ra, dec), CIRCLE(0, 90, 0.02))"
    _, fast = env.run(adql)
    t, slow = env.run(adql, spatial_index=False)
    assert sorted(fast) == sorted(slow) == [(6,), (7,)]
    assert "_healpix_29" not in t.sql


def test_cone_sql_prefilters_on_index(env):
    t = env.translate("SELECT id FROM demo.stars WHERE 1=CONTAINS(POINT('ICRS', ra, dec), "
                      "CIRCLE('ICRS', 10, 10, 0.05))")
    assert '"_healpix_29" BETWEEN' in t.sql
    assert "POWER(SIN(" in t.sql  # the exact test stays


def test_cone_ranges_cover_the_circle(sky):
    _, angdist = sky
    # every point inside the circle has its order-29 index inside one of the ranges
    import astropy.units as u
    import numpy as np
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    rng = np.random.default_rng(1)
    for ra, dec, r in [(10, 10, 0.05), (0, 89.9, 0.3), (359.9, -30, 0.1), (180, -90, 1)]:
        ranges = cone_ranges(ra, dec, r, 29, 10_000_000)
        # random points in the circle: offsets in a tangent plane, kept if inside
        pts = []
        for _ in range(4000):
            a = rng.uniform(0, 2 * math.pi)
            rho = r * math.sqrt(rng.uniform(0, 1))
            dd = dec + rho * math.cos(a)
            if abs(dd) > 90:
                continue
            cosd = max(math.cos(math.radians(dec)), 1e-6)
            pra = (ra + rho * math.sin(a) / cosd) % 360
            if angdist(pra, dd, ra, dec) <= r:
                pts.append((pra, dd))
        arr = np.array(pts)
        cells = nested.lonlat_to_healpix(Longitude(arr[:, 0] * u.deg),
                                         Latitude(arr[:, 1] * u.deg), 29).astype(np.int64)
        inside = np.zeros(len(cells), dtype=bool)
        for lo, hi in ranges:
            inside |= (cells >= lo) & (cells <= hi)
        assert inside.all(), (ra, dec, r)


def test_crossmatch_upload_with_catalogue(backend):
    for cond in ["1=CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ura, u.udec, 1./3600))",
                 "DISTANCE(POINT(u.ura, u.udec), POINT(s.ra, s.dec)) < 1.0/3600",
                 "CONTAINS(POINT(u.ura, u.udec), CIRCLE(s.ra, s.dec, 0.0003)) = 1"]:
        t, rows = backend.run("SELECT u.uid, s.id FROM TAP_UPLOAD.mine AS u JOIN demo.stars"
                              f" AS s ON {cond}")
        assert sorted(rows) == [(1, 1), (2, 4), (2, 5), (3, 9)], cond
        assert any(n.startswith("crossmatch") for n in t.notes)
        assert "_th_cell" in t.sql


def test_crossmatch_in_where_with_comma_join(backend):
    t, rows = backend.run("SELECT u.uid, s.id FROM demo.stars AS s, TAP_UPLOAD.mine AS u"
                          " WHERE 1=CONTAINS(POINT(s.ra, s.dec), CIRCLE(u.ura, u.udec,"
                          " 1./3600)) AND s.mag > 15")
    assert sorted(rows) == [(2, 5), (3, 9)]
    assert any(n.startswith("crossmatch") for n in t.notes)


def test_crossmatch_left_join_keeps_unmatched(backend):
    t, rows = backend.run("SELECT u.uid, s.id FROM TAP_UPLOAD.mine AS u LEFT JOIN demo.stars"
                          " AS s ON DISTANCE(POINT(u.ura, u.udec), POINT(s.ra, s.dec))"
                          " < 1./3600")
    same_rows(rows, [(1, 1), (2, 4), (2, 5), (3, 9), (4, None)], ordered=False)


def test_self_crossmatch_brute_force(backend):
    # catalogue with itself, both sides indexed; compare with the plain nested loop
    adql = ("SELECT a.id, b.id FROM demo.stars AS a JOIN demo.stars AS b ON "
            "DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) < 0.025 AND a.id < b.id")
    t, fast = backend.run(adql)
    _, slow = backend.run(adql, spatial_index=False)
    assert sorted(fast) == sorted(slow) == [(1, 2), (4, 5), (6, 7), (8, 9)]
    assert any(n.startswith("crossmatch") for n in t.notes)


def test_xmatch_polar_and_wrap_random(env, sky):
    """Random pairs around the poles and RA 0/360, crossmatched through the fast path
    (both sides computed on the fly) against a brute-force answer."""
    _, angdist = sky
    import numpy as np
    import pyarrow as pa

    from taphouse.adql import Scope, inline_name, translate
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    rng = np.random.default_rng(7)
    n = 400
    ra = np.concatenate([rng.uniform(0, 360, n // 2), rng.uniform(-0.01, 0.01, n // 2) % 360])
    dec = np.concatenate([rng.choice([-1, 1], n // 2) * rng.uniform(89.9, 90, n // 2),
                          rng.uniform(-1, 1, n // 2)])
    r = 20 / 3600
    ang = rng.uniform(0, 2 * math.pi, n)
    step = rng.uniform(0, 1.3 * r, n)
    dec2 = dec + step * np.cos(ang)
    over = np.abs(dec2) > 90
    dec2[over] = np.sign(dec2[over]) * 180 - dec2[over]
    ra2 = (ra + step * np.sin(ang) / np.maximum(np.cos(np.radians(dec)), 1e-3)) % 360
    a = pa.table({"i": np.arange(n), "ra": ra, "dec": dec})
    b = pa.table({"j": np.arange(n), "ra": ra2, "dec": dec2})
    cols = [ColumnMeta("ra", "double"), ColumnMeta("dec", "double")]
    ta = TableMeta("tap_upload", "a", [ColumnMeta("i", "long"), *cols], kind="upload")
    tb = TableMeta("tap_upload", "b", [ColumnMeta("j", "long"), *cols], kind="upload")
    scope = Scope({("tap_upload", "a"): ta, ("tap_upload", "b"): tb}, env.engine.relation,
                  inline={("tap_upload", "a"): a, ("tap_upload", "b"): b})
    t = translate("SELECT a.i, b.j FROM TAP_UPLOAD.a AS a JOIN TAP_UPLOAD.b AS b ON "
                  f"DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) <= {r!r}", scope)
    assert any(n.startswith("crossmatch") for n in t.notes)
    with env.engine.cursor({inline_name(ta): a, inline_name(tb): b}) as cur:
        got = set(cur.execute(t.sql).fetchall())
    expected = {(i, j) for i in range(n) for j in range(n)
                if angdist(ra[i], dec[i], ra2[j], dec2[j]) <= r - 1e-9}
    assert expected <= got
    assert all(angdist(ra[i], dec[i], ra2[j], dec2[j]) <= r + 1e-9 for i, j in got)
    assert len(got) > n // 2


def test_geometry_values_and_metadata(backend):
    t, rows = backend.run("SELECT POINT('ICRS', ra, dec) AS p, CIRCLE(ra, dec, 0.5) AS c, "
                          "POLYGON(1, 2, 3, 4, 5, 6) AS g, COORD1(POINT(ra, dec)) AS x, "
                          "COORD2(POINT(ra, dec)) AS y, COORDSYS(POINT(ra, dec)) AS s "
                          + _ONE)
    assert rows == [((10.0, 10.0), (10.0, 10.0, 0.5), (1.0, 2.0, 3.0, 4.0, 5.0, 6.0), 10.0,
                     10.0, "ICRS")]
    meta = {c.name: (c.datatype, c.arraysize, c.xtype) for c in t.columns}
    assert meta["p"] == ("double", "2", "point")
    assert meta["c"] == ("double", "3", "circle")
    assert meta["g"] == ("double", "*", "polygon")


_ONE = "FROM demo.stars WHERE id = 1"


def test_distance_signatures(backend, sky):
    _, angdist = sky
    _, rows = backend.run("SELECT DISTANCE(POINT(ra, dec), POINT(ra + 1, dec)), "
                          "DISTANCE(ra, dec, 10, 11) " + _ONE)
    assert rows[0][0] == pytest.approx(angdist(10, 10, 11, 10), abs=1e-9)
    assert rows[0][1] == pytest.approx(1.0, abs=1e-9)


def test_area_centroid_box(backend, sky):
    _, angdist = sky
    _, rows = backend.run("SELECT AREA(CIRCLE(0, 0, 1)), AREA(POLYGON(0, 0, 1, 0, 1, 1, 0, 1)),"
                          " COORD1(CENTROID(CIRCLE(5, 6, 1))), AREA(BOX(10, 0, 2, 2)) " + _ONE)
    circle_area = 2 * math.pi * (1 - math.cos(math.radians(1))) * (180 / math.pi) ** 2
    assert rows[0][0] == pytest.approx(circle_area, rel=1e-9)
    assert rows[0][1] == pytest.approx(1.0, rel=1e-3)
    assert rows[0][2] == 5
    assert rows[0][3] == pytest.approx(4.0, rel=1e-2)


def test_polygon_and_box_contains(backend):
    _, rows = backend.run("SELECT id FROM demo.stars WHERE 1=CONTAINS(POINT(ra, dec), "
                          "POLYGON(9.9, 9.9, 10.1, 9.9, 10.1, 10.1, 9.9, 10.1)) ORDER BY id")
    assert rows == [(1,), (2,)]
    _, rows = backend.run("SELECT id FROM demo.stars WHERE CONTAINS(POINT(ra, dec), "
                          "BOX('ICRS', 10, 10, 0.1, 0.1)) = 1")
    assert sorted(rows) == [(1,), (2,)]
    _, rows = backend.run("SELECT id FROM demo.stars WHERE CONTAINS(POINT(ra, dec), POLYGON("
                          "POINT(359, -1), POINT(1, -1), POINT(1, 1), POINT(359, 1))) = 1")
    assert sorted(rows) == [(4,), (5,)]


def test_circle_predicates(backend):
    _, rows = backend.run("SELECT CONTAINS(CIRCLE(10, 10, 0.1), CIRCLE(10, 10, 0.5)), "
                          "CONTAINS(CIRCLE(10, 10, 1), CIRCLE(10, 10, 0.5)), "
                          "INTERSECTS(CIRCLE(0, 0, 1), CIRCLE(1.5, 0, 1)), "
                          "INTERSECTS(CIRCLE(0, 0, 1), CIRCLE(3, 0, 1)), "
                          "CONTAINS(POINT(ra, dec), CIRCLE(10, 10, 1)) " + _ONE)
    assert rows == [(1, 0, 1, 0, 1)]


def test_contains_zero_means_outside(backend):
    _, rows = backend.run("SELECT id FROM demo.stars WHERE CONTAINS(POINT(ra, dec), "
                          "CIRCLE(10, 10, 0.5)) = 0 AND id < 5 ORDER BY id")
    assert rows == [(4,)]


def test_geometry_from_derived_table_column(backend):
    _, rows = backend.run("SELECT q.id FROM (SELECT id, POINT(ra, dec) AS p FROM demo.stars)"
                          " AS q WHERE 1=CONTAINS(q.p, CIRCLE(10, 10, 0.05))")
    assert sorted(rows) == [(1,), (2,)]
    _, rows = backend.run("SELECT COORD2(q.p) FROM (SELECT POINT(ra, dec) AS p FROM"
                          " demo.stars WHERE id = 8) AS q")
    assert rows == [(-89.995,)]


@pytest.mark.parametrize(("adql", "message"), [
    ("SELECT POINT('GALACTIC', ra, dec) " + _ONE, "coordinate system"),
    ("SELECT POINT(ra) " + _ONE, "POINT takes"),
    ("SELECT CIRCLE(ra, dec) " + _ONE, "column ra is not a geometry"),
    ("SELECT POLYGON(1, 2, 3, 4) " + _ONE, "at least 3 vertices"),
    ("SELECT BOX(ra, dec, 1, 1) " + _ONE, "constant arguments"),
    ("SELECT CONTAINS(POINT(ra, dec), POLYGON(0, 0, 120, 0, 240, 0)) " + _ONE,
     "not smaller than a hemisphere"),
    ("SELECT id " + _ONE + " AND 1 = CONTAINS(POINT(ra, dec), POLYGON(0, 0, 1, 1, 1, 0, 0, 1))",
     "edges cross each other"),
    ("SELECT CONTAINS(POINT(ra, dec), POLYGON(0, 0, 1, 0, 2, 0)) " + _ONE, "no area"),
    ("SELECT CONTAINS(POINT(ra, dec), POLYGON(0, 0, 1, 1, 1, 1, 0, 0)) " + _ONE,
     "at least 3 distinct vertices"),
    ("SELECT CONTAINS(POINT(ra, dec), POLYGON(0, 0, 180, 0, 90, 10)) " + _ONE, "antipodal"),
    ("SELECT CONTAINS(POINT(ra, dec), POLYGON(0, 0, 1, 95, 1, 0)) " + _ONE, "declination"),
    ("SELECT CONTAINS(POINT(ra, dec), BOX(10, 10, 200, 1)) " + _ONE, "narrower than 180"),
    ("SELECT CONTAINS(POINT(ra, dec), BOX(10, 10, 0, 1)) " + _ONE, "positive width"),
    ("SELECT COORD1(mag) " + _ONE, "not a geometry"),
    ("SELECT DISTANCE(1, 2, 3) " + _ONE, "two points or four"),
    ("SELECT REGION('CIRCLE ICRS 1 2 3') " + _ONE, "REGION"),
])
def test_geometry_errors(env, adql, message):
    with pytest.raises(AdqlError, match=message):
        env.translate(adql)


# --- point-valued service functions (ivo_epoch_prop_pos) wherever a POINT is ---------------
# star 2 at (10.01, 10) propagated 10 years by pmdec = 360 mas/yr: 3.6 arcsec north
MOVED = "ivo_epoch_prop_pos(ra, dec, parallax, 0, 360, NULL, 2000, 2010)"


def test_point_function_in_geometry_functions(env):
    t, rows = env.run(f"SELECT COORD1({MOVED}) AS a, COORD2({MOVED}) AS b, "
                      f"DISTANCE({MOVED}, POINT(ra, dec)) * 3600 AS d, "
                      f"DISTANCE(POINT(ra, dec), {MOVED}) * 3600 AS d2, "
                      f"CIRCLE({MOVED}, 1) AS c FROM demo.stars WHERE id = 2")
    a, b, d, d2, c = rows[0]
    assert a == pytest.approx(10.01, abs=1e-9) and b == pytest.approx(10.001, abs=1e-9)
    assert d == pytest.approx(3.6, abs=1e-6) and d2 == pytest.approx(3.6, abs=1e-6)
    assert tuple(c) == pytest.approx((10.01, 10.001, 1.0), abs=1e-9)
    assert [(x.unit, x.ucd) for x in t.columns[:3]] == [
        ("deg", "pos.eq.ra"), ("deg", "pos.eq.dec"), ("arcsec", "pos.angDistance")]
    assert t.columns[4].xtype == "circle"


@pytest.mark.parametrize("pred", [
    "1=CONTAINS({p}, CIRCLE(10.01, 10.001, 0.5/3600))",
    "CONTAINS({p}, CIRCLE('ICRS', POINT(10.01, 10.001), 0.5/3600)) = 1",
    "1=INTERSECTS(CIRCLE(10.01, 10.001, 0.5/3600), {p})",
    "DISTANCE({p}, POINT(10.01, 10.001)) < 0.5/3600",
    "1=CONTAINS(POINT(10.01, 10.001), CIRCLE({p}, 0.5/3600))",
    "1=CONTAINS({p}, POLYGON(10.005, 10.0005, 10.02, 10.0005, 10.02, 10.002, 10.005, 10.002))",
])
def test_point_function_in_predicates(env, pred):
    # only star 2's propagated position is there; its catalogue position is not
    t, rows = env.run("SELECT id FROM demo.stars WHERE " + pred.format(p=MOVED))
    assert rows == [(2,)]


def test_non_point_function_is_not_a_geometry(env):
    with pytest.raises(AdqlError, match="is not a geometry"):
        env.translate("SELECT COORD1(ivo_healpix_index(5, ra, dec)) FROM demo.stars")


def test_crossmatch_with_propagated_position(env):
    # upload positions moved by their proper motion: uid 1 (0.35 arcsec from star 1) goes
    # 5 arcsec away; uid 2 at (0, 0), 0.36 arcsec east of star 4 across RA 0, moves to
    # 0.04 arcsec from it; uid 3 (0.36 arcsec from star 9 at the south pole) and 4 stay
    prop = ("ivo_epoch_prop_pos(u.ura, u.udec, NULL, CASE u.uid WHEN 1 THEN 500 "
            "WHEN 2 THEN -40 ELSE NULL END, 0, NULL, 2000, 2010)")
    for cond in [f"1=CONTAINS(POINT(s.ra, s.dec), CIRCLE({prop}, 0.4/3600))",
                 f"DISTANCE({prop}, POINT(s.ra, s.dec)) < 0.4/3600"]:
        adql = (f"SELECT u.uid, s.id, {prop} AS pos FROM TAP_UPLOAD.mine AS u "
                f"JOIN demo.stars AS s ON {cond}")
        t, fast = env.run(adql)
        assert any(n.startswith("crossmatch u x s") for n in t.notes), cond
        assert "_th_pos" in t.sql and t.sql.lower().count("ivo_epoch_prop_pos") == 1
        _, slow = env.run(adql, spatial_index=False)
        assert sorted(fast) == sorted(slow)
        assert sorted((u, s) for u, s, _ in fast) == [(2, 4), (3, 9)]
        pos = {u: p for u, _, p in fast}
        assert pos[2][0] == pytest.approx(360 - 0.4 / 3600, abs=1e-9)


def test_crossmatch_propagated_hipparcos_to_gaia(demo_data_dir):
    """The demo's Hipparcos stars propagated to the Gaia epoch find their Gaia
    counterparts through the HEALPix join, Barnard's star included."""
    from taphouse.adql import Scope, translate
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.engine import DuckDBEngine
    from taphouse.metadata import MetadataDB

    meta = MetadataDB(demo_data_dir / "meta.sqlite")
    store = CatalogueStore(meta, demo_data_dir / "tables")
    engine = DuckDBEngine(store.tables_dir, threads=1, memory_limit="512MB")
    g, h = store.table("gaia", "dr3_bright"), store.table("hipparcos", "hip2")
    scope = Scope({("gaia", "dr3_bright"): g, ("hipparcos", "hip2"): h}, engine.relation)
    prop = "ivo_epoch_prop_pos(h.ra, h.dec, h.plx, h.pmra, h.pmde, 0, 1991.25, 2016.0)"
    base = ("SELECT h.hip, g.source_id FROM hipparcos.hip2 AS h JOIN gaia.dr3_bright AS g "
            "ON 1=CONTAINS(POINT(g.ra, g.dec), CIRCLE({c}, 1/3600.)) "
            "WHERE h.hip BETWEEN 87000 AND 88000")
    t = translate(base.format(c=prop), scope)
    assert any(n.startswith("crossmatch h x g") for n in t.notes)
    plain = translate(base.format(c="h.ra, h.dec"), scope)
    with engine.cursor() as cur:
        moved = set(cur.execute(t.sql).fetchall())
        fixed = set(cur.execute(plain.sql).fetchall())
    assert (87937, 4472832130942575872) in moved  # Barnard's star, 10"/yr
    assert (87937, 4472832130942575872) not in fixed
    assert len(moved) > len(fixed) > 100
    meta.close()
