"""Spark SQL: what the translated tree needs before sqlglot's ``spark`` dialect writes it
(approximate literals, CHAR without padding, TRUNCATE to n places, arithmetic without a
value as an error (:mod:`taphouse.adql.rules.arithmetic`), and partitions read as a list
of Parquet files)."""

from __future__ import annotations

import os
import re

from sqlglot import exp

from taphouse.adql.columns import describe
from taphouse.adql.rules import Rules, Tx
from taphouse.adql.rules.arithmetic import arithmetic_rules
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


def _fail(message: str) -> exp.Expression:
    return exp.Anonymous(this="raise_error", expressions=[exp.Literal.string(message)])


def _log10(args: list[exp.Expression]) -> exp.Expression:
    return exp.Anonymous(this="LOG10", expressions=args)


#: Characters of a path that a one-scan glob and ``_metadata.file_path`` leave as they
#: are (anything else: one scan per file, as before).
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9/._=+-]*$")


def _plain(files: list[str]) -> bool:
    return all(_PLAIN_PATH.match(f) for f in files)


def _scan(path: str) -> exp.Select:
    return exp.select("*").from_(exp.Table(this=exp.to_identifier(path, quoted=True),
                                           db=exp.to_identifier("parquet")))


def _read_files(files: list[str]) -> exp.Expression:
    """The files as one relation: one Parquet scan of all of them, named as a glob
    ``root/{a,b,...}`` (Spark reads the paths it is given, no other file, and infers no
    partition column from the ``Norder=K/Dir=D`` directories above them). Planning a
    UNION ALL of one scan per file cost ~0.3 s a file. Paths with glob or escaped
    characters: that UNION."""
    if len(files) == 1 or not _plain(files):
        query: exp.Expression = _scan(files[0])
        for f in files[1:]:
            query = exp.Union(this=query, expression=_scan(f), distinct=False)
        return exp.Subquery(this=query)
    root = os.path.commonpath(files)
    if root == "/" or root in files:
        root = os.path.dirname(root)
    names = ",".join(os.path.relpath(f, root) for f in files)
    return exp.Subquery(this=_scan(f"{root}/{{{names}}}"))


def _file_tag(tags: list[tuple[int, str]]) -> exp.Expression | None:
    """The tag of the file a row was read from (``_metadata.file_path``, a ``file:``
    URL), for rows of :func:`_read_files` of those files; None (tag by separate
    scans) for paths a URL would escape."""
    if not _plain([f for _, f in tags]):
        return None
    path = exp.column("file_path", table="_metadata")
    return exp.Case(ifs=[exp.If(this=exp.EQ(this=path.copy(),
                                            expression=exp.Literal.string(f"file:{f}")),
                                true=exp.Literal.number(tag)) for tag, f in tags])


RULES = Rules(dialect="spark",
              nodes={exp.Literal: _approximate_literal, exp.Cast: _special,
                     exp.Trunc: _special, **arithmetic_rules(_fail)},
              functions={"log10": _log10}, read_files=_read_files,
              file_tag=_file_tag, pair_join=True)
