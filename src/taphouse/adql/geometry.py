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
from dataclasses import dataclass

from sqlglot import exp

from taphouse.adql.columns import source_column
from taphouse.adql.errors import AdqlError
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


def _fn(cls, x):
    return cls(this=x)


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
def _strip_coordsys(name: str, args: list[exp.Expression], node) -> list[exp.Expression]:
    if args and isinstance(args[0], exp.Literal) and args[0].is_string:
        system = args[0].this.strip().lower()
        if system not in _COORDSYS_OK:
            raise AdqlError.at(f"{name}: coordinate system {args[0].this!r} is not supported "
                               "(positions are ICRS)", node)
        return args[1:]
    return args


def is_geometry_call(node: exp.Expression, names=("point", "circle", "box", "polygon",
                                                   "centroid")) -> bool:
    return isinstance(node, exp.Anonymous) and node.name.lower() in names


def geometry(node: exp.Expression, tx) -> Geometry:
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
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        args = _strip_coordsys(name.upper(), list(node.expressions), node)
        if name == "point":
            if len(args) != 2:
                raise AdqlError.at("POINT takes ra and dec (after an optional coordinate "
                                   "system)", node)
            return Point(tx(args[0]), tx(args[1]))
        if name == "circle":
            if len(args) == 2:
                centre = geometry(args[0], tx)
                if not isinstance(centre, Point):
                    raise AdqlError.at("CIRCLE(point, radius) needs a point", node)
                return Circle(centre, tx(args[1]))
            if len(args) == 3:
                return Circle(Point(tx(args[0]), tx(args[1])), tx(args[2]))
            raise AdqlError.at("CIRCLE takes (ra, dec, radius) or (point, radius)", node)
        if name == "polygon":
            return _polygon(args, node, tx)
        if name == "box":
            return _box(args, node, tx)
        if name == "centroid":
            if len(node.expressions) != 1:
                raise AdqlError.at("CENTROID takes one geometry", node)
            return centroid(geometry(node.expressions[0], tx), node)
        udf = UDFS.get(name)
        if udf is not None and udf.xtype == "point":
            # a DOUBLE[2] value; its coordinates are elements 0 and 1
            value = tx(node)
            return Point(_index(value, 0), _index(value, 1))
    raise AdqlError.at(f"{node.sql()[:40]} is not a geometry", node)


def _index(col: exp.Expression, i: int) -> exp.Expression:
    # sqlglot indexes from 0 and adds the backend's offset when generating
    return exp.Bracket(this=col.copy(), expressions=[exp.Literal.number(i)])


def _polygon(args, node, tx) -> Polygon:
    if args and all(is_geometry_call(a, ("point",)) or _is_point_column(a) for a in args):
        verts = [geometry(a, tx) for a in args]
    else:
        if len(args) % 2:
            raise AdqlError.at("POLYGON takes pairs of coordinates (ra1, dec1, ra2, dec2, "
                               "...) or points", node)
        verts = [Point(tx(args[i]), tx(args[i + 1])) for i in range(0, len(args), 2)]
    if len(verts) < 3:
        raise AdqlError.at("a POLYGON needs at least 3 vertices", node)
    return Polygon(vertices=verts)  # type: ignore[arg-type]


def _is_point_column(node) -> bool:
    col = source_column(node) if isinstance(node, exp.Column) else None
    return col is not None and (col.xtype or "").lower() == "point"


def _box(args, node, tx) -> Polygon:
    if len(args) != 4:
        raise AdqlError.at("BOX takes (ra, dec, width, height)", node)
    values = [constant(a) for a in args]
    if any(v is None for v in values):
        raise AdqlError.at("BOX needs constant arguments; write a POLYGON for other cases",
                           node)
    ra, dec, w, h = values  # type: ignore[misc]
    corners = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        corners.append(_deproject(ra, dec, math.radians(sx * w / 2),
                                  math.radians(sy * h / 2)))
    return Polygon(vertices=[Point(num(a), num(d)) for a, d in corners])


def _deproject(ra0: float, dec0: float, x: float, y: float) -> tuple[float, float]:
    """Inverse gnomonic projection of tangent-plane (x, y) [rad] about (ra0, dec0)."""
    r0, d0 = math.radians(ra0), math.radians(dec0)
    rho = math.hypot(x, y)
    c = math.atan(rho)
    if rho == 0:
        return ra0, dec0
    dec = math.asin(math.cos(c) * math.sin(d0) + y * math.sin(c) * math.cos(d0) / rho)
    ra = r0 + math.atan2(x * math.sin(c),
                         rho * math.cos(d0) * math.cos(c) - y * math.sin(d0) * math.sin(c))
    return math.degrees(ra) % 360.0, math.degrees(dec)


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


def centroid(g: Geometry, node) -> Point:
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


def area(g: Geometry, node) -> exp.Expression:
    """Area in square degrees."""
    if isinstance(g, Point):
        return exp.Literal.number(0)
    if isinstance(g, Circle):
        sr = exp.Mul(this=exp.Mul(this=exp.Literal.number(2), expression=exp.Pi()),
                     expression=exp.Paren(this=exp.Sub(
                         this=exp.Literal.number(1), expression=exp.Cos(this=rad(g.radius)))))
        return exp.Mul(this=sr, expression=num((180.0 / math.pi) ** 2))
    verts = constant_vertices(g)
    if verts is None:
        raise AdqlError.at("AREA of a polygon needs constant vertices", node)
    return num(_polygon_area(verts))


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
def contains(a: Geometry, b: Geometry, node) -> exp.Expression:
    """Boolean SQL for CONTAINS(a, b): a is inside b."""
    if isinstance(a, Point) and isinstance(b, Circle):
        return within(a, b.center, b.radius)
    if isinstance(a, Point) and isinstance(b, Polygon):
        return exp.Anonymous(this="taphouse_polygon_contains",
                             expressions=[a.ra, a.dec, b.as_array()])
    if isinstance(a, Circle) and isinstance(b, Circle):
        return exp.LTE(this=exp.Add(this=distance(a.center, b.center), expression=p(a.radius)),
                       expression=p(b.radius))
    if isinstance(a, Point) and isinstance(b, Point):
        return exp.EQ(this=distance(a, b), expression=exp.Literal.number(0))
    raise AdqlError.at(f"CONTAINS({_kind(a)}, {_kind(b)}) is not supported; supported: "
                       "point in circle or polygon, circle in circle", node)


def intersects(a: Geometry, b: Geometry, node) -> exp.Expression:
    if isinstance(a, Point):
        return contains(a, b, node)
    if isinstance(b, Point):
        return contains(b, a, node)
    if isinstance(a, Circle) and isinstance(b, Circle):
        return exp.LTE(this=distance(a.center, b.center),
                       expression=exp.Add(this=p(a.radius), expression=p(b.radius)))
    raise AdqlError.at(f"INTERSECTS({_kind(a)}, {_kind(b)}) is not supported; supported: "
                       "point with anything, circle with circle", node)


def _kind(g: Geometry) -> str:
    return type(g).__name__.lower()
