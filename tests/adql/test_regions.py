"""CONTAINS and INTERSECTS for every pair of regions (point, circle, box, polygon, both
ways round), against brute force written here with plain numpy (winding numbers,
densely sampled edges, astropy offsets for boxes), across RA 0/360 and at the poles, on
DuckDB and on PostgreSQL.

* the fast path: positions of an indexed table in a constant POLYGON or BOX (HEALPix
  coverage, then the exact test) give the rows brute force gives;
* a table of regions (an upload with point, circle and polygon columns) against
  constant regions and against each other (the service functions);
* constant against constant (decided while translating).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from taphouse.adql import AdqlError, Scope, inline_name, translate
from taphouse.catalogue.model import ColumnMeta, TableMeta

# --- brute force, independent of taphouse.adql.sphere ---------------------------------------


def _vec(ra, dec):
    r, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def _verts(coords):
    return _vec(coords[0::2], coords[1::2])


def in_polygon(p, coords):
    """Winding number of the polygon around each point (sum of the angles the edges
    subtend at the point, in its tangent plane): +-2 pi inside. Points on the far side
    of the sphere are outside (the polygons here are well within a hemisphere)."""
    p = np.atleast_2d(p)
    v = _verts(coords)
    total = np.zeros(len(p))
    for a, b in zip(v, np.roll(v, -1, axis=0), strict=True):
        ta = a[None, :] - (p @ a)[:, None] * p
        tb = b[None, :] - (p @ b)[:, None] * p
        total += np.arctan2(np.einsum("ij,ij->i", p, np.cross(ta, tb)),
                            np.einsum("ij,ij->i", ta, tb))
    mean = v.sum(axis=0)
    return (np.abs(total) > math.pi) & (p @ mean > 0)


def _boundary(coords, per_edge=400):
    v = _verts(coords)
    out = []
    for a, b in zip(v, np.roll(v, -1, axis=0), strict=True):
        t = np.linspace(0, 1, per_edge, endpoint=False)[:, None]
        s = a * (1 - t) + b * t  # along the chord, then onto the sphere: the great circle
        out.append(s / np.linalg.norm(s, axis=1, keepdims=True))
    return np.concatenate(out)


def angle(a, b):
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1),
                                 np.einsum("...k,...k->...", a, b)))


def boundary_distance(p, coords):
    """Smallest angle (degrees) from each point to the polygon's edges: to the foot of
    the perpendicular on the edge's great circle if it falls between the ends (the two
    angles to them add up to the edge's length), else to the nearer end."""
    p = np.atleast_2d(p)
    v = _verts(coords)
    best = np.full(len(p), np.inf)
    for a, b in zip(v, np.roll(v, -1, axis=0), strict=True):
        n = np.cross(a, b)
        n /= np.linalg.norm(n)
        foot = p - (p @ n)[:, None] * n
        foot /= np.linalg.norm(foot, axis=1, keepdims=True)
        between = np.abs(angle(foot, a) + angle(foot, b) - angle(a, b)) < 1e-9
        d = np.where(between, angle(p, foot), np.minimum(angle(p, a), angle(p, b)))
        best = np.minimum(best, d)
    return best


