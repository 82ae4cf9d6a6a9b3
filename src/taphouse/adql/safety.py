"""Tree-level safety: only a query, only allowed node types and functions.

Checked on the parsed ADQL tree before anything is resolved or generated, so a
refused construct never reaches a backend. The check is an allow-list: a node type
that is not listed here (DDL, DML, PRAGMA, SET, COPY, table functions, lambdas,
struct or array syntax, window functions, ...) is refused with a message that names it.
"""

from __future__ import annotations

import re

from sqlglot import exp

from taphouse.adql.errors import AdqlError
from taphouse.adql.functions import function_of
from taphouse.adql.udf import UDFS

_QUERY_ROOTS = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)

_ALLOWED = (
    # query structure
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.With, exp.CTE,
    exp.TableAlias, exp.From, exp.Join, exp.Where, exp.Group, exp.Having, exp.Order,
    exp.Ordered, exp.Limit, exp.Offset, exp.Table, exp.Column, exp.Identifier, exp.Star,
    exp.Alias, exp.Distinct,
    # values and operators
    exp.Literal, exp.Null, exp.Boolean, exp.HexString, exp.Paren, exp.Neg, exp.Not,
    exp.And, exp.Or, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is, exp.Like,
    exp.ILike, exp.Between, exp.In, exp.Exists, exp.Add, exp.Sub, exp.Mul, exp.Div,
    exp.Mod, exp.DPipe, exp.Case, exp.If, exp.Cast, exp.DataType, exp.DataTypeParam,
    exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseNot, exp.Tuple,
    # functions of ADQL 2.1 section 2.3 and 2.4
    exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Abs, exp.Ceil, exp.Floor, exp.Exp,
    exp.Ln, exp.Log, exp.Pow, exp.Sqrt, exp.Round, exp.Trunc, exp.Rand, exp.Pi,
    exp.Degrees, exp.Radians, exp.Sin, exp.Cos, exp.Tan, exp.Cot, exp.Asin, exp.Acos,
    exp.Atan, exp.Atan2, exp.Lower, exp.Upper, exp.Coalesce, exp.Nullif, exp.Contains,
    exp.Anonymous,
)

#: ADQL CAST target types (section 2.10 of ADQL 2.1).
_CAST_TYPES = frozenset({
    exp.DataType.Type.SMALLINT, exp.DataType.Type.INT, exp.DataType.Type.BIGINT,
    exp.DataType.Type.FLOAT, exp.DataType.Type.DOUBLE, exp.DataType.Type.CHAR,
    exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT, exp.DataType.Type.TIMESTAMP,
    exp.DataType.Type.NCHAR, exp.DataType.Type.NVARCHAR,
})

_REFUSED_STATEMENT = {
    "Insert": "INSERT", "Update": "UPDATE", "Delete": "DELETE", "Merge": "MERGE",
    "Create": "CREATE", "Drop": "DROP", "Alter": "ALTER", "Pragma": "PRAGMA", "Set": "SET",
    "Copy": "COPY", "Attach": "ATTACH", "Detach": "DETACH", "Install": "INSTALL",
    "Load": "LOAD", "Use": "USE", "Describe": "DESCRIBE", "Command": "a backend command",
    "Grant": "GRANT", "Revoke": "REVOKE", "Transaction": "a transaction",
    "Commit": "COMMIT", "Rollback": "ROLLBACK", "TruncateTable": "TRUNCATE TABLE",
    "Show": "SHOW", "Summarize": "SUMMARIZE", "Analyze": "ANALYZE", "Cache": "CACHE",
    "Kill": "KILL", "Export": "EXPORT",
}


def check_statement(tree: exp.Expression) -> None:
    """Refuse anything that is not a single ADQL query."""
    if not isinstance(tree, _QUERY_ROOTS):
        what = _REFUSED_STATEMENT.get(type(tree).__name__)
        if what is None:
            text = tree.sql()[:30]
            what = f"'{text}'" if text else type(tree).__name__
        raise AdqlError.at(f"only queries (SELECT ...) are accepted, not {what}", tree)


