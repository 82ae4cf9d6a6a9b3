"""Metadata of result columns, derived from the resolved source columns.

Units and UCDs go through an expression where its meaning is unchanged (a column, its
minimum, maximum or mean, a rounding, a CAST); otherwise they are dropped rather than
guessed. Units also go through a sum or difference of same-unit values (a constant
term takes the other side's unit) and through a scaling by a constant that is an
exact conversion between known angle units (``DISTANCE(...) * 3600`` is in arcsec,
``parallax / 1000`` in arcsec when parallax is in mas); a scaling by any other number
than 1 drops the unit. A conversion keeps the UCD (the quantity is the same, as with
IN_UNIT); any other arithmetic drops it.

Frames go with the quantity: a position column keeps its COOSYS (frame and epoch) and
a time column its TIMESYS wherever its UCD is kept; a POINT, CIRCLE or COORD1/COORD2
takes the frame of the coordinates it is made of (ICRS without an epoch for constants),
and ``ivo_epoch_prop_pos`` (``epoch_prop_pos``, ``epoch_prop``) the frame of its
input with the target epoch, when that epoch is a constant.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from taphouse.adql.functions import F, function_of
from taphouse.adql.udf import UDFS
from taphouse.catalogue.model import ColumnMeta, CoordSys, epoch_text

if TYPE_CHECKING:
    from taphouse.adql.resolve import Frame, Source

_NUMERIC_RANK = {"boolean": 0, "unsignedByte": 1, "short": 2, "int": 3, "long": 4,
                 "float": 5, "double": 6}

GEOMETRY_XTYPES = {"point": "2", "circle": "3", "polygon": "*"}


#: The frame of positions written as ADQL constants (COORDSYS is always ICRS here).
ICRS = CoordSys("ICRS")


def geometry_meta(xtype: str, coosys: CoordSys | None = ICRS) -> ColumnMeta:
    return ColumnMeta("", "double", arraysize=GEOMETRY_XTYPES[xtype], xtype=xtype, unit="deg",
                      coosys=coosys)


class Note:
    """What the resolver learnt about a node. Shared by reference when sqlglot copies
    the node (it deep-copies node metadata), so copies stay cheap."""

    __slots__ = ("col", "src", "frame", "columns")

    def __init__(self, col: ColumnMeta | None = None, src: Source | None = None,
                 frame: Frame | None = None, columns: list[ColumnMeta] | None = None) -> None:
        self.col = col  # ColumnMeta of a resolved column reference
        self.src = src  # its Source
        self.frame = frame  # Frame of a SELECT
        self.columns = columns  # output columns of a query

    def __deepcopy__(self, memo: dict[int, Any]) -> Note:
        return self


def note(node: exp.Expression) -> Note | None:
    found: Note | None = node.meta_get("th")
    return found


def annotate(node: exp.Expression, **values: Any) -> Note:
    n: Note | None = node.meta_get("th")
    if n is None:
        n = Note()
        node.meta["th"] = n
    for k, v in values.items():
        setattr(n, k, v)
    return n


def source_column(node: exp.Expression) -> ColumnMeta | None:
    """The resolved source column of a Column node (set by the resolver)."""
    n = node.meta_get("th")
    return n.col if n is not None else None


def describe(node: exp.Expression) -> ColumnMeta:
    """Metadata of the value of an expression (``name`` left empty)."""
    d = _describe(node)
    return d if d.name == "" else dataclasses.replace(d, name="")


def _plain(datatype: str, arraysize: str | None = None, unit: str | None = None,
           ucd: str | None = None, xtype: str | None = None,
           like: ColumnMeta | None = None) -> ColumnMeta:
    """Plain metadata; ``like``: the column whose frame (COOSYS/TIMESYS) it keeps."""
    return ColumnMeta("", datatype, arraysize=arraysize, unit=unit, ucd=ucd, xtype=xtype,
                      coosys=like.coosys if like is not None else None,
                      timesys=like.timesys if like is not None else None)


def _text() -> ColumnMeta:
    return _plain("char", "*")


def _numeric_join(*metas: ColumnMeta) -> str:
    best = "int"
    for m in metas:
        if m.datatype in _NUMERIC_RANK and _NUMERIC_RANK[m.datatype] > _NUMERIC_RANK[best]:
            best = m.datatype
    return best


#: Angle units in arcseconds, for exact conversions by a constant factor.
_ANGLE_ARCSEC = {"deg": 3600.0, "arcmin": 60.0, "arcsec": 1.0, "mas": 1e-3,
                 "uarcsec": 1e-6}
#: Time units in seconds (yr: the Julian year), for the same exact conversions.
_TIME_SECONDS = {"d": 86400.0, "h": 3600.0, "min": 60.0, "s": 1.0, "ms": 1e-3,
                 "yr": 31557600.0}


def _constant(node: exp.Expression) -> float | None:
    from taphouse.adql.geometry import constant  # geometry imports this module

    return constant(node)


def _sum_unit(x: exp.Expression, a: ColumnMeta, y: exp.Expression,
              b: ColumnMeta) -> str | None:
    """Unit of x + y (or x - y): the common unit; a constant term takes the other's."""
    if a.unit == b.unit:
        return a.unit
    if a.unit is None and _constant(x) is not None:
        return b.unit
    if b.unit is None and _constant(y) is not None:
        return a.unit
    return None