def in_box(p, ra, dec, w, h):
    """ADQL BOX by astropy's offset frame: the gnomonic x = tan(lon'), y = tan(lat') /
    cos(lon') about the centre."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    p = np.atleast_2d(p)
    pts = SkyCoord(x=p[:, 0], y=p[:, 1], z=p[:, 2], representation_type="cartesian",
                   frame="icrs")
    off = pts.transform_to(SkyCoord(ra * u.deg, dec * u.deg).skyoffset_frame())
    lon = off.lon.wrap_at(180 * u.deg).rad
    lat = off.lat.rad
    front = np.cos(lon) * np.cos(lat) > 0
    x = np.tan(lon)
    y = np.tan(lat) / np.cos(lon)
    return front & (np.abs(x) <= math.tan(math.radians(w / 2))) \
        & (np.abs(y) <= math.tan(math.radians(h / 2)))


# --- a field of positions, dense where the regions are ---------------------------------------
REGIONS = {
    "box": "BOX(10, 10, 1, 1)",
    "box_wrap": "BOX('ICRS', 0.2, -0.3, 1.5, 0.8)",
    "box_pole": "BOX(45, 89.5, 2, 2)",
    "box_tilted": "BOX(300, -60, 20, 5)",
    "quad_wrap": "POLYGON(359, -1, 1, -1, 1, 1, 359, 1)",
    "north_cap": "POLYGON(0, 88, 90, 88, 180, 88, 270, 88)",
    "south_tri": "POLYGON(0, -87, 120, -87, 240, -87)",
    "concave": "POLYGON(358, -2, 2, -2.5, 2.5, 2, 0, 0.5, -1.5, 2)",
    "concave_pts": "POLYGON(POINT(10, 0), POINT(40, 0), POINT(40, 30), POINT(25, 10), "
                   "POINT(10, 30))",
    "huge": "POLYGON(0, 0, 80, 0, 80, 80, 0, 80)",
    "near_hemisphere": "POLYGON(100, -50, 190, -50, 190, 39, 100, 39)",
    "pole_concave": "POLYGON(0, 85, 90, 80, 180, 85, 270, 80)",
}
BOXES = {"box": (10, 10, 1, 1), "box_wrap": (0.2, -0.3, 1.5, 0.8), "box_pole": (45, 89.5, 2, 2),
         "box_tilted": (300, -60, 20, 5)}


def _coords(text: str) -> list[float]:
    inner = text[text.index("(") + 1:text.rindex(")")]
    nums = inner.replace("POINT(", "").replace(")", "").replace("'ICRS',", "")
    return [float(x) for x in nums.split(",")]


def _reference(name: str, p: np.ndarray) -> np.ndarray:
    if name in BOXES:
        return in_box(p, *BOXES[name])
    return in_polygon(p, _coords(REGIONS[name]))


def _field(n_per: int = 1500) -> pa.Table:
    rng = np.random.default_rng(11)
    ras, decs = [], []
    centres = [(10, 10, 1.5), (0, 0, 3), (0, 89, 3), (0, -89, 4), (300, -60, 14), (20, 15, 35),
               (45, 40, 60), (145, -5, 60), (359.99, 45, 0.5)]
    for ra, dec, size in centres:
        c = _vec(ra, dec)
        v = c + rng.normal(size=(n_per, 3)) * math.radians(size)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ras.append(np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360)
        decs.append(np.degrees(np.arcsin(np.clip(v[:, 2], -1, 1))))
    ra = np.concatenate(ras)
    dec = np.concatenate(decs)
    n = len(ra)
    missing = np.zeros(n, dtype=bool)
    missing[::97] = True
    return pa.table({"k": np.arange(n, dtype=np.int64),
                     "ra": pa.array(ra, mask=missing), "dec": pa.array(dec, mask=missing)})


FIELD_COLUMNS = [ColumnMeta("k", "long"), ColumnMeta("ra", "double", unit="deg"),
                 ColumnMeta("dec", "double", unit="deg")]


class Backend:
    """One backend with the field table: runs ADQL, returns (translation, rows)."""

    def __init__(self, name, field_meta, run):
        self.name, self.field_meta, self._run = name, field_meta, run

    def run(self, adql, tables=None, inline=None, **kw):
        return self._run(adql, tables or {}, inline or {}, **kw)


@pytest.fixture(scope="module")
def field() -> pa.Table:
    return _field()


@pytest.fixture(scope="module")
def duck(env, field) -> Backend:
    path = env.store.new_version_path("demo", "field")
    env.engine.write_table(
        'SELECT k, ra, dec, ivo_healpix_index(29, ra, dec) AS "_healpix_29" FROM f',
        path, order_by='"_healpix_29"', inline={"f": field})
    meta = TableMeta("demo", "field", FIELD_COLUMNS, nrows=field.num_rows, ra_column="ra",
                     dec_column="dec", healpix_column="_healpix_29")
    meta = env.store.publish(meta, path)

    def run(adql, tables, inline, **kw):
        all_tables = {("demo", "field"): meta, **tables}
        scope = Scope(all_tables, env.engine.relation, inline=inline)
        t = translate(adql, scope, **kw)
        regs = {inline_name(all_tables[k]): v for k, v in inline.items()}
        with env.engine.cursor(regs) as cur:
            return t, cur.execute(t.sql).fetchall()

    return Backend("duckdb", meta, run)


@pytest.fixture(scope="module")
def pg(pg_server, field) -> Backend:
    import psycopg

    from taphouse.engine.postgres import install_postgres_functions, load_table, relation_name

    conn = psycopg.connect(pg_server.dsn, autocommit=True)
    install_postgres_functions(conn)
    load_table(conn, "demo", "field", field, ra_column="ra", dec_column="dec")
    meta = TableMeta("demo", "field", FIELD_COLUMNS, nrows=field.num_rows, ra_column="ra",
                     dec_column="dec", healpix_column="_healpix_29")
    loaded: set = set()

    def run(adql, tables, inline, **kw):
        all_tables = {("demo", "field"): meta, **tables}
        for key, data in inline.items():
            name = inline_name(all_tables[key])
            if name not in loaded:
                load_table(conn, "public", name, data)
                loaded.add(name)
        scope = Scope(all_tables, lambda t: relation_name(t.database, t.name), inline=inline)
        t = translate(adql, scope, dialect="postgres", **kw)
        return t, conn.execute(t.sql).fetchall()

    yield Backend("postgres", meta, run)
    conn.close()


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request) -> Backend:
    return request.getfixturevalue("duck" if request.param == "duckdb" else "pg")


# --- the fast path -----------------------------------------------------------------------------
SPELLINGS = ["1 = CONTAINS(POINT('ICRS', ra, dec), {r})", "CONTAINS(POINT(ra, dec), {r}) = 1",
             "INTERSECTS({r}, POINT(ra, dec)) = 1", "INTERSECTS(POINT(ra, dec), {r}) = 1"]


@pytest.mark.parametrize("name", list(REGIONS))
def test_polygon_fast_path_is_exact(backend, field, name):
    p = _vec(field["ra"].to_numpy(zero_copy_only=False),
             field["dec"].to_numpy(zero_copy_only=False))
    valid = ~np.isnan(p).any(axis=1)
    expected = sorted(int(k) for k in np.flatnonzero(valid & _reference(name, np.nan_to_num(p))))
    assert len(expected) > 20, name
    for spelling in SPELLINGS:
        adql = "SELECT k FROM demo.field WHERE " + spelling.format(r=REGIONS[name])
        t, rows = backend.run(adql)
        assert sorted(r[0] for r in rows) == expected, (name, spelling)
        assert any(n.startswith("polygon on field") for n in t.notes), t.notes
        assert "BETWEEN" in t.sql
    _, slow = backend.run(adql, spatial_index=False)
    assert sorted(r[0] for r in slow) == expected


def test_fast_path_with_other_conditions_and_joins(duck, field):
    # the exact test and the other conditions stay; a join partner is not filtered
    box = REGIONS["box"]
    t, rows = duck.run(f"SELECT a.k FROM demo.field AS a JOIN demo.field AS b ON a.k = b.k "
                       f"WHERE 1 = CONTAINS(POINT(a.ra, a.dec), {box}) AND a.k < 1000")
    p = _vec(field["ra"].to_numpy(zero_copy_only=False)[:1000],
             field["dec"].to_numpy(zero_copy_only=False)[:1000])
    ok = ~np.isnan(p).any(axis=1) & in_box(np.nan_to_num(p), *BOXES["box"])
    assert sorted(r[0] for r in rows) == sorted(np.flatnonzero(ok).tolist())
    assert t.notes == ["polygon on a: 1 HEALPix index range(s)"] or \
        t.notes[0].startswith("polygon on a")
    # CONTAINS(...) = 0 and OR are not sped up, and stay right
    t, rows = duck.run(f"SELECT COUNT(*) FROM demo.field WHERE CONTAINS(POINT(ra, dec), {box})"
                       " = 0")
    assert not t.notes
    assert rows[0][0] == int((~np.isnan(_vec(field["ra"].to_numpy(zero_copy_only=False),
                                             field["dec"].to_numpy(zero_copy_only=False)))
                              .any(axis=1)).sum()) - len(_reference_keys(field, "box"))


def _reference_keys(field, name):
    p = _vec(field["ra"].to_numpy(zero_copy_only=False),
             field["dec"].to_numpy(zero_copy_only=False))
    valid = ~np.isnan(p).any(axis=1)
    return np.flatnonzero(valid & _reference(name, np.nan_to_num(p)))


def test_polygon_coverage_holds_every_inside_point():
    """Random points inside polygons anywhere on the sky all have their index within
    the ranges (the coverage never drops a row the exact test would keep)."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    from taphouse.adql import sphere
    from taphouse.adql.spatial import polygon_ranges

    rng = np.random.default_rng(3)
    for _ in range(40):
        centre = rng.normal(size=3)
        centre /= np.linalg.norm(centre)
        size = 10 ** rng.uniform(-3, 1.6)  # 0.001 to 40 degrees
        k = int(rng.integers(3, 9))
        ang = np.linspace(0, 2 * math.pi, k, endpoint=False) \
            + rng.uniform(-0.4, 0.4, k) * math.pi / k  # gaps under 180 degrees
        east = np.cross([0, 0, 1], centre)
        east /= np.linalg.norm(east)
        north = np.cross(centre, east)
        rad = math.tan(math.radians(size)) * rng.uniform(0.3, 1, len(ang))
        v = centre + (np.cos(ang) * rad)[:, None] * east + (np.sin(ang) * rad)[:, None] * north
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        coords = tuple(float(c) for q in v for c in (
            math.degrees(math.atan2(q[1], q[0])) % 360, math.degrees(math.asin(q[2]))))
        poly = sphere.polygon(coords)
        pts = centre + rng.normal(size=(20000, 3)) * math.radians(size)
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        pts = pts[in_polygon(pts, coords)]
        assert np.all(poly.contains(pts))
        ranges = polygon_ranges(coords, 29, 10_000_000)
        cells = nested.lonlat_to_healpix(
            Longitude(np.degrees(np.arctan2(pts[:, 1], pts[:, 0])) % 360 * u.deg),
            Latitude(np.degrees(np.arcsin(np.clip(pts[:, 2], -1, 1))) * u.deg),
            29).astype(np.int64)
        inside = np.zeros(len(cells), dtype=bool)
        for lo, hi in ranges:
            inside |= (cells >= lo) & (cells <= hi)
        assert inside.all(), coords