#: Most table references a query may read once every WITH query is expanded where it
#: is used. Each reference to a WITH query counts its own size, so a chain of WITH
#: queries that each join the previous one twice grows as 2^n; the backend inlines
#: them and plans for minutes, beyond the time limit and the memory limit.
MAX_EXPANDED_TABLES = 256


def check_tree(tree: exp.Expression, text: str | None = None) -> None:
    """Refuse node types and functions that are not part of the accepted language.

    ``text`` is the query as written: errors then name a refused function as the user
    spelt it (sqlglot reads ``CHAR_LENGTH`` as its ``LENGTH`` node).
    """
    check_statement(tree)
    if _expanded_tables(tree, {}) > MAX_EXPANDED_TABLES:
        raise AdqlError(f"the query reads more than {MAX_EXPANDED_TABLES} tables once its"
                        " WITH queries are expanded; simplify it or store intermediate"
                        " results (DEST=mydb.<table>) and query those")
    for node in tree.walk():
        if type(node) not in _ALLOWED_TYPES:
            raise AdqlError.at(_describe_refused(node, text), node)
        if isinstance(node, exp.Anonymous):
            if function_of(node) is None:
                raise AdqlError.at(
                    f"unknown or forbidden function {node.name}: use an ADQL function or "
                    f"one of the service's functions ({', '.join(sorted(UDFS))})", node)
        elif isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier):
                raise AdqlError.at(
                    "table functions are not allowed in FROM: name a table of the service",
                    node)
            if node.this.quoted and ("." in node.name or "/" in node.name):
                # DuckDB reads FROM 'file.csv'; a table name never looks like a path.
                raise AdqlError.at(f"unknown table {node.name!r}: file access is not "
                                   "allowed", node)
        elif isinstance(node, exp.Cast):
            to = node.args.get("to")
            if to is None or to.this not in _CAST_TYPES:
                raise AdqlError.at(
                    f"CAST to {to.sql() if to is not None else '?'} is not allowed: use "
                    "SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION, CHAR, VARCHAR or "
                    "TIMESTAMP", node)
        elif isinstance(node, exp.Join):
            if node.args.get("method") not in (None, "", "NATURAL") or node.args.get("side") not in (None, "", "LEFT",
                                                                         "RIGHT", "FULL") \
                    or node.args.get("kind") not in (None, "", "INNER", "OUTER", "CROSS"):
                raise AdqlError.at(
                    f"join type {node.sql().split(' JOIN ')[0]} JOIN is not ADQL", node)
            _check_join_condition(node)
        elif isinstance(node, exp.Star):
            if any(v for v in node.args.values()):
                raise AdqlError.at("SELECT * EXCLUDE/EXCEPT/REPLACE is not part of ADQL", node)
        elif isinstance(node, exp.SetOperation):
            if node.args.get("by_name") or node.args.get("side") or node.args.get("on"):
                raise AdqlError.at("UNION BY NAME and similar forms are not part of ADQL",
                                   node)
        elif isinstance(node, exp.Select):
            for key in ("laterals", "qualify", "windows", "kind", "into", "sample",
                        "settings", "prewhere", "connect", "match", "pivots", "locks",
                        "exclude", "operation_modifiers", "hint"):
                if node.args.get(key):
                    raise AdqlError.at(f"{key.upper()} is not part of ADQL", node)


def _expanded_tables(node: exp.Expression, ctes: dict[str, int]) -> int:
    """Table references of ``node`` with every WITH query counted at its expanded size
    (names compared case-insensitively: a shadowed name can only over-count)."""
    with_ = node.args.get("with_")
    if isinstance(with_, exp.With):
        ctes = dict(ctes)
        for cte in with_.expressions:
            ctes[cte.alias.lower()] = _expanded_tables(cte.this, ctes)
    total = 0
    for child in node.iter_expressions():
        if child is with_:
            continue
        if isinstance(child, exp.Table):
            total += 1 if child.db else ctes.get(child.name.lower(), 1)
        else:
            total += _expanded_tables(child, ctes)
        if total > MAX_EXPANDED_TABLES:
            break
    return total


