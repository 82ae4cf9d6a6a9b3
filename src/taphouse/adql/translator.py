"""ADQL text to backend SQL: parse, check, resolve, optimise spatial predicates,
translate functions, apply the row limit, generate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from taphouse.adql import geometry as geo
from taphouse.adql.columns import describe
from taphouse.adql.dialect import Adql
from taphouse.adql.errors import AdqlError
from taphouse.adql.functions import PREDICATES, AdqlFunction, F, function_of
from taphouse.adql.resolve import Resolver
from taphouse.adql.rules import Rules, Tx, rules_for
from taphouse.adql.safety import check_tree
from taphouse.adql.scope import Scope
from taphouse.adql.spatial import optimise_spatial
from taphouse.adql.udf import GAIA_SOURCE_ID_ORDER, INTERNAL, UDFS
from taphouse.catalogue.model import ColumnMeta, TableMeta

DIALECTS = ("duckdb", "postgres", "spark")  # each has its rules module in taphouse.adql.rules


@dataclass
class Translation:
    """The result of translating one ADQL query.

    Attributes
    ----------
    sql
        Backend SQL text.
    columns
        Metadata of each result column, in order, with unique names.
    tables
        The tables the query reads.
    limit
        The effective row limit (the smaller of TOP and MAXREC), or None. When MAXREC
        is the binding limit the SQL reads ``limit + 1`` rows, so that the caller can
        tell an overflow.
    """

    sql: str
    columns: list[ColumnMeta]
    tables: list[TableMeta]
    limit: int | None = None
    dialect: str = "duckdb"
    notes: list[str] = field(default_factory=list)


def parse(adql: str) -> exp.Expression:
    """Parse ADQL text into one sqlglot tree (no checks beyond syntax)."""
    try:
        trees = sqlglot.parse(adql, read=Adql)
    except ParseError as e:
        err = e.errors[0] if e.errors else {}
        desc = err.get("description") or str(e).split("\n")[0]
        highlight = err.get("highlight")
        msg = f"syntax error: {desc}" + (f" near {highlight!r}" if highlight else "")
        col = err.get("col")
        if col is not None and highlight:
            col = max(1, col - len(highlight) + 1)
        raise AdqlError(msg, err.get("line"), col) from None
    except TokenError as e:
        raise AdqlError(f"syntax error: {e}") from None
    found = [t for t in trees if isinstance(t, exp.Expression)]
    if not found:
        raise AdqlError("the query is empty")
    if len(found) > 1:
        raise AdqlError.at("only one query is accepted (remove the ';' and what follows)",
                           found[1])
    return found[0]


def translate(adql: str, scope: Scope, *, dialect: str = "duckdb",
              maxrec: int | None = None, spatial_index: bool = True,
              choose_dialect: Callable[[list[TableMeta]], str] | None = None
              ) -> Translation:
    """Translate an ADQL 2.1 query into backend SQL.

    Parameters
    ----------
    adql
        The query text.
    scope
        The tables this request may see (see :class:`taphouse.adql.scope.Scope`).
    dialect
        ``"duckdb"`` (embedded backend), ``"postgres"`` or ``"spark"``.
    maxrec
        The caller's row limit (TAP MAXREC), if any.
    spatial_index
        Use the HEALPix fast paths for cone searches and crossmatches (default). Off,
        the same predicates run as plain scans (for comparison and tests).
    choose_dialect
        Called with the query's tables once its names are resolved; the dialect it
        returns replaces ``dialect`` (the backend that serves those tables).

    Returns
    -------
    Translation

    Raises
    ------
    AdqlError
        Syntax errors, refused constructs, unknown or ambiguous names.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; use one of {DIALECTS}")
    try:
        return _translate(adql, scope, dialect, maxrec, spatial_index, choose_dialect)
    except RecursionError:
        # sqlglot parses and walks trees recursively: deep nesting exhausts the stack.
        raise AdqlError("the query is nested too deeply; use fewer nested parentheses,"
                        " expressions or subqueries") from None