# --- a table of regions ------------------------------------------------------------------------
def _shapes(n=60):
    """Points, circles and convex and concave polygons around RA 0/360, the poles and
    elsewhere, near the constant regions below (so both answers occur)."""
    rng = np.random.default_rng(21)
    spots = [(0.0, 0.0), (359.5, 0.5), (0.0, 89.0), (180.0, -88.5), (10.0, 10.0)]
    rows = []
    for i in range(n):
        ra0, dec0 = spots[i % len(spots)]
        c = _vec(ra0, dec0) + rng.normal(size=3) * 0.03
        c /= np.linalg.norm(c)
        ra, dec = math.degrees(math.atan2(c[1], c[0])) % 360, math.degrees(math.asin(c[2]))
        r = float(rng.uniform(0.1, 1.5))
        east = np.cross([0, 0, 1], c)
        east /= np.linalg.norm(east)
        north = np.cross(c, east)
        k = int(rng.integers(3, 7))
        # a fan around the centre with gaps under 180 degrees: a simple polygon
        ang = np.linspace(0, 2 * math.pi, k, endpoint=False)
        if i % 3:
            ang = ang + rng.uniform(-0.4, 0.4, k) * math.pi / k
        rad = math.tan(math.radians(r)) * (rng.uniform(0.4, 1, k) if i % 2 else np.ones(k))
        v = c + (np.cos(ang) * rad)[:, None] * east + (np.sin(ang) * rad)[:, None] * north
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        poly = [float(x) for q in v for x in (math.degrees(math.atan2(q[1], q[0])) % 360,
                                              math.degrees(math.asin(q[2])))]
        rows.append((i, [ra, dec], [ra, dec, r], poly))
    rows.append((n, None, None, None))  # NULL regions
    return pa.table({
        "i": pa.array([r[0] for r in rows], pa.int64()),
        "p": pa.array([r[1] for r in rows], pa.list_(pa.float64(), 2)),
        "c": pa.array([r[2] for r in rows], pa.list_(pa.float64(), 3)),
        "g": pa.array([r[3] for r in rows], pa.list_(pa.float64())),
    })