def converted_unit(unit: str | None, factor: float) -> str | None:
    """The unit of a value in ``unit`` multiplied by ``factor``: ``unit`` itself for 1,
    the angle or time unit the product is exactly expressed in (deg * 3600 -> arcsec,
    d * 86400 -> s), else None."""
    if unit is None:
        return None
    if factor == 1:
        return unit
    for family in (_ANGLE_ARCSEC, _TIME_SECONDS):
        scale = family.get(unit)
        if scale is None:
            continue
        for name, other in family.items():
            if math.isclose(scale / other, factor, rel_tol=1e-12):
                return name
    return None


def _scaled(node: exp.Mul | exp.Div, a: ColumnMeta, b: ColumnMeta, dt: str) -> ColumnMeta:
    """Metadata of a product or quotient: a unit conversion by a constant keeps the
    quantity (and its UCD); anything else has no known unit."""
    fa, fb = _constant(node.this), _constant(node.expression)
    value, factor = None, None
    if fb is not None and b.unit is None:
        value = a
        factor = fb if isinstance(node, exp.Mul) else (1.0 / fb if fb else None)
    elif isinstance(node, exp.Mul) and fa is not None and a.unit is None:
        value, factor = b, fa
    if value is None or factor is None:
        return _plain(dt)
    unit = converted_unit(value.unit, factor)
    if unit is None:
        return _plain(dt)
    return _plain(dt, unit=unit, ucd=value.ucd, like=value)


def _keep(m: ColumnMeta, *, ucd: bool = True, datatype: str | None = None) -> ColumnMeta:
    """The same quantity (unit, UCD and frame kept); ``ucd=False``: a derived one (unit
    only, e.g. -x, ABS(x))."""
    return _plain(datatype or m.datatype, m.arraysize, m.unit, m.ucd if ucd else None,
                  m.xtype, like=m if ucd else None)