def _translate(adql: str, scope: Scope, dialect: str, maxrec: int | None,
               spatial_index: bool,
               choose_dialect: Callable[[list[TableMeta]], str] | None = None
               ) -> Translation:
    tree = parse(adql)
    check_tree(tree, adql)
    tree = normalize_identifiers(tree, dialect=Adql)
    resolver = Resolver(scope)
    columns = resolver.query(tree, [], {})
    if choose_dialect is not None:
        dialect = choose_dialect(list(resolver.tables.values()))
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; use one of {DIALECTS}")
    notes = optimise_spatial(tree, scope, dialect) if spatial_index else []
    rules = rules_for(dialect)
    tree = _translate_node(tree, rules)
    rules.finish(tree)
    limit = _apply_limit(tree, maxrec)
    sql = Dialect.get_or_raise(dialect).generate(tree, copy=False)
    return Translation(sql, columns, list(resolver.tables.values()), limit, dialect, notes)


# --- row limit ------------------------------------------------------------------------
def _apply_limit(tree: exp.Expression, maxrec: int | None) -> int | None:
    target = tree.this if isinstance(tree, exp.Subquery) else tree
    top = None
    lim = target.args.get("limit")
    if lim is not None:
        value = geo.constant(lim.expression)
        if value is None or value < 0 or value != int(value):
            raise AdqlError.at("TOP needs a non-negative integer", lim)
        top = int(value)
    if maxrec is None:
        return top
    if maxrec < 0:
        raise AdqlError("MAXREC must not be negative")
    if top is not None and top <= maxrec:
        return top
    target.set("limit", exp.Limit(expression=exp.Literal.number(maxrec + 1)))
    return maxrec


# --- functions ------------------------------------------------------------------------
def _translate_node(node: exp.Expression, rules: Rules) -> exp.Expression:
    """Translate ADQL functions below (and including) ``node`` into backend SQL."""

    def tx(n: exp.Expression) -> exp.Expression:
        return _translate_node(n, rules)

    replaced = _translate_special(node, tx, rules)
    if replaced is not None:
        return replaced
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            new = tx(value)
            if new is not value:
                node.set(key, new)
        elif isinstance(value, list):
            changed = False
            items = []
            for v in value:
                if isinstance(v, exp.Expression):
                    nv = tx(v)
                    changed |= nv is not v
                    items.append(nv)
                else:
                    items.append(v)
            if changed:
                node.set(key, items)
    return node


def _predicate(node: exp.Expression) -> AdqlFunction | None:
    """CONTAINS or INTERSECTS when ``node`` calls one of them."""
    if isinstance(node, exp.Contains):
        return F.CONTAINS
    fn = function_of(node)
    return fn if fn in PREDICATES else None


def _geo_predicate(node: exp.Expression, fn: AdqlFunction, tx: Tx) -> exp.Expression:
    if isinstance(node, exp.Contains):
        args = [node.this, node.expression]
    else:
        args = list(node.expressions)
    if len(args) != 2:
        raise AdqlError.at(f"{fn.upper()} takes two geometries", node)
    a, b = geo.geometry(args[0], tx), geo.geometry(args[1], tx)
    return geo.contains(a, b, node) if fn is F.CONTAINS else geo.intersects(a, b, node)


def _is_number(node: exp.Expression, value: int) -> bool:
    return isinstance(node, exp.Literal) and not node.is_string and node.this == str(value)


def _translate_special(node: exp.Expression, tx: Tx, rules: Rules) -> exp.Expression | None:
    # CONTAINS(...) = 1 (and 1 = CONTAINS, = 0, <> 0...) become boolean tests
    if isinstance(node, exp.EQ | exp.NEQ):
        for pred, other in ((node.this, node.expression), (node.expression, node.this)):
            fn = _predicate(pred)
            if fn is not None and (_is_number(other, 1) or _is_number(other, 0)):
                test = _geo_predicate(pred, fn, tx)
                positive = _is_number(other, 1) == isinstance(node, exp.EQ)
                return p_bool(test) if positive else exp.Not(this=exp.Paren(this=test))
        return None
    fn = _predicate(node)
    if fn is not None:
        test = _geo_predicate(node, fn, tx)
        parent = node.parent
        if isinstance(parent, exp.Where | exp.And | exp.Or | exp.Not) or (
                isinstance(parent, exp.Join) and node.arg_key == "on"):
            return p_bool(test)
        return exp.Case(ifs=[exp.If(this=test, true=exp.Literal.number(1))],
                        default=exp.Literal.number(0))
    if isinstance(node, exp.Anonymous):
        return _translate_call(node, tx)
    # The backend's own transforms (taphouse.adql.rules.<backend>), by node type.
    replaced = rules.apply(node, tx)
    if replaced is not None:
        return replaced
    if isinstance(node, exp.Log) and node.args.get("expression") is None:
        return exp.Ln(this=tx(node.this))  # ADQL LOG is the natural logarithm
    if isinstance(node, exp.HexString):
        return exp.Literal.number(int(node.this, 16))
    if isinstance(node, exp.Rand) and node.this is not None:
        return exp.Rand()  # neither backend takes a seed in the call
    return None