SHAPE_META = TableMeta("tap_upload", "shapes", [
    ColumnMeta("i", "long"), ColumnMeta("p", "double", "2", "point"),
    ColumnMeta("c", "double", "3", "circle"), ColumnMeta("g", "double", "*", "polygon")],
    kind="upload")
CONSTANTS = {
    "point": "POINT(0.2, 0.1)",
    "point_pole": "POINT(0, 89.3)",
    "circle": "CIRCLE(0, 0, 0.8)",
    "circle_pole": "CIRCLE(180, -88.5, 1.2)",
    "circle_big": "CIRCLE(0, 0, 120)",
    "box": "BOX(359.8, 0.2, 1.6, 1.2)",
    "polygon": "POLYGON(359, -1, 1.2, -0.8, 0.5, 1.5)",
    "polygon_pole": "POLYGON(0, 88.5, 120, 88.5, 240, 88.5)",
    "concave": "POLYGON(9, 9, 11, 9, 11, 11, 10, 10.2, 9, 11)",
}


def _region(kind, value):
    """A reference region: ('point', vec) ('circle', vec, r) ('polygon', coords)."""
    if kind == "point":
        return ("point", _vec(*value))
    if kind == "circle":
        return ("circle", _vec(value[0], value[1]), value[2])
    return ("polygon", list(value))


