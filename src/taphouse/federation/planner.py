"""Planning a query that joins local tables (catalogues, user tables, uploads) with one
remote service's table.

:func:`plan_federated` works on the sqlglot tree: it qualifies every column with its
table's alias, splits the WHERE and ON terms by the tables they touch, and prepares the
two ways of running the join:

- **upload** — the local table whose columns meet the remote's in a term (the
  crossmatch) is read locally with its own terms applied; only a row key and the columns
  those crossing terms name are shipped to the remote as TAP_UPLOAD, in blocks; the
  remote runs the crossing terms and its own, and returns the key with the remote columns
  the rest of the query needs;
- **pull** — the remote's table, its own terms pushed down, is fetched once.

Either way the rest of the query (select list, GROUP BY, ORDER BY, TOP, the terms not
pushed) runs locally over the fetched rows, as TAP_UPLOAD tables of the request: the
local translator sees an ordinary query. Which way runs is decided by size
(:mod:`taphouse.federation.run`); the restricted-data rule can forbid the upload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from taphouse.adql.errors import AdqlError
from taphouse.adql.reserved import adql_identifier
from taphouse.adql.scope import Scope
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import TableMeta
from taphouse.remotes.model import Remote, RemoteTable
from taphouse.remotes.pushdown import catalog_names, to_adql
from taphouse.remotes.registry import RemoteRegistry

#: The row key of the uploaded local rows (also in the remote's answer).
KEY = "taphouse_key"
#: Names of the per-request tables of the local part (TAP_UPLOAD schema).
LOCAL_TABLE = "taphouse_local"
REMOTE_TABLE = "taphouse_remote"
BLOCK_TABLE = "taphouse_block"
#: The column a remote query returns when the local part needs none of its columns.
ONE = "taphouse_one"


@dataclass
class Side:
    """One table of the FROM clause."""

    alias: str
    node: exp.Table
    columns: list[str]  # as the source names them
    local: TableMeta | None = None
    remote: RemoteTable | None = None

    def column(self, name: str) -> str | None:
        """The column called ``name`` (case-insensitive), as the source names it."""
        low = name.lower()
        return next((c for c in self.columns if c.lower() == low), None)

    def label(self) -> str:
        if self.local is not None:
            return f"{self.local.database}.{self.local.name}"
        assert self.remote is not None
        return f"{self.remote.schema}.{self.remote.name}"


@dataclass
class FederatedPlan:
    """How one query joining local tables with a remote table runs.

    ``tree`` is the query with every column qualified by its table's alias and ``*``
    expanded. ``remote_terms`` touch only the remote table, ``crossing`` the remote
    table and the local table ``upload_side`` (None when no local table meets the remote
    in a term: then only a pull can run; when several do, the one of the crossmatch, the
    others' terms with the remote staying in the local part), ``local_terms`` only
    ``upload_side``.
    """

    tree: exp.Select
    remote: Remote
    remote_side: Side
    local_sides: list[Side]
    upload_side: Side | None
    remote_terms: list[exp.Expression]
    crossing: list[exp.Expression]
    local_terms: list[exp.Expression]
    upload_refused: str | None = None  # why the local rows may not be shipped
    estimates: dict[str, object] = field(default_factory=dict)

    # --- what the remote runs ------------------------------------------------------------
    def remote_columns(self, residual: exp.Expression) -> list[str]:
        """The remote table's columns ``residual`` (the local part) reads."""
        return [c for c in _columns_of(residual, self.remote_side) if c != KEY]

    def pull_adql(self) -> str:
        """The remote query of a pull: the remote table's needed columns with its own
        terms."""
        residual = self.residual("pull")
        return self._remote_select(self.remote_columns(residual), None)

    def upload_adql(self) -> str:
        """The remote query of an upload join (over TAP_UPLOAD.taphouse_block)."""
        residual = self.residual("upload")
        return self._remote_select(self.remote_columns(residual), self.upload_side)

    def columns_adql(self) -> str:
        """The remote columns an upload join returns, from the remote table alone (asked
        for with MAXREC=0 when no local row is left to upload)."""
        return self._remote_select(self.remote_columns(self.residual("upload")), None)

    def upload_columns(self) -> list[str]:
        """The local columns shipped with the key: those the crossing terms name."""
        assert self.upload_side is not None
        found: list[str] = []
        for term in self.crossing:
            for col in _columns_of(term, self.upload_side):
                if col not in found:
                    found.append(col)
        return found

    def local_adql(self) -> str:
        """The local query reading the uploaded side: the columns the crossing terms and
        the local part need, with the side's own terms."""
        side = self.upload_side
        assert side is not None
        residual = self.residual("upload")
        names = list(self.upload_columns())
        names += [c for c in _columns_of(residual, side) if c not in names and c != KEY]
        select = exp.Select(expressions=[_col(side.alias, c) for c in names] or [
            exp.Literal.number(1)])
        select = select.from_(side.node.copy(), copy=False)
        if self.local_terms:
            select = select.where(*[t.copy() for t in self.local_terms], copy=False)
        return to_adql(select)

    def _remote_select(self, columns: list[str], upload: Side | None) -> str:
        side = self.remote_side
        assert side.remote is not None
        table = exp.Table(this=_identifier(side.remote.name), db=_identifier(side.remote.schema),
                          alias=exp.TableAlias(this=_identifier(side.alias)))
        items: list[exp.Expression] = []
        if upload is not None:
            items.append(_col(upload.alias, KEY))
        items += [_col(side.alias, c) for c in columns]
        # (no column needed, e.g. COUNT(*) over a pull: one constant column per row)
        select = exp.Select(expressions=items or [exp.alias_(exp.Literal.number(1), ONE)])
        terms = [t.copy() for t in self.remote_terms]
        if upload is None:
            select = select.from_(table, copy=False)
        else:
            block = exp.Table(this=exp.to_identifier(BLOCK_TABLE),
                              db=exp.to_identifier("TAP_UPLOAD"),
                              alias=exp.TableAlias(this=_identifier(upload.alias)))
            select = select.from_(block, copy=False).join(
                table, on=exp.and_(*[t.copy() for t in self.crossing]), copy=False)
        if terms:
            select = select.where(*terms, copy=False)
        return to_adql(select)

    # --- what runs locally -------------------------------------------------------------
    def residual(self, strategy: str) -> exp.Select:
        """The local part: the query over the per-request tables (TAP_UPLOAD
        ``taphouse_remote``, and ``taphouse_local`` for an upload join) with the terms
        pushed elsewhere removed."""
        tree = self.tree.copy()
        if strategy == "upload":
            assert self.upload_side is not None
            drop = self.remote_terms + self.crossing + self.local_terms
            replace = {self.remote_side.alias: REMOTE_TABLE,
                       self.upload_side.alias: LOCAL_TABLE}
        else:
            drop = self.remote_terms
            replace = {self.remote_side.alias: REMOTE_TABLE}
        dropped = {t.sql() for t in drop}
        key_term: exp.Expression | None = None
        if strategy == "upload":
            assert self.upload_side is not None
            key_term = exp.EQ(this=_col(self.upload_side.alias, KEY),
                              expression=_col(self.remote_side.alias, KEY))
        placed = False
        for join in tree.args.get("joins") or []:
            on = join.args.get("on")
            if on is None:
                continue
            kept = [t for t in _conjuncts(on) if t.sql() not in dropped]
            if key_term is not None and not placed and _alias(join.this) in replace:
                kept.append(key_term)
                placed = True
            join.set("on", exp.and_(*kept) if kept else exp.EQ(
                this=exp.Literal.number(1), expression=exp.Literal.number(1)))
        where = tree.args.get("where")
        kept = [t for t in _conjuncts(where.this)] if where is not None else []
        kept = [t for t in kept if t.sql() not in dropped]
        if key_term is not None and not placed:
            kept.append(key_term)
        tree.set("where", exp.Where(this=exp.and_(*kept)) if kept else None)
        for node in tree.find_all(exp.Table):
            alias = _alias(node)
            if alias in replace:
                node.set("catalog", None)
                node.set("db", exp.to_identifier("TAP_UPLOAD"))
                node.set("this", exp.to_identifier(replace[alias]))
        return tree

    def explain(self, strategy: str | None = None) -> list[dict[str, object]]:
        """The parts for EXPLAIN: what runs on the remote and locally, with sizes."""
        strategy = strategy or str(self.estimates.get("strategy") or "pull")
        remote: dict[str, object] = {
                  "runs_on": f"remote {self.remote.name} ({self.remote.url})",
                  "strategy": strategy,
                  "tables": [self.remote_side.remote.adql_name(self.remote.name)]
                  if self.remote_side.remote else []}
        if strategy == "upload" and self.upload_side is not None:
            remote |= {"remote_adql": self.upload_adql(),
                       "uploaded_columns": [KEY, *self.upload_columns()],
                       "uploaded_from": self.upload_side.label()}
        else:
            remote["remote_adql"] = self.pull_adql()
        remote["estimates"] = dict(self.estimates)
        if self.upload_refused:
            remote["upload_refused"] = self.upload_refused
        local: dict[str, object] = {
                 "runs_on": "local", "adql": to_adql(self.residual(strategy)),
                 "tables": [s.label() for s in self.local_sides]}
        if strategy == "upload" and self.upload_side is not None:
            local["reads_first"] = self.local_adql()
        return [remote, local]


def plan_federated(tree: exp.Expression, identity: Identity, scope: Scope,
                   registry: RemoteRegistry,
                   lookup: Callable[[Scope, exp.Table], TableMeta]) -> FederatedPlan:
    """Split a query joining local tables with one remote table (see the module).

    ``lookup`` resolves a local table node in ``scope`` (the ADQL resolver's rules, with
    its errors). Raises :class:`AdqlError` for what cannot be federated, naming it.
    """
    tree = check_shape(tree)
    names = catalog_names(tree)
    if len(names) > 1:
        raise AdqlError(f"the query reads from several remote services ({', '.join(sorted(names))}):"
                        " joins across two remote services are not available yet")
    remote = registry.find(identity, next(iter(names)))
    if remote is None:
        name = next(iter(names))
        raise AdqlError(f"{name!r} is not a remote service you can query (remote tables"
                        " are named REMOTE.schema.table; GET /api/remotes lists the"
                        " remotes available to you)")
    sides = _sides(tree, identity, scope, registry, remote, lookup)
    for side in sides:  # the join's own row key would replace the column silently
        taken = next((c for c in side.columns if c.lower() == KEY), None)
        if taken is not None:
            raise AdqlError.at(f"{side.label()} has a column named {taken!r}, the name a"
                               " join with a remote table gives its own row key: store"
                               " the table with that column renamed to join it",
                               side.node)
    remote_sides = [s for s in sides if s.remote is not None]
    if len(remote_sides) != 1:
        raise AdqlError(f"the query reads {len(remote_sides)} tables of remote"
                        f" {remote.name!r}: a query joining local and remote tables may"
                        " read one remote table (join the remote tables in a query of"
                        " their own on the remote first)")
    rside = remote_sides[0]
    joins = tree.args.get("joins") or []
    left = None  # local LEFT JOIN remote: the remote's rows are the optional ones
    for join in joins:
        if join.side.upper() == "LEFT" and _alias(join.this) == rside.alias and len(joins) == 1:
            left = join
        elif join.side or join.kind.upper() not in ("", "INNER", "CROSS"):
            raise AdqlError.at(f"{join.side or join.kind} JOIN between local and remote"
                               " tables is not available yet: use an inner JOIN (or one"
                               " LEFT JOIN of the remote table to a local one)", join)
        if join.args.get("using"):
            raise AdqlError.at("JOIN ... USING between local and remote tables: write the"
                               " condition with ON", join)
        if join.args.get("method"):  # its condition is implicit: no term to split or ship
            raise AdqlError.at(f"{join.args['method']} JOIN between local and remote tables"
                               " is not available: write the condition with ON", join)
    _expand_stars(tree, sides)
    _qualify(tree, sides)
    local_sides = [s for s in sides if s.remote is None]
    where = tree.args.get("where")
    # (term, where it stands): for a LEFT JOIN, only its ON terms touching the remote may
    # go there, and only WHERE terms of the local side may go to the local read.
    terms = [(t, "where") for t in _conjuncts(where.this)] if where is not None else []
    for join in joins:
        if join.args.get("on") is not None:
            terms += [(t, "left" if join is left else "on") for t in _conjuncts(join.args["on"])]
    remote_terms: list[exp.Expression] = []
    crossing: list[exp.Expression] = []
    by_local: dict[str, list[exp.Expression]] = {}
    for term, place in terms:
        aliases = _aliases(term)
        if not aliases or term.find(exp.AggFunc) is not None:
            continue
        if left is not None and (place == "where") == (rside.alias in aliases):
            continue  # stays in the local part only
        if aliases == {rside.alias}:
            remote_terms.append(term)
        elif rside.alias in aliases and len(aliases) == 2:
            crossing.append(term)
        elif len(aliases) == 1:
            by_local.setdefault(next(iter(aliases)), []).append(term)
        # (a term on the remote table and two local ones stays in the local part)
    upload_side = _upload_side(crossing, rside, local_sides)
    crossing = [t for t in crossing if upload_side is not None
                and _aliases(t) == {rside.alias, upload_side.alias}]
    plan = FederatedPlan(tree=tree, remote=remote, remote_side=rside, local_sides=local_sides,
                         upload_side=upload_side, remote_terms=remote_terms,
                         crossing=crossing,
                         local_terms=by_local.get(upload_side.alias, []) if upload_side else [])
    _check_remote_features(plan)
    return plan


def _upload_side(crossing: list[exp.Expression], rside: Side, local_sides: list[Side]
                 ) -> Side | None:
    """The local table whose rows an upload join ships: the one meeting the remote
    table in the join's terms — in a positional term (the crossmatch) first when several
    do; the terms joining the remote table with the others stay in the local part."""
    def meets(term: exp.Expression) -> str:
        return next(iter(_aliases(term) - {rside.alias}))

    found = list(dict.fromkeys(meets(t) for t in crossing))
    if len(found) > 1:
        spatial = [meets(t) for t in crossing if _positional(t)]
        found = spatial[:1] or found[:1]
    return next((s for s in local_sides if found and s.alias == found[0]), None)


def _positional(term: exp.Expression) -> bool:
    """Whether ``term`` calls CONTAINS, INTERSECTS or DISTANCE (a crossmatch)."""
    names = {(f.name if isinstance(f, exp.Anonymous) else f.sql_name()).upper()
             for f in term.find_all(exp.Func)}
    return bool(names & {"CONTAINS", "INTERSECTS", "DISTANCE"})


def check_shape(tree: exp.Expression) -> exp.Select:
    """A copy of ``tree`` if it is one SELECT without subqueries or set operations (the
    shapes a join across sources handles), else :class:`AdqlError`."""
    if not isinstance(tree, exp.Select):
        raise AdqlError("a query joining tables of several sources must be one SELECT"
                        " (UNION and the like are not federated yet)")
    tree = tree.copy()
    for sub in tree.find_all(exp.Subquery, exp.With, exp.Union, exp.Except,
                             exp.Intersect, exp.Exists):
        raise AdqlError.at("a query joining tables of several sources may not hold"
                           " subqueries or set operations yet: store one side in your user"
                           " space first", sub)
    for sel in tree.find_all(exp.Select):
        if sel is not tree:
            raise AdqlError.at("a query joining tables of several sources may not hold"
                               " subqueries yet", sel)
    return tree


def _sides(tree: exp.Select, identity: Identity, scope: Scope, registry: RemoteRegistry,
           remote: Remote, lookup: Callable[[Scope, exp.Table], TableMeta]) -> list[Side]:
    from taphouse.remotes.pushdown import _lookup as remote_lookup

    sides: list[Side] = []
    seen: set[str] = set()
    for node in tree.find_all(exp.Table):
        if node.catalog:
            if not node.db:
                raise AdqlError.at(f"{node.catalog}.{node.name}: name remote tables as"
                                   " REMOTE.schema.table", node)
            table = remote_lookup(registry, remote, node)
            # TAP_SCHEMA/VOSI write delimited names with their quotes ("dec").
            side = Side(alias="", node=node, remote=table, columns=[
                c.name[1:-1].replace('""', '"') if len(c.name) > 1 and c.name[0] == c.name[-1] == '"'
                else c.name for c in table.columns])
            if not side.columns:
                raise AdqlError.at(f"remote {remote.name!r} lists no columns for"
                                   f" {table.schema}.{table.name}: it cannot be joined", node)
        else:
            meta = lookup(scope, node)
            side = Side(alias="", node=node, columns=[c.name for c in meta.columns], local=meta)
        alias = node.alias or node.name
        if alias.lower() in seen:
            raise AdqlError.at(f"two tables are called {alias!r} in this query: give each"
                               " an alias (AS)", node)
        seen.add(alias.lower())
        side.alias = alias.lower() if not _quoted_alias(node) else alias
        node.set("alias", exp.TableAlias(this=_identifier(side.alias)))
        sides.append(side)
    return sides


def _expand_stars(tree: exp.Select, sides: list[Side]) -> None:
    out: list[exp.Expression] = []
    for item in tree.expressions:
        if isinstance(item, exp.Star):
            out += [_col(s.alias, c) for s in sides for c in s.columns]
        elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
            side = _side_for(item, sides)
            out += [_col(side.alias, c) for c in side.columns]
        else:
            out.append(item)
    tree.set("expressions", out)


def _qualify(tree: exp.Select, sides: list[Side]) -> None:
    """Every column reference names its side's alias (errors for unknown or ambiguous
    names); output aliases in ORDER BY / GROUP BY stay as they are."""
    outputs = {item.alias.lower() for item in tree.expressions if item.alias}
    for col in list(tree.find_all(exp.Column)):
        if isinstance(col.this, exp.Star):
            continue
        name = col.name
        if col.table:
            side = _side_for(col, sides)
            real = side.column(name)
            if real is None:
                raise AdqlError.at(f"{side.label()} has no column {name!r}", col)
        else:
            found = [(s, s.column(name)) for s in sides if s.column(name) is not None]
            if not found:
                if name.lower() in outputs:
                    continue
                raise AdqlError.at(f"unknown column {name!r}", col)
            if len(found) > 1:
                raise AdqlError.at(f"column {name!r} is ambiguous: it is in "
                                   + " and ".join(s.label() for s, _ in found)
                                   + "; qualify it", col)
            side, real = found[0]
        assert real is not None
        col.set("this", _identifier(real))
        col.set("table", _identifier(side.alias))
        col.set("db", None)
        col.set("catalog", None)


def _side_for(col: exp.Column, sides: list[Side]) -> Side:
    """The side a qualified column names: by alias (``t.ra``), or by table name when
    the qualifier has a schema (``mydb.targets.ra``, ``far.hipparcos.hip2.ra``)."""
    qual = col.table.lower()
    if col.args.get("db") is None:
        for s in sides:
            if s.alias.lower() == qual:
                return s
    else:
        for s in sides:
            if s.node.name.lower() == qual and s.node.db.lower() == col.db.lower():
                return s
    raise AdqlError.at(f"{col.sql()}: no table of this query is called {col.table!r}", col)


def _check_remote_features(plan: FederatedPlan) -> None:
    from taphouse.remotes.pushdown import _check_features

    for term in plan.remote_terms + plan.crossing:
        _check_features(term, plan.remote)


def _columns_of(node: exp.Expression, side: Side) -> list[str]:
    found: list[str] = []
    for col in node.find_all(exp.Column):
        if col.table == side.alias and not isinstance(col.this, exp.Star):
            if col.name not in found:
                found.append(col.name)
    return found


def _aliases(term: exp.Expression) -> set[str]:
    return {c.table for c in term.find_all(exp.Column) if c.table}


def _alias(node: exp.Expression) -> str | None:
    return node.alias if isinstance(node, exp.Table) else None


def _conjuncts(node: exp.Expression | None) -> list[exp.Expression]:
    if node is None:
        return []
    if isinstance(node, exp.Paren) and isinstance(node.this, exp.And):
        node = node.this
    if isinstance(node, exp.And):
        return [c for part in node.flatten() if isinstance(part, exp.Expression)
                for c in _conjuncts(part)]
    return [node]


def _col(alias: str, name: str) -> exp.Column:
    return exp.Column(this=_identifier(name), table=_identifier(alias))


def _identifier(name: str) -> exp.Identifier:
    text = adql_identifier(name)
    return exp.to_identifier(name, quoted=text.startswith('"'))


def _quoted_alias(node: exp.Table) -> bool:
    alias = node.args.get("alias")
    ident = alias.this if alias is not None else None
    return isinstance(ident, exp.Identifier) and ident.quoted


__all__ = ["FederatedPlan", "Side", "plan_federated", "KEY", "LOCAL_TABLE", "REMOTE_TABLE",
           "BLOCK_TABLE"]
