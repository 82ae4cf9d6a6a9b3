"""ADQL geometry: values, predicates and functions, translated to plain SQL.

Geometries are kept as small structures while translating (a point is two SQL
expressions, a circle a point and a radius, a polygon its vertices or an array
expression) so predicates become arithmetic on the coordinates: a point in a circle is
a haversine comparison, correct across RA 0/360 and at the poles. Geometry values in a
result become DOUBLE arrays with their DALI xtype (point ``[ra, dec]``, circle
``[ra, dec, r]``, polygon ``[ra1, dec1, ...]``). Everything is in degrees, ICRS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
from sqlglot import exp

from taphouse.adql import sphere
from taphouse.adql.columns import source_column
from taphouse.adql.errors import AdqlError
from taphouse.adql.functions import GEOMETRY_VALUES, F, function_of
from taphouse.adql.rules import Tx
from taphouse.adql.udf import UDFS

_COORDSYS_OK = {"", "icrs", "icrs geocenter", "icrs topocenter", "j2000", "fk5", "unknownframe"}


@dataclass
class Point:
    ra: exp.Expression
    dec: exp.Expression


@dataclass
class Circle:
    center: Point
    radius: exp.Expression


@dataclass
class Polygon:
    vertices: list[Point] | None = None
    array: exp.Expression | None = None  # DOUBLE[] [ra1, dec1, ra2, dec2, ...]

    def as_array(self) -> exp.Expression:
        if self.array is not None:
            return self.array
        assert self.vertices is not None
        flat = [c for v in self.vertices for c in (v.ra, v.dec)]
        return _double_array(flat, None)


Geometry = Point | Circle | Polygon


# --- SQL building blocks ----------------------------------------------------------------
def p(e: exp.Expression) -> exp.Expression:
    """Parenthesise an operand unless it is atomic (sqlglot does not add parentheses)."""
    if isinstance(e, exp.Column | exp.Literal | exp.Func | exp.Paren | exp.Bracket
                  | exp.Null | exp.Boolean):
        return e
    return exp.Paren(this=e)


def num(v: float | int) -> exp.Expression:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        v = int(v)
    # the exponent makes the literal a DOUBLE (a bare 1.5 is DECIMAL in DuckDB)
    lit = exp.Literal.number(repr(abs(v)) + "e0" if isinstance(v, float)
                             and "e" not in repr(v) else repr(abs(v)))
    return exp.Neg(this=lit) if v < 0 else lit


def rad(x: exp.Expression) -> exp.Expression:
    return exp.Radians(this=x)


def haversine(a: Point, b: Point) -> exp.Expression:
    """sin^2(d/2) of the angular distance d between two points (no trigonometric
    inverse, so a threshold test can compare it with a constant)."""
    ddec = rad(exp.Sub(this=p(b.dec), expression=p(a.dec)))
    dra = rad(exp.Sub(this=p(b.ra), expression=p(a.ra)))
    half = exp.Literal.number(2)
    s1 = exp.Pow(this=exp.Sin(this=exp.Div(this=ddec, expression=half)),
                 expression=half)
    s2 = exp.Pow(this=exp.Sin(this=exp.Div(this=dra, expression=half)), expression=half)
    cc = exp.Mul(this=exp.Mul(this=exp.Cos(this=rad(a.dec)), expression=exp.Cos(
        this=rad(b.dec))), expression=s2)
    return exp.Add(this=s1, expression=cc)


def distance(a: Point, b: Point) -> exp.Expression:
    """Angular distance in degrees."""
    h = exp.Anonymous(this="LEAST", expressions=[exp.Literal.number(1), haversine(a, b)])
    return exp.Degrees(this=exp.Mul(this=exp.Literal.number(2),
                                    expression=exp.Asin(this=exp.Sqrt(this=h))))


def within(a: Point, b: Point, radius: exp.Expression) -> exp.Expression:
    """Boolean: distance(a, b) <= radius (degrees)."""
    limit = exp.Pow(this=exp.Sin(this=exp.Div(this=rad(radius),
                                             expression=exp.Literal.number(2))),
                    expression=exp.Literal.number(2))
    test = exp.LTE(this=haversine(a, b), expression=limit)
    value = constant(radius)
    if value is not None and value >= 180:
        return exp.Boolean(this=True)
    return test


def _double_array(items: list[exp.Expression], size: int | None) -> exp.Expression:
    return exp.Cast(this=exp.Array(expressions=items),
                    to=exp.DataType.build(f"DOUBLE[{size or ''}]", dialect="duckdb"))


def to_value(g: Geometry) -> exp.Expression:
    """The result-column value of a geometry (a DOUBLE array)."""
    if isinstance(g, Point):
        return _double_array([g.ra, g.dec], 2)
    if isinstance(g, Circle):
        return _double_array([g.center.ra, g.center.dec, g.radius], 3)
    return g.as_array()


# --- constants ------------------------------------------------------------------------
def constant(e: exp.Expression) -> float | None:
    """The numeric value of a constant expression, or None if it is not constant."""
    if isinstance(e, exp.Literal) and not e.is_string:
        try:
            return float(e.this)
        except ValueError:
            return None
    if isinstance(e, exp.Paren):
        return constant(e.this)
    if isinstance(e, exp.Neg):
        v = constant(e.this)
        return None if v is None else -v
    if isinstance(e, exp.Add | exp.Sub | exp.Mul | exp.Div):
        a, b = constant(e.this), constant(e.expression)
        if a is None or b is None:
            return None
        if isinstance(e, exp.Add):
            return a + b
        if isinstance(e, exp.Sub):
            return a - b
        if isinstance(e, exp.Mul):
            return a * b
        return a / b if b else None
    if isinstance(e, exp.Pi):
        return math.pi
    return None


# --- parsing geometry arguments -----------------------------------------------------------
def _strip_coordsys(name: str, args: list[exp.Expression],
                    node: exp.Expression) -> list[exp.Expression]:
    if args and isinstance(args[0], exp.Literal) and args[0].is_string:
        system = args[0].this.strip().lower()
        if system not in _COORDSYS_OK:
            raise AdqlError.at(f"{name}: coordinate system {args[0].this!r} is not supported "
                               "(positions are ICRS)", node)
        return args[1:]
    return args


def is_geometry_call(node: exp.Expression,
                     names: Collection[str] = GEOMETRY_VALUES) -> bool:
    """Whether ``node`` calls one of the geometry functions ``names``."""
    return function_of(node) in names


def geometry(node: exp.Expression, tx: Tx) -> Geometry:
    """The geometry an ADQL expression stands for; ``tx`` translates scalar arguments."""
    if isinstance(node, exp.Paren):
        return geometry(node.this, tx)
    if isinstance(node, exp.Column):
        col = source_column(node)
        xtype = (col.xtype or "").lower() if col is not None else ""
        if xtype == "point":
            return Point(_index(node, 0), _index(node, 1))
        if xtype == "circle":
            return Circle(Point(_index(node, 0), _index(node, 1)), _index(node, 2))
        if xtype == "polygon":
            return Polygon(array=node.copy())
        raise AdqlError.at(f"column {node.name} is not a geometry (point, circle or "
                           "polygon)", node)
    fn = function_of(node)
    if isinstance(node, exp.Anonymous) and fn is not None:
        args = _strip_coordsys(fn.upper(), list(node.expressions), node)
        if fn is F.POINT:
            if len(args) != 2:
                raise AdqlError.at("POINT takes ra and dec (after an optional coordinate "
                                   "system)", node)
            return Point(tx(args[0]), tx(args[1]))
        if fn is F.CIRCLE:
            if len(args) == 2:
                centre = geometry(args[0], tx)
                if not isinstance(centre, Point):
                    raise AdqlError.at("CIRCLE(point, radius) needs a point", node)
                return Circle(centre, tx(args[1]))
            if len(args) == 3:
                return Circle(Point(tx(args[0]), tx(args[1])), tx(args[2]))
            raise AdqlError.at("CIRCLE takes (ra, dec, radius) or (point, radius)", node)
        if fn is F.POLYGON:
            return _polygon(args, node, tx)
        if fn is F.BOX:
            return _box(args, node, tx)
        if fn is F.CENTROID:
            if len(node.expressions) != 1:
                raise AdqlError.at("CENTROID takes one geometry", node)
            return centroid(geometry(node.expressions[0], tx), node)
        udf = UDFS.get(fn)
        if udf is not None and udf.xtype == "point":
            # a DOUBLE[2] value; its coordinates are elements 0 and 1
            value = tx(node)
            return Point(_index(value, 0), _index(value, 1))
    raise AdqlError.at(f"{node.sql()[:40]} is not a geometry", node)


def _index(col: exp.Expression, i: int) -> exp.Expression:
    # sqlglot indexes from 0 and adds the backend's offset when generating
    return exp.Bracket(this=col.copy(), expressions=[exp.Literal.number(i)])


def _polygon(args: list[exp.Expression], node: exp.Expression, tx: Tx) -> Polygon:
    if args and all(is_geometry_call(a, {F.POINT}) or _is_point_column(a) for a in args):
        verts = [geometry(a, tx) for a in args]
    else:
        if len(args) % 2:
            raise AdqlError.at("POLYGON takes pairs of coordinates (ra1, dec1, ra2, dec2, "
                               "...) or points", node)
        verts = [Point(tx(args[i]), tx(args[i + 1])) for i in range(0, len(args), 2)]
    if len(verts) < 3:
        raise AdqlError.at("a POLYGON needs at least 3 vertices", node)
    return Polygon(vertices=verts)  # type: ignore[arg-type]


def _is_point_column(node: exp.Expression) -> bool:
    col = source_column(node) if isinstance(node, exp.Column) else None
    return col is not None and (col.xtype or "").lower() == "point"


def _box(args: list[exp.Expression], node: exp.Expression, tx: Tx) -> Polygon:
    if len(args) != 4:
        raise AdqlError.at("BOX takes (ra, dec, width, height)", node)
    values = [constant(a) for a in args]
    if any(v is None for v in values):
        raise AdqlError.at("BOX needs constant arguments; write a POLYGON for other cases",
                           node)
    ra, dec, w, h = values  # type: ignore[misc]
    try:
        poly = sphere.box(ra, dec, w, h)
    except sphere.RegionError as e:
        raise AdqlError.at(str(e), node) from None
    return Polygon(vertices=[Point(num(a), num(d)) for a, d in poly.radec])


def _unit(ra: float, dec: float) -> tuple[float, float, float]:
    r, d = math.radians(ra), math.radians(dec)
    return math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d)


def constant_vertices(poly: Polygon) -> list[tuple[float, float]] | None:
    if poly.vertices is None:
        return None
    out = []
    for v in poly.vertices:
        a, d = constant(v.ra), constant(v.dec)
        if a is None or d is None:
            return None
        out.append((a, d))
    return out


def centroid(g: Geometry, node: exp.Expression) -> Point:
    if isinstance(g, Point):
        return g
    if isinstance(g, Circle):
        return g.center
    verts = constant_vertices(g)
    if verts is None:
        raise AdqlError.at("CENTROID of a polygon needs constant vertices", node)
    x = y = z = 0.0
    for a, d in verts:
        ux, uy, uz = _unit(a, d)
        x, y, z = x + ux, y + uy, z + uz
    return Point(num(math.degrees(math.atan2(y, x)) % 360.0),
                 num(math.degrees(math.atan2(z, math.hypot(x, y)))))


def area(g: Geometry, node: exp.Expression) -> exp.Expression:
    """Area in square degrees."""
    if isinstance(g, Point):
        return exp.Literal.number(0)
    if isinstance(g, Circle):
        sr = exp.Mul(this=exp.Mul(this=exp.Literal.number(2), expression=exp.Pi()),
                     expression=exp.Paren(this=exp.Sub(
                         this=exp.Literal.number(1), expression=exp.Cos(this=rad(g.radius)))))
        return exp.Mul(this=sr, expression=num((180.0 / math.pi) ** 2))
    poly = constant_polygon(g, node)
    if poly is None:
        raise AdqlError.at("AREA of a polygon needs constant vertices", node)
    return num(_polygon_area(poly.radec))


def _polygon_area(verts: list[tuple[float, float]]) -> float:
    """Spherical polygon area (square degrees) as the sum of triangle excesses around
    the first vertex (simple polygons, smaller than a hemisphere)."""
    vs = [_unit(a, d) for a, d in verts]
    total = 0.0
    a = vs[0]
    for b, c in zip(vs[1:-1], vs[2:], strict=True):
        triple = (a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                  + a[2] * (b[0] * c[1] - b[1] * c[0]))
        dots = 1 + sum(x * y for x, y in zip(a, b, strict=True)) \
            + sum(x * y for x, y in zip(b, c, strict=True)) \
            + sum(x * y for x, y in zip(c, a, strict=True))
        total += 2 * math.atan2(triple, dots)
    return abs(total) * (180.0 / math.pi) ** 2


# --- predicates -----------------------------------------------------------------------
# Each region is tested with linear forms p.w of the position's unit vector p (see
# taphouse.adql.sphere), written as plain SQL arithmetic that both backends run
# vectorised. A polygon whose vertices are not constant is tested by the backend's
# service functions (taphouse_contains / taphouse_intersects on DALI arrays).
def constant_polygon(g: Polygon, node: exp.Expression) -> sphere.Polygon | None:
    """The validated spherical polygon of a constant POLYGON/BOX, None if it is not
    constant; :class:`AdqlError` if it cannot be used."""
    verts = constant_vertices(g)
    if verts is None:
        return None
    try:
        return sphere.polygon([c for v in verts for c in v])
    except sphere.RegionError as e:
        raise AdqlError.at(str(e), node) from None


def constant_region(g: Geometry, node: exp.Expression) -> sphere.Region | None:
    """The region of a geometry whose values are all constant, else None."""
    if isinstance(g, Point):
        ra, dec = constant(g.ra), constant(g.dec)
        if ra is None or dec is None:
            return None
        try:
            return sphere.region_of([ra, dec])
        except sphere.RegionError as e:
            raise AdqlError.at(str(e), node) from None
    if isinstance(g, Circle):
        values = [constant(g.center.ra), constant(g.center.dec), constant(g.radius)]
        if any(v is None for v in values):
            return None
        return sphere.Cap(*values)  # type: ignore[arg-type]
    return constant_polygon(g, node)


def _xyz(pt: Point) -> tuple[exp.Expression, exp.Expression, exp.Expression]:
    cos_dec = exp.Cos(this=rad(pt.dec))
    return (exp.Mul(this=cos_dec, expression=exp.Cos(this=rad(pt.ra))),
            exp.Mul(this=cos_dec.copy(), expression=exp.Sin(this=rad(pt.ra))),
            exp.Sin(this=rad(pt.dec)))


def dot(pt: Point, w: np.ndarray) -> exp.Expression:
    """SQL for ``p.w``: the position's unit vector dotted with a constant vector."""
    terms: list[exp.Expression] = []
    for coeff, comp in zip(w, _xyz(pt), strict=True):
        c = float(coeff)
        if c != 0.0:
            terms.append(exp.Mul(this=num(c), expression=comp))
    if not terms:
        return exp.Literal.number(0)
    out = terms[0]
    for t in terms[1:]:
        out = exp.Add(this=out, expression=t)
    return exp.Paren(this=out)


