"""PostgreSQL: what the translated tree needs before sqlglot's ``postgres`` dialect
writes it (NUMERIC where ADQL means DOUBLE, CHAR padding, array subscripts)."""

from __future__ import annotations

from sqlglot import exp

from taphouse.adql.columns import describe
from taphouse.adql.rules import Rules, Tx

_PG_TYPES = {"short": "SMALLINT", "int": "INT", "long": "BIGINT", "float": "REAL",
             "double": "DOUBLE"}


def _pg_cast(e: exp.Expression, datatype: str) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build(_PG_TYPES.get(datatype, "DOUBLE")))


def _double(e: exp.Expression) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build("DOUBLE"))


def _numeric(e: exp.Expression) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build("DECIMAL"))


def _final(tree: exp.Expression) -> None:
    """Last PostgreSQL touches on the translated tree (literals written by the
    translator included)."""
    for node in list(tree.find_all(exp.Literal, exp.Bracket)):
        if isinstance(node, exp.Literal):
            if not node.is_string and any(c in node.this for c in ".eE") and not (
                    isinstance(node.parent, exp.Cast) and node.parent.to.is_type(
                        exp.DataType.Type.DOUBLE)):
                # PostgreSQL reads 1.5 and 1e2 as NUMERIC; ADQL values with a point or
                # an exponent are approximate numbers
                node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE")))
        elif not isinstance(node.this, exp.Column | exp.Paren):
            # f(x)[1] is a syntax error there: (f(x))[1]
            node.set("this", exp.Paren(this=node.this))


def _special(node: exp.Expression, tx: Tx) -> exp.Expression | None:
    """PostgreSQL differences: functions that exist only for NUMERIC there (ROUND and
    TRUNC to n places, MOD of approximate values, LOG(b, x)) or return NUMERIC where
    ADQL's result is DOUBLE or BIGINT (AVG, SUM), and CHAR padding."""
    if isinstance(node, exp.Round | exp.Trunc):
        # NUMERIC rounds halves away from zero (ROUND(12.5) = 13), DOUBLE to even; the
        # result is cast back to the type the result metadata says
        datatype = describe(node).datatype
        decimals = node.args.get("decimals")
        rounded = node.__class__(this=_numeric(tx(node.this)),
                                 decimals=tx(decimals) if decimals is not None else None)
        return _pg_cast(rounded, datatype)
    if isinstance(node, exp.Avg | exp.Sum):
        # AVG of integers and SUM of BIGINT are NUMERIC there
        datatype = describe(node).datatype
        total = node.__class__(this=tx(node.this))
        return _pg_cast(total, datatype)
    if isinstance(node, exp.Log) and node.args.get("expression") is not None:
        # LOG(b, x) is NUMERIC-only there
        return exp.Div(this=exp.Ln(this=_double(tx(node.expression))),
                       expression=exp.Ln(this=_double(tx(node.this))))
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.CHAR):
        # CHAR(n) pads with blanks on PostgreSQL (not on DuckDB): same answers with VARCHAR
        return exp.Cast(this=tx(node.this), to=exp.DataType(
            this=exp.DataType.Type.VARCHAR, expressions=node.to.expressions))
    if isinstance(node, exp.Mod):
        datatype = describe(node).datatype
        if datatype in ("float", "double"):
            new = exp.Mod(this=_numeric(tx(node.this)), expression=_numeric(tx(node.expression)))
            return _pg_cast(new, datatype)
    return None


def _log10(args: list[exp.Expression]) -> exp.Expression:
    # LOG10 of an integer would be NUMERIC
    return exp.Anonymous(this="LOG10", expressions=[_double(args[0])])


RULES = Rules(dialect="postgres",
              nodes={t: _special for t in (exp.Round, exp.Trunc, exp.Avg, exp.Sum, exp.Log,
                                           exp.Cast, exp.Mod)},
              functions={"log10": _log10}, final=_final)
