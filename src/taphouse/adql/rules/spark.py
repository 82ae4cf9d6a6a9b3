"""Spark SQL: what the translated tree needs before sqlglot's ``spark`` dialect writes it
(approximate literals, CHAR without padding, TRUNCATE to n places, and partitions read as
a list of Parquet files)."""

from __future__ import annotations

from sqlglot import exp

from taphouse.adql.columns import describe
from taphouse.adql.rules import Rules, Tx
from taphouse.adql.rules.duckdb import _approximate_literal


def _double(e: exp.Expression) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build("DOUBLE"))


def _special(node: exp.Expression, tx: Tx) -> exp.Expression | None:
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.CHAR):
        # Spark refuses CHAR(n) outside a table schema: the same answers as DuckDB's
        # (which does not pad) with a string
        return exp.Cast(this=tx(node.this), to=exp.DataType.build("STRING"))
    if isinstance(node, exp.Trunc):
        # Spark's TRUNC is for dates; a number truncated to n places is
        # sign(x) * floor(|x| * 10^n) / 10^n, of the type the metadata says
        decimals = node.args.get("decimals")
        x = tx(node.this)
        scale: exp.Expression = exp.Pow(this=exp.Literal.number("10.0"),
                                        expression=tx(decimals) if decimals is not None
                                        else exp.Literal.number(0))
        value = exp.Div(this=exp.Mul(
            this=exp.Anonymous(this="signum", expressions=[_double(x.copy())]),
            expression=exp.Floor(this=exp.Mul(this=exp.Abs(this=_double(x)),
                                              expression=scale))),
            expression=scale.copy())
        if describe(node).datatype in ("short", "int", "long"):
            return exp.Cast(this=value, to=exp.DataType.build("BIGINT"))
        return value
    return None


def _log10(args: list[exp.Expression]) -> exp.Expression:
    return exp.Anonymous(this="LOG10", expressions=args)


def _read_files(files: list[str]) -> exp.Expression:
    """The files as one relation: a UNION ALL of one direct Parquet scan per file (Spark
    reads a path it is given, no other file, and infers no partition column from the
    ``Norder=K/Dir=D`` directories above a file)."""
    scans = [exp.select("*").from_(exp.Table(this=exp.to_identifier(f, quoted=True),
                                             db=exp.to_identifier("parquet")))
             for f in files]
    query: exp.Expression = scans[0]
    for scan in scans[1:]:
        query = exp.Union(this=query, expression=scan, distinct=False)
    return exp.Subquery(this=query)


RULES = Rules(dialect="spark",
              nodes={exp.Literal: _approximate_literal, exp.Cast: _special,
                     exp.Trunc: _special},
              functions={"log10": _log10}, read_files=_read_files,
              pair_join=True)