def _all(tests: list[exp.Expression]) -> exp.Expression:
    if not tests:
        return exp.Boolean(this=True)
    out = p(tests[0])
    for t in tests[1:]:
        out = exp.And(this=out, expression=p(t))
    return exp.Paren(this=out)


def _any(tests: list[exp.Expression]) -> exp.Expression:
    if not tests:
        return exp.Boolean(this=False)
    out = p(tests[0])
    for t in tests[1:]:
        out = exp.Or(this=out, expression=p(t))
    return exp.Paren(this=out)


def _ge(e: exp.Expression, value: float | exp.Expression) -> exp.Expression:
    return exp.GTE(this=e, expression=num(value) if isinstance(value, float | int) else value)


def point_in_polygon(pt: Point, poly: sphere.Polygon) -> exp.Expression:
    """Boolean SQL: the point lies in (or on) the constant polygon."""
    if poly.convex:
        return _all([_ge(dot(pt, w), 0.0) for w in poly.halfspaces()])
    odd = []
    for ui, uj, l_ in poly.crossings():
        straddles = exp.NEQ(this=exp.Paren(this=exp.GT(this=dot(pt, ui), expression=num(0))),
                            expression=exp.Paren(this=exp.GT(this=dot(pt, uj),
                                                             expression=num(0))))
        left = exp.LT(this=dot(pt, l_), expression=num(0))
        odd.append(exp.Case(ifs=[exp.If(this=exp.And(this=straddles, expression=left),
                                         true=exp.Literal.number(1))],
                            default=exp.Literal.number(0)))
    total: exp.Expression = odd[0]
    for o in odd[1:]:
        total = exp.Add(this=total, expression=o)
    parity = exp.EQ(this=exp.Mod(this=exp.Paren(this=total), expression=num(2)),
                    expression=num(1))
    return _all([exp.GT(this=dot(pt, poly.centre), expression=num(0)), parity])