def _const(name):
    text = CONSTANTS[name]
    nums = _coords(text)
    if text.startswith("POINT"):
        return _region("point", nums)
    if text.startswith("CIRCLE"):
        return _region("circle", nums)
    if text.startswith("BOX"):
        from taphouse.adql import sphere

        poly = sphere.box(*nums)
        return ("polygon", [c for v in poly.radec for c in v])
    return _region("polygon", nums)


def ref_contains(a, b) -> bool | None:
    """Brute force CONTAINS(a, b); None when too close to call."""
    ka, kb = a[0], b[0]
    if ka == "point":
        if kb == "point":
            return bool(angle(a[1], b[1]) == 0)
        if kb == "circle":
            d = angle(a[1], b[1]) - b[2]
            return None if abs(d) < 1e-6 else bool(d <= 0)
        if boundary_distance(a[1], b[1])[0] < 1e-3:
            return None
        return bool(in_polygon(a[1], b[1])[0])
    if ka == "circle":
        if kb == "point":
            return False
        if kb == "circle":
            d = angle(a[1], b[1]) + a[2] - b[2]
            return None if abs(d) < 1e-6 else bool(d <= 0)
        gap = boundary_distance(a[1], b[1])[0] - a[2]
        if abs(gap) < 1e-3:
            return None
        return bool(in_polygon(a[1], b[1])[0]) and gap > 0
    if kb == "point":
        return False
    edge = _boundary(a[1])
    if kb == "circle":
        d = angle(edge, b[1]) - b[2]
        if np.abs(d).min() < 1e-3:
            return None
        return bool(np.all(d <= 0))
    if boundary_distance(edge, b[1]).min() < 1e-3:
        return None
    return bool(np.all(in_polygon(edge, b[1])))


def ref_intersects(a, b) -> bool | None:
    if a[0] == "point":
        return ref_contains(a, b)
    if b[0] == "point":
        return ref_contains(b, a)
    if a[0] == "circle" and b[0] == "circle":
        d = angle(a[1], b[1]) - a[2] - b[2]
        return None if abs(d) < 1e-6 else bool(d <= 0)
    if a[0] == "polygon" and b[0] == "circle":
        a, b = b, a
    if a[0] == "circle":
        gap = boundary_distance(a[1], b[1])[0] - a[2]
        inside = bool(in_polygon(a[1], b[1])[0])
        if abs(gap) < 1e-3:
            return None
        return inside or gap <= 0
    ea, eb = _boundary(a[1]), _boundary(b[1])
    if min(boundary_distance(ea, b[1]).min(), boundary_distance(eb, a[1]).min()) \
            < 1e-3:
        return None
    return bool(np.any(in_polygon(ea, b[1])) or np.any(in_polygon(eb, a[1])))


COLUMN_KINDS = {"p": "point", "c": "circle", "g": "polygon"}
PAIRS = [(col, const, swap) for col in COLUMN_KINDS for const in CONSTANTS
         for swap in (False, True)]


@pytest.fixture(scope="module")
def shapes() -> pa.Table:
    return _shapes()


def _shape_rows(shapes):
    out = []
    for row in shapes.to_pylist():
        out.append(row)
    return out


