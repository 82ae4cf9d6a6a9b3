"""DuckDB: what the translated tree needs before sqlglot's ``duckdb`` dialect writes it
(arithmetic without a value is an error: :mod:`taphouse.adql.rules.arithmetic`)."""

from __future__ import annotations

from sqlglot import exp

from taphouse.adql.rules import Rules, Tx
from taphouse.adql.rules.arithmetic import arithmetic_rules


def _concat_chain(node: exp.Expression, tx: Tx) -> exp.Expression | None:
    """``a || b || c ...`` as one ``concat`` (NULL when any part is NULL, as ``||``):
    DuckDB keeps every intermediate string of a chain of ``||`` for a whole vector of
    rows, so 100 parts of 100 characters took GBs; one call builds each row once."""
    parts: list[exp.Expression] = []

    def collect(e: exp.Expression) -> None:
        while isinstance(e, exp.Paren):
            e = e.this
        if isinstance(e, exp.DPipe):
            collect(e.this)
            collect(e.expression)
        else:
            parts.append(e)

    collect(node)
    if len(parts) <= 2:
        return None
    parts = [tx(p) for p in parts]
    any_null = exp.or_(*[exp.Is(this=p.copy(), expression=exp.Null()) for p in parts])
    return exp.Paren(this=exp.Case(ifs=[exp.If(this=any_null, true=exp.Null())],
                                   default=exp.Anonymous(this="concat", expressions=parts)))


def _approximate_literal(node: exp.Expression, tx: Tx) -> exp.Expression | None:
    if isinstance(node, exp.Literal) and not node.is_string and "." in node.this \
            and "e" not in node.this.lower():
        # DuckDB reads 1.5 as DECIMAL; ADQL values with a point are approximate numbers
        return exp.Literal.number(repr(float(node.this)) + "e0")
    return None


def _fail(message: str) -> exp.Expression:
    return exp.Anonymous(this="error", expressions=[exp.Literal.string(message)])


def _log10(args: list[exp.Expression]) -> exp.Expression:
    return exp.Log(this=exp.Literal.number(10), expression=args[0])


def _read_files(files: list[str]) -> exp.Expression:
    return exp.Table(this=exp.ReadParquet(expressions=[
        exp.Array(expressions=[exp.Literal.string(f) for f in files]),
        exp.EQ(this=exp.var("hive_partitioning"), expression=exp.false())]))


RULES = Rules(dialect="duckdb",
              nodes={exp.DPipe: _concat_chain, exp.Literal: _approximate_literal,
                     **arithmetic_rules(_fail)},
              functions={"log10": _log10}, read_files=_read_files)