def _cos_radius(radius: exp.Expression) -> exp.Expression:
    value = constant(radius)
    if value is not None:
        return num(math.cos(math.radians(value)))
    return exp.Cos(this=rad(radius))


def _sin_radius(radius: exp.Expression) -> exp.Expression:
    value = constant(radius)
    if value is not None:
        return num(math.sin(math.radians(min(value, 90.0))))
    return exp.Sin(this=rad(exp.Anonymous(this="LEAST", expressions=[p(radius), num(90)])))


def _near_boundary(pt: Point, radius: exp.Expression, poly: sphere.Polygon) -> exp.Expression:
    """Boolean SQL: the point is within ``radius`` degrees of the polygon's boundary."""
    cos_r, sin_r = _cos_radius(radius), _sin_radius(radius)
    tests = []
    for ed in poly.edges():
        beside = _all([_ge(dot(pt, ed.ta), 0.0), _ge(dot(pt, ed.tb), 0.0),
                       exp.LTE(this=exp.Abs(this=dot(pt, ed.w)), expression=sin_r.copy())])
        tests.append(_any([beside, _ge(dot(pt, ed.a), cos_r.copy()),
                           _ge(dot(pt, ed.b), cos_r.copy())]))
    return _any(tests)


def _circle_intersects_polygon(c: Circle, poly: sphere.Polygon) -> exp.Expression:
    return _any([point_in_polygon(c.center, poly), _near_boundary(c.center, c.radius, poly)])