def _describe(node: exp.Expression) -> ColumnMeta:  # noqa: C901 - one dispatch table
    if isinstance(node, exp.Column):
        col = source_column(node)
        if col is not None:
            return dataclasses.replace(col, name="", principal=False, indexed=False,
                                       std=False)
        return _plain("double")
    if isinstance(node, exp.Alias | exp.Paren):
        return _describe(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return _text()
        text = node.this
        if any(c in text for c in ".eE"):
            return _plain("double")
        return _plain("int" if abs(int(text)) < 2**31 else "long")
    if isinstance(node, exp.HexString):
        return _plain("long")
    if isinstance(node, exp.Boolean | exp.Predicate | exp.Not | exp.And | exp.Or
                  | exp.Exists):
        return _plain("boolean")
    if isinstance(node, exp.Null):
        return _plain("double")
    if isinstance(node, exp.Neg):
        inner = _describe(node.this)
        return _keep(inner, ucd=False)
    if isinstance(node, exp.Add | exp.Sub | exp.Mod):
        a, b = _describe(node.this), _describe(node.expression)
        if isinstance(node, exp.Mod):
            unit = a.unit if _constant(node.expression) is not None or a.unit == b.unit \
                else None
        else:
            unit = _sum_unit(node.this, a, node.expression, b)
        return _plain(_numeric_join(a, b), unit=unit)
    if isinstance(node, exp.Mul | exp.Div):
        a, b = _describe(node.this), _describe(node.expression)
        dt = "double" if isinstance(node, exp.Div) else _numeric_join(a, b)
        return _scaled(node, a, b, dt)
    if isinstance(node, exp.DPipe | exp.Lower | exp.Upper):
        return _text()
    if isinstance(node, exp.BitwiseAnd | exp.BitwiseOr | exp.BitwiseXor | exp.BitwiseNot):
        return _plain("long")
    if isinstance(node, exp.Count):
        return _plain("long")
    if isinstance(node, exp.Sum):
        a = _describe(node.this)
        return _plain("double" if _numeric_join(a) in ("float", "double") else "long",
                      unit=a.unit)
    if isinstance(node, exp.Avg):
        return _keep(_describe(node.this), datatype="double")
    if isinstance(node, exp.Min | exp.Max):
        return _keep(_describe(node.this))
    if isinstance(node, exp.Distinct):
        return _describe(node.expressions[0]) if node.expressions else _plain("double")
    if isinstance(node, exp.Round | exp.Trunc | exp.Ceil | exp.Floor):
        a = _describe(node.this)
        return _keep(a, datatype=a.datatype if a.datatype in _NUMERIC_RANK else "double")
    if isinstance(node, exp.Abs):
        return _keep(_describe(node.this), ucd=False)
    if isinstance(node, exp.Degrees):
        return _plain("double", unit="deg")
    if isinstance(node, exp.Radians):
        return _plain("double", unit="rad")
    if isinstance(node, exp.Cast):
        a = _describe(node.this)
        to = node.args["to"].this
        T = exp.DataType.Type
        number = {T.SMALLINT: "short", T.INT: "int", T.BIGINT: "long", T.FLOAT: "float",
                  T.DOUBLE: "double"}.get(to)
        if number is None:
            if to == T.TIMESTAMP:
                return _plain("char", "*", xtype="timestamp")
            return _text()
        return _plain(number, unit=a.unit, ucd=a.ucd, like=a)
    if isinstance(node, exp.Coalesce | exp.Nullif):
        parts = [_describe(node.this)] + [_describe(e) for e in node.expressions
                                          if isinstance(node, exp.Coalesce)]
        first = parts[0]
        if all(same_quantity(p, first) for p in parts):
            kept = _keep(first)
            kept.arraysize = joined_arraysize(parts)
            return kept
        return _plain(first.datatype, joined_arraysize(parts))
    if isinstance(node, exp.Case):
        results = [_describe(i.args["true"]) for i in node.args.get("ifs") or []]
        if node.args.get("default") is not None:
            results.append(_describe(node.args["default"]))
        results = [r for r in results if r.datatype != "double" or r.unit or True]
        if not results:
            return _plain("double")
        first = results[0]
        if all(r.datatype in _NUMERIC_RANK for r in results):
            dt = _numeric_join(*results)
        else:
            dt = first.datatype
        same = all(same_quantity(r, first) for r in results)
        return _plain(dt, joined_arraysize(results), first.unit if same else None,
                      first.ucd if same else None, first.xtype if same else None,
                      like=first if same else None)
    if isinstance(node, exp.Subquery):
        n = note(node.this) if node.this is not None else None
        cols = n.columns if n is not None else None
        if cols:
            return _keep(cols[0])
        return _plain("double")
    if isinstance(node, exp.Contains):
        return _plain("int")
    if isinstance(node, exp.Anonymous):
        return _describe_call(node)
    return _plain("double")


def same_quantity(a: ColumnMeta, b: ColumnMeta) -> bool:
    """Whether two values are the same quantity: unit, UCD and frame."""
    return (a.unit, a.ucd, a.coosys, a.timesys) == (b.unit, b.ucd, b.coosys, b.timesys)


def joined_arraysize(parts: list[ColumnMeta]) -> str | None:
    """The arraysize of one column made of several (UNION, COALESCE, CASE): the common
    one, else variable (``*``): a fixed text width of one part would cut the others'."""
    first = parts[0]
    if first.datatype not in ("char", "unicodeChar") or first.arraysize in (None, "*"):
        return first.arraysize
    return first.arraysize if all(p.arraysize == first.arraysize for p in parts) else "*"



def _frame_of(args: list[exp.Expression]) -> CoordSys | None:
    """The frame of a geometry made of these arguments: that of its coordinates when
    they share one, ICRS for constants, else unknown."""
    frames = set()
    for a in args:
        if isinstance(a, exp.Literal) and a.is_string:
            continue  # the ADQL 2.0 coordinate system argument
        m = _describe(a)
        if m.coosys is not None:
            frames.add(m.coosys)
        elif _constant(a) is None:
            return None
    if len(frames) > 1:
        return None
    return frames.pop() if frames else ICRS


def _propagated_frame(args: list[exp.Expression]) -> CoordSys | None:
    """The frame of an epoch propagation's result: its input's, at the target epoch."""
    source = _frame_of(args[:2]) or ICRS
    target = _constant(args[7]) if len(args) > 7 else None
    return dataclasses.replace(source, epoch=epoch_text(target) if target is not None
                               else None)


def _describe_call(node: exp.Anonymous) -> ColumnMeta:
    fn = function_of(node)
    args = node.expressions
    if fn is F.POINT:
        return geometry_meta("point", _frame_of(args))
    if fn is F.CENTROID:
        return geometry_meta("point", _describe(args[0]).coosys if args else ICRS)
    if fn is F.CIRCLE:
        centre = args[:-1] if args else []
        return geometry_meta("circle", _frame_of(centre))
    if fn is F.POLYGON or fn is F.BOX:
        return geometry_meta("polygon", _frame_of(args if fn is F.POLYGON else args[:-2]))
    if fn is F.DISTANCE:
        return _plain("double", unit="deg", ucd="pos.angDistance")
    if fn is F.AREA:
        return _plain("double", unit="deg**2", ucd="phys.angArea")
    if fn is F.CONTAINS or fn is F.INTERSECTS:
        return _plain("int")
    if fn is F.COORD1 or fn is F.COORD2:
        point = _describe(args[0]) if args else _plain("double")
        return ColumnMeta("", "double", unit="deg",
                          ucd="pos.eq.ra" if fn is F.COORD1 else "pos.eq.dec",
                          coosys=point.coosys)
    if fn is F.COORDSYS:
        return _text()
    if fn is F.IN_UNIT:
        a = _describe(args[0]) if args else _plain("double")
        unit = args[1].this if len(args) > 1 and isinstance(args[1], exp.Literal) else None
        if unit is not None:
            from taphouse.catalogue.units import check_unit

            unit = check_unit(unit).unit
        return _plain("double", unit=unit, ucd=a.ucd)
    if fn is F.LOG10:
        return _plain("double")
    udf = UDFS.get(fn) if fn is not None else None
    if udf is not None:
        meta = _plain(udf.datatype, udf.arraysize, udf.unit, udf.ucd, udf.xtype)
        if (udf.alias_of or udf.name) in (F.IVO_EPOCH_PROP_POS, F.EPOCH_PROP):
            meta.coosys = _propagated_frame(args)
        return meta
    return _plain("double")


def result_name(node: exp.Expression) -> str:
    """The ADQL name of an unaliased select item: the column name, else the function's."""
    if isinstance(node, exp.Column):
        col = source_column(node)  # an internal column may be stored under another name
        return col.name if col is not None and col.name else node.name
    if isinstance(node, exp.Paren):
        return result_name(node.this)
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower() if hasattr(node, "sql_name") else "expr"
    return "expr"