def p_bool(test: exp.Expression) -> exp.Expression:
    return exp.Paren(this=test)


#: How the translator writes a call of an ADQL function: (call, its arguments, tx).
CallWriter = Callable[[exp.Anonymous, list[exp.Expression], Tx], exp.Expression]


def _translate_call(node: exp.Anonymous, tx: Tx) -> exp.Expression | None:
    fn = function_of(node)
    if fn is None:
        if node.name.lower() in INTERNAL or node.name.lower() == "least":
            return None  # written by the translator itself
        raise AdqlError.at(f"unknown function {node.name}", node)
    write = _CALLS.get(fn)
    if write is not None:
        return write(node, list(node.expressions), tx)
    return _service_call(fn, node, tx)


def _geometry_value(node: exp.Anonymous, args: list[exp.Expression], tx: Tx) -> exp.Expression:
    return geo.to_value(geo.geometry(node, tx))


def _distance(node: exp.Anonymous, args: list[exp.Expression], tx: Tx) -> exp.Expression:
    a: geo.Geometry
    b: geo.Geometry
    if len(args) == 2:
        a, b = geo.geometry(args[0], tx), geo.geometry(args[1], tx)
    elif len(args) == 4:
        a = geo.Point(tx(args[0]), tx(args[1]))
        b = geo.Point(tx(args[2]), tx(args[3]))
    else:
        raise AdqlError.at("DISTANCE takes two points or four coordinates", node)
    if not isinstance(a, geo.Point) or not isinstance(b, geo.Point):
        raise AdqlError.at("DISTANCE is defined between two points", node)
    return geo.distance(a, b)


def _coordinate(node: exp.Anonymous, args: list[exp.Expression], tx: Tx) -> exp.Expression:
    name = node.name.upper()
    if len(args) != 1:
        raise AdqlError.at(f"{name} takes one point", node)
    g = geo.geometry(args[0], tx)
    if not isinstance(g, geo.Point):
        raise AdqlError.at(f"{name} takes a point", node)
    return g.ra if function_of(node) is F.COORD1 else g.dec


def _coordsys(node: exp.Anonymous, args: list[exp.Expression], tx: Tx) -> exp.Expression:
    return exp.Literal.string("ICRS")


def _area(node: exp.Anonymous, args: list[exp.Expression], tx: Tx) -> exp.Expression:
    if len(args) != 1:
        raise AdqlError.at("AREA takes one geometry", node)
    return geo.area(geo.geometry(args[0], tx), node)


def _region(node: exp.Anonymous, args: list[exp.Expression], tx: Tx) -> exp.Expression:
    raise AdqlError.at("REGION (STC-S strings) is not supported: use POINT, CIRCLE or "
                       "POLYGON", node)


def _log10(node: exp.Anonymous, args: list[exp.Expression], tx: Tx) -> exp.Expression:
    if len(args) != 1:
        raise AdqlError.at("LOG10 takes one argument", node)
    return exp.Anonymous(this="log10", expressions=[tx(args[0])])  # see Rules.functions


_CALLS: dict[AdqlFunction, CallWriter] = {
    F.POINT: _geometry_value, F.CIRCLE: _geometry_value, F.POLYGON: _geometry_value,
    F.BOX: _geometry_value, F.CENTROID: _geometry_value, F.DISTANCE: _distance,
    F.COORD1: _coordinate, F.COORD2: _coordinate, F.COORDSYS: _coordsys, F.AREA: _area,
    F.REGION: _region, F.IN_UNIT: lambda node, args, tx: _in_unit(node, tx),
    F.LOG10: _log10,
}