def _circle_in_polygon(c: Circle, poly: sphere.Polygon) -> exp.Expression:
    return _all([exp.LT(this=p(c.radius), expression=num(90)),
                 point_in_polygon(c.center, poly),
                 exp.Not(this=_near_boundary(c.center, c.radius, poly))])


def _polygon_in_circle(poly: sphere.Polygon, c: Circle) -> exp.Expression:
    # A cap up to a hemisphere is convex: it holds the polygon when it holds the
    # vertices. A larger one holds it when the polygon misses the complementary cap.
    small = _all([_ge(dot(c.center, v), _cos_radius(c.radius)) for v in poly.vertices])
    opposite = Circle(Point(exp.Add(this=p(c.center.ra), expression=num(180)),
                            exp.Neg(this=p(c.center.dec))),
                      exp.Sub(this=num(180), expression=p(c.radius)))
    large = exp.Not(this=_circle_intersects_polygon(opposite, poly))
    value = constant(c.radius)
    if value is not None:
        return exp.Boolean(this=True) if value >= 180 else small if value <= 90 else large
    return exp.Case(ifs=[exp.If(this=exp.GTE(this=p(c.radius), expression=num(180)),
                                true=exp.Boolean(this=True)),
                         exp.If(this=exp.LTE(this=p(c.radius), expression=num(90)),
                                true=small)],
                    default=large)