def _check_join_condition(node: exp.Join) -> None:
    """A qualified join needs ON or USING; CROSS and NATURAL joins must not have one.

    A comma in FROM parses as a Join with none of method, side, kind or pivots; every
    keyword join carries a ``pivots`` entry (sqlglot's parser), which tells the two apart.
    """
    has_condition = node.args.get("on") is not None or bool(node.args.get("using"))
    cross = node.args.get("kind") == "CROSS"
    natural = node.args.get("method") == "NATURAL"
    comma = "pivots" not in node.args and not any(
        node.args.get(k) for k in ("method", "side", "kind"))
    target = node.this.sql(dialect="duckdb")[:40] if node.this is not None else "a table"
    if (cross or natural) and has_condition:
        what = "CROSS JOIN" if cross else "NATURAL JOIN"
        raise AdqlError.at_start(f"{what} {target} cannot have an ON or USING condition: write "
                           f"JOIN {target} ON ... instead", node)
    if not (cross or natural or comma or has_condition):
        side = node.args.get("side")
        kind = " ".join(x for x in (side, node.args.get("kind")) if x)
        raise AdqlError.at_start(
            f"{kind + ' ' if kind else ''}JOIN {target} has no join condition: add "
            f"ON <condition> or USING (<columns>), or write CROSS JOIN {target} if every "
            "pair of rows is meant", node)


#: The allowed node types, exactly: a subclass of one carries another meaning (sqlglot's
#: Sort and Distribute are Orders: Hive's SORT BY and DISTRIBUTE BY, whose expressions the
#: resolver never visits, so a subquery there reached Spark with any table or file name
#: in it; TryCast is a Cast).
_ALLOWED_TYPES: frozenset[type] = frozenset(_ALLOWED)


#: Refused constructs that deserve their own explanation, by sqlglot node type.
_REFUSED_CONSTRUCTS: dict[type, str] = {
    exp.Escape: "LIKE ... ESCAPE is not part of ADQL: in ADQL '%' and '_' are always "
                "wildcards; remove the ESCAPE clause (the wildcard then also matches a "
                "literal '%' or '_') and narrow the result with another condition if needed",
    exp.Window: "window functions (OVER) are not part of ADQL",
    exp.Bracket: "array subscripts [...] are not part of ADQL",
    exp.Lambda: "lambda expressions are not part of ADQL",
}


def _describe_refused(node: exp.Expr, text: str | None = None) -> str:
    name = type(node).__name__
    if name in _REFUSED_STATEMENT:
        return f"only queries are accepted, not {_REFUSED_STATEMENT[name]}"
    for kind, message in _REFUSED_CONSTRUCTS.items():
        if isinstance(node, kind):
            return message
    if isinstance(node, exp.Func):
        fname = _spelling(node, text) or (
            node.sql_name() if hasattr(node, "sql_name") else name)
        return (f"unknown or forbidden function {fname}: it is not an ADQL 2.1 function; "
                f"use an ADQL function or one of the service's functions "
                f"({', '.join(sorted(UDFS))})")
    return (f"'{node.sql()[:40]}' is not part of ADQL; rewrite it with ADQL 2.1 "
            "constructs")


def _spelling(node: exp.Func, text: str | None) -> str | None:
    """The function name as written in the query, if the node's position finds it."""
    from taphouse.adql.errors import position

    line, col = position(node)
    if text is None or line is None or col is None:
        return None
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    match = re.match(r"[A-Za-z_][A-Za-z0-9_]*(?=\s*\()", lines[line - 1][col - 1:])
    if match is None:
        return None
    names = {n.upper() for n in getattr(type(node), "_sql_names", [])} | {
        type(node).__name__.upper()}
    return match.group(0) if match.group(0).upper() in names else None