def _service_call(fn: AdqlFunction, node: exp.Anonymous, tx: Tx) -> exp.Expression:
    """A call of one of the service's functions (taphouse.adql.udf)."""
    udf = UDFS.get(fn)
    if udf is None:
        raise AdqlError.at(f"unknown function {node.name}", node)
    args = list(node.expressions)
    if len(args) != udf.nargs:
        raise AdqlError.at(f"{udf.name} takes {udf.nargs} arguments: {udf.signature}", node)
    name = udf.alias_of or udf.name
    if name == F.GAIA_HEALPIX_INDEX:
        return _gaia_healpix_index(node, tx(args[0]), tx(args[1]))
    targs = [tx(a) for a in args]
    if name == F.IVO_NOCASEMATCH:
        return _flag(exp.ILike(this=geo.p(targs[0]), expression=geo.p(targs[1])))
    if name == F.IVO_INTERVAL_OVERLAPS:
        l1, h1, l2, h2 = (geo.p(a) for a in targs)
        return _flag(exp.And(this=exp.LTE(this=l1, expression=h2),
                             expression=exp.LTE(this=l2, expression=h1)))
    return exp.Anonymous(this=name, expressions=targs)


def _gaia_healpix_index(node: exp.Anonymous, norder: exp.Expression,
                        source_id: exp.Expression) -> exp.Expression:
    """The HEALPix cell in a Gaia source_id: bits 35 and up are the level-12 index, so
    the cell at order n is source_id >> (35 + 2 (12 - n))."""
    top = GAIA_SOURCE_ID_ORDER
    order = geo.constant(node.expressions[0])
    if order is not None and (order != int(order) or not 0 <= order <= top):
        raise AdqlError.at(f"gaia_healpix_index: norder must be an integer from 0 to {top} "
                           f"(a Gaia source_id holds its level-{top} HEALPix cell), not "
                           f"{order:g}", node)
    sid = exp.Cast(this=geo.p(source_id), to=exp.DataType.build("BIGINT"))
    if order is not None:
        shift: exp.Expression = exp.Literal.number(35 + 2 * (top - int(order)))
        valid: exp.Expression = exp.GTE(this=sid.copy(), expression=exp.Literal.number(0))
    else:
        n = geo.p(norder)
        shift = exp.Add(this=exp.Literal.number(35 + 2 * top), expression=exp.Mul(
            this=exp.Literal.number(-2), expression=n.copy()))
        valid = exp.And(this=exp.GTE(this=sid.copy(), expression=exp.Literal.number(0)),
                        expression=exp.Between(this=n.copy(), low=exp.Literal.number(0),
                                               high=exp.Literal.number(top)))
    value = exp.BitwiseRightShift(this=sid, expression=exp.Paren(this=shift))
    return exp.Case(ifs=[exp.If(this=valid, true=value)])


def _flag(test: exp.Expression) -> exp.Expression:
    return exp.Case(ifs=[exp.If(this=test, true=exp.Literal.number(1))],
                    default=exp.Literal.number(0))


def _in_unit(node: exp.Anonymous, tx: Tx) -> exp.Expression:
    args = node.expressions
    if len(args) != 2 or not (isinstance(args[1], exp.Literal) and args[1].is_string):
        raise AdqlError.at("IN_UNIT takes a value and a unit string, e.g. "
                           "IN_UNIT(parallax, 'arcsec')", node)
    source = describe(args[0]).unit
    target = args[1].this
    if not source:
        raise AdqlError.at(f"IN_UNIT: {args[0].sql()} has no known unit", node)
    from astropy import units as u

    from taphouse.catalogue.units import astropy_unit

    source_unit, target_unit = astropy_unit(source), astropy_unit(target)
    if target_unit is None:
        raise AdqlError.at(f"IN_UNIT: {target!r} is not a unit; write it in VOUnit, e.g. "
                           "'arcsec', 'mas/yr', 'km/s'", node)
    if source_unit is None:
        raise AdqlError.at(f"IN_UNIT: the unit {source!r} of {args[0].sql()} is not a "
                           "valid unit, so it cannot be converted", node)
    try:
        factor = source_unit.to(target_unit)
    except (ValueError, u.UnitsError) as e:
        raise AdqlError.at(f"IN_UNIT: cannot convert {source} to {target}: {e}", node) \
            from None
    value = tx(args[0])
    if factor == 1:
        return value
    return exp.Mul(this=geo.p(value), expression=geo.num(float(factor)))