@pytest.mark.parametrize("op", ["CONTAINS", "INTERSECTS"])
@pytest.mark.parametrize(("col", "const", "swap"), PAIRS,
                         ids=[f"{c}-{k}-{'rev' if s else 'fwd'}" for c, k, s in PAIRS])
def test_region_pairs_against_brute_force(backend, shapes, op, col, const, swap):
    a, b = (f"s.{col}", CONSTANTS[const]) if not swap else (CONSTANTS[const], f"s.{col}")
    adql = f"SELECT s.i, {op}({a}, {b}) FROM TAP_UPLOAD.shapes AS s ORDER BY s.i"
    _, rows = backend.run(adql, {("tap_upload", "shapes"): SHAPE_META},
                          {("tap_upload", "shapes"): shapes})
    test = ref_contains if op == "CONTAINS" else ref_intersects
    checked = 0
    seen = set()
    for row, (i, got) in zip(_shape_rows(shapes), rows, strict=True):
        assert row["i"] == i
        if row[col] is None:
            assert got == 0
            continue
        mine, other = _region(COLUMN_KINDS[col], row[col]), _const(const)
        want = test(mine, other) if not swap else test(other, mine)
        if want is None:
            continue
        assert bool(got) == want, (i, row[col], const, swap)
        checked += 1
        seen.add(want)
    assert checked >= len(rows) // 2


@pytest.mark.parametrize("op", ["CONTAINS", "INTERSECTS"])
@pytest.mark.parametrize(("ca", "cb"), [(a, b) for a in COLUMN_KINDS for b in COLUMN_KINDS])
def test_column_against_column(backend, shapes, op, ca, cb):
    """Both regions from the data: a join of a table of regions with itself (shifted by
    one row, so the regions differ and overlap)."""
    adql = (f"SELECT s.i, t.i, {op}(s.{ca}, t.{cb}) FROM TAP_UPLOAD.shapes AS s "
            f"JOIN TAP_UPLOAD.shapes AS t ON t.i = s.i + 5 ORDER BY s.i")
    _, rows = backend.run(adql, {("tap_upload", "shapes"): SHAPE_META},
                          {("tap_upload", "shapes"): shapes})
    by_i = {r["i"]: r for r in _shape_rows(shapes)}
    test = ref_contains if op == "CONTAINS" else ref_intersects
    answers = set()
    for i, j, got in rows:
        a, b = by_i[i][ca], by_i[j][cb]
        if a is None or b is None:
            assert got == 0
            continue
        want = test(_region(COLUMN_KINDS[ca], a), _region(COLUMN_KINDS[cb], b))
        if want is not None:
            assert bool(got) == want, (i, j)
            answers.add(want)
    assert len(rows) > 40


def test_table_of_regions_joined_with_positions(duck, field, shapes):
    """Positions in polygons held in a column (a catalogue against a list of
    footprints): each (point, polygon) pair as brute force says."""
    adql = ("SELECT s.i, f.k FROM TAP_UPLOAD.shapes AS s JOIN demo.field AS f "
            "ON 1 = CONTAINS(POINT(f.ra, f.dec), s.g) WHERE s.i < 15")
    _, rows = duck.run(adql, {("tap_upload", "shapes"): SHAPE_META},
                       {("tap_upload", "shapes"): shapes})
    p = _vec(field["ra"].to_numpy(zero_copy_only=False),
             field["dec"].to_numpy(zero_copy_only=False))
    valid = ~np.isnan(p).any(axis=1)
    expected = set()
    for row in _shape_rows(shapes)[:15]:
        inside = valid & in_polygon(np.nan_to_num(p), row["g"])
        expected |= {(row["i"], int(k)) for k in np.flatnonzero(inside)}
    assert set(rows) == expected
    assert len(expected) > 10