def _service_call(name: str, a: Geometry, b: Geometry) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=[_array(a), _array(b)])


def _array(g: Geometry) -> exp.Expression:
    # The service functions take any DALI array: 2 numbers a point, 3 a circle.
    if isinstance(g, Polygon):
        return g.as_array()
    items = [g.ra, g.dec] if isinstance(g, Point) else [g.center.ra, g.center.dec, g.radius]
    return _double_array(items, None)


def contains(a: Geometry, b: Geometry, node: exp.Expression) -> exp.Expression:
    """Boolean SQL for CONTAINS(a, b): a is inside b."""
    folded = _fold(sphere.contains, a, b, node)
    if folded is not None:
        return folded
    if isinstance(a, Point):
        if isinstance(b, Point):
            return within(a, b, exp.Literal.number(0))
        if isinstance(b, Circle):
            return within(a, b.center, b.radius)
        poly = constant_polygon(b, node)
        if poly is not None:
            return point_in_polygon(a, poly)
        return _service_call("taphouse_contains", a, b)
    if isinstance(a, Circle):
        if isinstance(b, Point):
            return _all([exp.LTE(this=p(a.radius), expression=num(0)),
                         within(a.center, b, exp.Literal.number(0))])
        if isinstance(b, Circle):
            return exp.LTE(this=exp.Add(this=distance(a.center, b.center),
                                        expression=p(a.radius)), expression=p(b.radius))
        poly = constant_polygon(b, node)
        if poly is not None:
            return _circle_in_polygon(a, poly)
        return _service_call("taphouse_contains", a, b)
    if isinstance(b, Point):
        return exp.Boolean(this=False)  # a polygon has an area; a point has none
    if isinstance(b, Circle):
        poly = constant_polygon(a, node)
        if poly is not None:
            return _polygon_in_circle(poly, b)
    return _service_call("taphouse_contains", a, b)


