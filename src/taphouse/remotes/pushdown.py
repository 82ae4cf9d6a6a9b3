"""Pushing a whole query down to the one remote service all its tables are on.

:func:`plan_remote` takes a parsed ADQL tree whose tables are all named
``REMOTE.schema.table``, checks them against the remote's cached metadata and the
language features it advertises, and rewrites the tree into the remote's own names. The
remote ADQL is generated from the rewritten tree, never copied from the user's text:
WHERE terms (CONTAINS/DISTANCE included), the columns selected, ORDER BY, TOP, GROUP BY
and aggregates all travel, so the remote sends only the rows the answer needs.
:func:`run_remote` runs the plan as an async job on the remote.

A query that mixes a remote's tables with local ones, or names two remotes, is refused
here with a clear message (joins across sources are the [federation] issue's).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from taphouse.adql.errors import AdqlError
from taphouse.adql.reserved import adql_identifier
from taphouse.auth.identity import Identity
from taphouse.remotes.answers import RemoteAnswer, suspect_cut
from taphouse.remotes.model import Capabilities, Remote, RemoteTable
from taphouse.remotes.registry import RemoteRegistry

#: ADQL geometry functions: each must be among the remote's advertised ADQL features.
GEOMETRY_FUNCTIONS = ("POINT", "CIRCLE", "BOX", "POLYGON", "REGION", "CONTAINS",
                      "INTERSECTS", "AREA", "CENTROID", "COORD1", "COORD2", "COORDSYS",
                      "DISTANCE")
#: Optional ADQL 2.1 functions called by name (TAPRegExt forms without a signature).
OPTIONAL_FUNCTIONS = ("IN_UNIT",)
#: Optional ADQL 2.1 features the parser reads as typed nodes: node -> advertised form.
OPTIONAL_NODES: tuple[tuple[type[exp.Expression], str], ...] = (
    (exp.Lower, "LOWER"), (exp.Upper, "UPPER"), (exp.ILike, "ILIKE"), (exp.Cast, "CAST"))
#: ADQL's names of CAST types where sqlglot's base SQL writes others (DOUBLE, INT, FLOAT).
_CAST_NAMES = {exp.DataType.Type.DOUBLE: "DOUBLE PRECISION",
               exp.DataType.Type.INT: "INTEGER", exp.DataType.Type.FLOAT: "REAL"}


@dataclass
class RemotePlan:
    """What runs on a remote for one query.

    ``adql`` is the exact text sent; ``maxrec`` the MAXREC sent with it; ``tables`` the
    remote tables it reads (as cached). ``capped``: ``maxrec`` is the remote's hard
    limit (no TOP below it): an answer of that many rows may have been cut.
    """

    remote: Remote
    adql: str
    maxrec: int | None
    tables: list[RemoteTable] = field(default_factory=list)
    capped: bool = False

    def explain(self) -> dict[str, object]:
        """What runs where, for EXPLAIN."""
        return {"runs_on": f"remote {self.remote.name} ({self.remote.url})",
                "remote_adql": self.adql, "maxrec": self.maxrec,
                "tables": [t.adql_name(self.remote.name) for t in self.tables]}


def catalog_names(tree: exp.Expression) -> set[str]:
    """The first parts of the three-part table names in a query (lower-case)."""
    return {t.catalog.lower() for t in tree.find_all(exp.Table) if t.catalog}


def plan_remote(tree: exp.Expression, identity: Identity, registry: RemoteRegistry, *,
                maxrec: int | None = None) -> RemotePlan:
    """The plan that runs ``tree`` (a parsed, checked ADQL query) on one remote.

    Raises :class:`AdqlError` naming the problem: an unknown remote or table, local and
    remote tables mixed, two remotes, or a language feature the remote does not
    advertise.
    """
    tree = tree.copy()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    remotes = catalog_names(tree)
    if not remotes:
        raise AdqlError("the query names no remote table (REMOTE.schema.table)")
    for name in sorted(remotes):
        if registry.find(identity, name) is None:
            raise AdqlError(f"{name!r} is not a remote service you can query (remote tables"
                            " are named REMOTE.schema.table; GET /api/remotes lists the"
                            " remotes available to you)")
    if len(remotes) > 1:
        raise AdqlError(f"the query reads from several remote services ({', '.join(sorted(remotes))}):"
                        " one query may use one remote (joins across services are not"
                        " available yet)")
    remote = registry.find(identity, next(iter(remotes)))
    assert remote is not None
    tables: dict[tuple[str, str], RemoteTable] = {}
    for node in list(tree.find_all(exp.Table)):
        if not node.catalog:
            if not node.db and node.name.lower() in ctes:
                continue
            where = f"{node.db}.{node.name}" if node.db else node.name
            raise AdqlError.at(
                f"the query mixes remote {remote.name!r} with the local table {where}: a"
                " query may read from one remote only, or from local tables only (joins"
                " across sources are not available yet; store the remote rows in your"
                " user space first, then join)", node)
        if not node.db:
            raise AdqlError.at(f"{node.catalog}.{node.name}: name remote tables as"
                               " REMOTE.schema.table", node)
        table = _lookup(registry, remote, node)
        tables[(table.schema, table.name)] = table
        node.set("catalog", None)
        node.set("db", _identifier(table.schema))
        node.set("this", _identifier(table.name))
    for col in tree.find_all(exp.Column):
        if col.args.get("catalog") is not None:
            # REMOTE.schema.table.column: the column of the table as the remote names it.
            key = [t for t in tables.values()
                   if t.schema.lower() == col.db.lower() and t.name.lower() == col.table.lower()]
            col.set("catalog", None)
            if key:
                col.set("db", _identifier(key[0].schema))
                col.set("table", _identifier(key[0].name))
    _check_features(tree, remote)
    limit = _top(tree)
    sent = maxrec
    if limit is not None:
        sent = limit if sent is None else min(sent, limit)
    hard = remote.capabilities.maxrec_hard
    if sent is not None and hard is not None:
        sent = min(sent, hard)
    capped = hard is not None and sent == hard and (limit is None or limit > hard)
    return RemotePlan(remote=remote, adql=to_adql(tree), maxrec=sent,
                      tables=list(tables.values()), capped=capped)


#: Results of at most this many rows (TOP, MAXREC) are asked for with one sync request:
#: a UWS job costs four more round trips (create, wait, result, delete).
SYNC_MAX_ROWS = 10_000


def run_remote(plan: RemotePlan, registry: RemoteRegistry, *, mode: str = "auto",
               cancelled: Callable[[], bool] | None = None,
               max_bytes: int | None = None) -> RemoteAnswer:
    """Run a plan on its remote, asking for its preferred format; the answer keeps the
    remote's OVERFLOW status. ``mode``: ``async`` (a UWS job), ``sync`` (one request,
    within the remote's request timeout), ``auto`` (sync when at most
    :data:`SYNC_MAX_ROWS` rows can come back, else async)."""
    client = registry.client(plan.remote)
    fmt = plan.remote.capabilities.preferred_format()
    if mode == "auto":
        small = plan.maxrec is not None and plan.maxrec <= SYNC_MAX_ROWS
        mode = "sync" if small else "async"
    if mode == "sync":
        answer = client.query_sync(plan.adql, maxrec=plan.maxrec, fmt=fmt,
                                   max_bytes=max_bytes)
    else:
        answer = client.query_async(plan.adql, maxrec=plan.maxrec, fmt=fmt,
                                    cancelled=cancelled, max_bytes=max_bytes)
    return suspect_cut(answer, plan.maxrec) if plan.capped else answer


def _identifier(name: str) -> exp.Identifier:
    text = adql_identifier(name)
    return exp.to_identifier(name, quoted=text.startswith('"'))


def _lookup(registry: RemoteRegistry, remote: Remote, node: exp.Table) -> RemoteTable:
    schema, name = node.db, node.name
    table = registry.table(remote, schema, name)
    quoted = any(isinstance(p, exp.Identifier) and p.quoted
                 for p in (node.args.get("db"), node.args.get("this")))
    if table is not None and quoted and (table.schema, table.name) != (schema, name):
        table = None  # a delimited identifier matches exactly
    if table is None:
        known = [f"{remote.name}.{t.schema}.{t.name}" for t in registry.tables(remote)]
        close = [k for k in known if name.lower() in k.lower()][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise AdqlError.at(f"remote {remote.name!r} has no table {schema}.{name}{hint}", node)
    return table


def _check_features(tree: exp.Expression, remote: Remote) -> None:
    caps: Capabilities = remote.capabilities
    for call in tree.find_all(exp.Anonymous):
        name = str(call.this).upper()
        if name in GEOMETRY_FUNCTIONS or name in OPTIONAL_FUNCTIONS:
            if not caps.has_feature(name):
                raise AdqlError.at(f"remote {remote.name!r} does not advertise the ADQL"
                                   f" function {name}: the query cannot run there", call)
        elif not caps.has_feature(name + "("):
            raise AdqlError.at(f"remote {remote.name!r} does not advertise the function"
                               f" {name.lower()}: the query cannot run there", call)
    for node_type, form in OPTIONAL_NODES:
        node = tree.find(node_type)
        if node is not None and not caps.has_feature(form):
            raise AdqlError.at(f"remote {remote.name!r} does not advertise {form}: the query"
                               " cannot run there", node)
    needs = [(exp.With, "WITH"), (exp.Union, "UNION"), (exp.Except, "EXCEPT"),
             (exp.Intersect, "INTERSECT")]
    for kind, form in needs:
        if tree.find(kind) is not None and not caps.has_feature(form):
            raise AdqlError(f"remote {remote.name!r} does not advertise {form}: the query"
                            " cannot run there")
    if any(s.args.get("offset") is not None for s in tree.find_all(exp.Select)) and not (
            caps.has_feature("OFFSET")):
        raise AdqlError(f"remote {remote.name!r} does not advertise OFFSET: the query"
                        " cannot run there")


def _top(tree: exp.Expression) -> int | None:
    limit = tree.args.get("limit") if isinstance(tree, exp.Select) else None
    if limit is None:
        return None
    value = limit.expression
    if isinstance(value, exp.Literal) and not value.is_string:
        try:
            return int(value.this)
        except ValueError:
            return None
    return None


def _adql_form(node: exp.Expression) -> exp.Expression:
    """A node sqlglot's base SQL would write in a form ADQL does not have, as ADQL
    writes it: ``a % b`` -> ``MOD(a, b)``, ``LOG(10, x)`` -> ``LOG10(x)``, ``LN(x)`` ->
    ``LOG(x)`` (natural in ADQL), ``TRUNC`` -> ``TRUNCATE``, ``CEIL`` -> ``CEILING``, and
    the CAST types ``DOUBLE PRECISION``, ``INTEGER``, ``REAL``."""
    def call(name: str, *args: exp.Expression | None) -> exp.Anonymous:
        return exp.Anonymous(this=name, expressions=[a for a in args if a is not None])

    if isinstance(node, exp.Mod):
        return call("MOD", node.this, node.expression)
    if isinstance(node, exp.Log) and node.args.get("expression") is not None:
        base = node.this
        if isinstance(base, exp.Literal) and not base.is_string and base.this == "10":
            return call("LOG10", node.expression)
        return exp.Div(this=call("LOG", node.expression), expression=call("LOG", base))
    if isinstance(node, exp.Ln):
        return call("LOG", node.this)
    if isinstance(node, exp.Trunc):
        return call("TRUNCATE", node.this, node.args.get("decimals"))
    if isinstance(node, exp.Ceil):
        return call("CEILING", node.this)
    if isinstance(node, exp.DataType) and node.this in _CAST_NAMES:
        return exp.DataType(this=exp.DataType.Type.USERDEFINED, kind=_CAST_NAMES[node.this])
    return node


def to_adql(tree: exp.Expression) -> str:
    """ADQL text of a tree: sqlglot's generic SQL, with each LIMIT written as ADQL's
    ``SELECT [DISTINCT] TOP n`` and the forms of :func:`_adql_form` in ADQL's words."""
    tree = tree.copy().transform(_adql_form)
    mark = "taphouse_top_" + secrets.token_hex(6)
    for select in tree.find_all(exp.Select):
        limit = select.args.get("limit")
        if limit is None:
            continue
        value = limit.expression
        if not (isinstance(value, exp.Literal) and not value.is_string):
            raise AdqlError.at("TOP needs a whole number", limit)
        select.set("limit", None)
        select.set("hint", exp.Hint(expressions=[exp.var(f"{mark}_{int(value.this)}")]))
    text = tree.sql(comments=False)  # the user's comments are not forwarded
    pattern = re.compile(r"/\*\+ " + mark + r"_(\d+) \*/ (DISTINCT )?")
    return pattern.sub(lambda m: f"{m.group(2) or ''}TOP {m.group(1)} ", text)


__all__ = ["RemotePlan", "plan_remote", "run_remote", "to_adql", "catalog_names",
           "GEOMETRY_FUNCTIONS"]