# --- constants and errors ----------------------------------------------------------------------
@pytest.mark.parametrize(("expr", "value"), [
    ("CONTAINS(POLYGON(0, 0, 1, 0, 1, 1, 0, 1), CIRCLE(0.5, 0.5, 2))", 1),
    ("CONTAINS(POLYGON(0, 0, 1, 0, 1, 1, 0, 1), CIRCLE(0.5, 0.5, 0.6))", 0),
    ("CONTAINS(CIRCLE(0.5, 0.5, 0.2), POLYGON(0, 0, 1, 0, 1, 1, 0, 1))", 1),
    ("CONTAINS(CIRCLE(0.5, 0.5, 0.6), POLYGON(0, 0, 1, 0, 1, 1, 0, 1))", 0),
    ("INTERSECTS(CIRCLE(1.3, 0.5, 0.4), POLYGON(0, 0, 1, 0, 1, 1, 0, 1))", 1),
    ("INTERSECTS(CIRCLE(1.5, 0.5, 0.4), POLYGON(0, 0, 1, 0, 1, 1, 0, 1))", 0),
    ("CONTAINS(BOX(0.5, 0.5, 0.4, 0.4), POLYGON(0, 0, 1, 0, 1, 1, 0, 1))", 1),
    ("CONTAINS(POLYGON(0, 0, 1, 0, 1, 1, 0, 1), BOX(0.5, 0.5, 0.4, 0.4))", 0),
    ("INTERSECTS(POLYGON(359.5, 0, 0.5, 0, 0, 1), POLYGON(0, 0.5, 1, 0.5, 1, 2))", 1),
    ("INTERSECTS(POLYGON(359.5, 0, 0.5, 0, 0, 1), POLYGON(2, 0.5, 3, 0.5, 3, 2))", 0),
    # a cross: edges cross, no vertex of one is in the other
    ("INTERSECTS(POLYGON(0, -0.1, 3, -0.1, 3, 0.1, 0, 0.1), "
     "POLYGON(1.4, -2, 1.6, -2, 1.6, 2, 1.4, 2))", 1),
    ("CONTAINS(POLYGON(1, 1, 2, 1, 2, 2), POINT(1.5, 1.2))", 0),
    ("CONTAINS(POINT(1.5, 1.2), POLYGON(1, 1, 2, 1, 2, 2))", 1),
    # circles larger than a hemisphere: all but a cap around the north pole
    ("CONTAINS(POLYGON(0, 81, 10, 81, 5, 85), CIRCLE(0, -90, 170))", 0),
    ("CONTAINS(POLYGON(0, 81, 10, 81, 5, 85), CIRCLE(0, -90, 179.5))", 1),
    ("CONTAINS(POLYGON(0, 89, 120, 89, 240, 89), CIRCLE(0, -90, 179.5))", 0),
    ("CONTAINS(CIRCLE(10, 10, 0), POINT(10, 10))", 1),
    ("CONTAINS(CIRCLE(10, 10, 1), POINT(10, 10))", 0),
    ("CONTAINS(POINT(10, 10), POINT(10, 10))", 1),
])
def test_constant_regions(backend, expr, value):
    _, rows = backend.run(f"SELECT {expr} FROM demo.field WHERE k = 1")
    assert rows == [(value,)]


def test_bad_region_in_the_data_is_a_clear_error(duck, shapes):
    bad = pa.table({"i": pa.array([1], pa.int64()), "p": pa.array([[0.0, 0.0]],
                   pa.list_(pa.float64(), 2)), "c": pa.array([[0.0, 0.0, 1.0]],
                   pa.list_(pa.float64(), 3)),
                    "g": pa.array([[0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]],
                                  pa.list_(pa.float64()))})
    meta = TableMeta("tap_upload", "bad", SHAPE_META.columns, kind="upload")
    with pytest.raises(Exception, match="edges cross each other"):
        duck.run("SELECT CONTAINS(p, g) FROM TAP_UPLOAD.bad",
                 {("tap_upload", "bad"): meta}, {("tap_upload", "bad"): bad})


def test_hemisphere_limit():
    from taphouse.adql import sphere

    # a square 170 degrees wide is smaller than a hemisphere: fine
    sphere.polygon([0, -60, 90, -60, 180, -60, 270, -60])
    with pytest.raises(sphere.RegionError, match="hemisphere"):
        sphere.polygon([0, 10, 90, -10, 180, 10, 270, -10])  # a band around the equator
    with pytest.raises(AdqlError, match="hemisphere"):
        translate("SELECT k FROM demo.field WHERE 1=CONTAINS(POINT(ra, dec), "
                  "POLYGON(0, 0, 90, 0, 180, 0, 270, 0))",
                  Scope({("demo", "field"): TableMeta("demo", "field", FIELD_COLUMNS)},
                        lambda t: "f"))