def intersects(a: Geometry, b: Geometry, node: exp.Expression) -> exp.Expression:
    """Boolean SQL for INTERSECTS(a, b)."""
    folded = _fold(sphere.intersects, a, b, node)
    if folded is not None:
        return folded
    if isinstance(a, Point):
        return contains(a, b, node)
    if isinstance(b, Point):
        return contains(b, a, node)
    if isinstance(a, Circle) and isinstance(b, Circle):
        return exp.LTE(this=distance(a.center, b.center),
                       expression=exp.Add(this=p(a.radius), expression=p(b.radius)))
    if isinstance(a, Circle) or isinstance(b, Circle):
        circle, other = (a, b) if isinstance(a, Circle) else (b, a)
        assert isinstance(circle, Circle) and isinstance(other, Polygon)
        poly = constant_polygon(other, node)
        if poly is not None:
            return _circle_intersects_polygon(circle, poly)
    return _service_call("taphouse_intersects", a, b)


def _fold(test: Callable[[sphere.Region, sphere.Region], bool], a: Geometry, b: Geometry,
          node: exp.Expression) -> exp.Expression | None:
    """Both regions constant: the answer, now (only where a polygon is involved: the
    SQL of the other pairs is as cheap and keeps NULL semantics)."""
    if not (isinstance(a, Polygon) or isinstance(b, Polygon)):
        return None
    ra, rb = constant_region(a, node), constant_region(b, node)
    if ra is None or rb is None:
        return None
    return exp.Boolean(this=bool(test(ra, rb)))
