"""Name resolution: every table and column of a query against the request's scope.

Walks the parsed (identifier-normalised) tree query by query. Tables become the
backend relations the scope names, under a quoted alias; columns become
alias-qualified quoted references annotated with their :class:`ColumnMeta`; ``*`` is
expanded; every select item gets a unique output name. Unknown or ambiguous names
are :class:`AdqlError` with close matches suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field

from sqlglot import exp

from taphouse.adql.columns import annotate, describe, joined_arraysize, result_name, same_quantity
from taphouse.adql.errors import AdqlError
from taphouse.adql.scope import Scope, inline_name
from taphouse.catalogue.model import ColumnMeta, TableMeta

#: The columns of the WITH queries in reach, by name.
Ctes = dict[str, list[ColumnMeta]]


@dataclass
class Source:
    """One relation in a FROM clause."""

    alias: str
    refs: set[tuple[str, ...]]
    columns: list[ColumnMeta]
    node: exp.Expression
    table: TableMeta | None = None
    inline: bool = False
    #: Internal columns (not in ``columns``, so not in ``*``) a query may name:
    #: ADQL name -> (name in the relation, metadata).
    internal: dict[str, tuple[str, ColumnMeta]] = field(default_factory=dict)

    def column(self, name: str) -> ColumnMeta | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    def named(self, name: str) -> tuple[ColumnMeta, str] | None:
        """A column a query may name (listed or internal) and its name in the relation."""
        col = self.column(name)
        if col is not None:
            return col, col.name
        hidden = self.internal.get(name)
        return (hidden[1], hidden[0]) if hidden is not None else None

    @property
    def label(self) -> str:
        return self.table.qualified_name if self.table is not None else self.alias


@dataclass
class Frame:
    """The sources one SELECT can see, with the columns merged by USING/NATURAL."""

    sources: list[Source] = field(default_factory=list)
    merged: set[str] = field(default_factory=set)
    outputs: dict[str, ColumnMeta] = field(default_factory=dict)


class Resolver:
    """Resolves one query tree against a :class:`Scope` (single use)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.tables: dict[tuple[str, str], TableMeta] = {}

    # --- queries ------------------------------------------------------------------------
    def query(self, node: exp.Expression, outer: list[Frame],
              ctes: dict[str, list[ColumnMeta]]) -> list[ColumnMeta]:
        """Resolve a query (SELECT or set operation) in place; return its output columns."""
        if isinstance(node, exp.Subquery):
            cols = self.query(node.this, outer, ctes)
            annotate(node, columns=cols)
            return cols
        with_ = node.args.get("with_")
        if with_ is not None:
            if with_.args.get("recursive"):
                raise AdqlError.at("WITH RECURSIVE is not part of ADQL", with_)
            ctes = dict(ctes)
            for cte in with_.expressions:
                cols = self.query(cte.this, outer, ctes)
                cols = _rename(cols, cte.args.get("alias"), cte)
                name = cte.alias
                _quote_alias(cte)
                ctes[name] = cols
        if isinstance(node, exp.SetOperation):
            cols = self._set_operation(node, outer, ctes)
        elif isinstance(node, exp.Select):
            cols = self._select(node, outer, ctes)
        else:
            raise AdqlError.at(f"expected a query, found {node.sql()[:40]!r}", node)
        annotate(node, columns=cols)
        return cols

    def _set_operation(self, node: exp.SetOperation, outer: list[Frame], ctes: Ctes) -> list[ColumnMeta]:
        left = self.query(node.this, outer, ctes)
        right = self.query(node.expression, outer, ctes)
        if len(left) != len(right):
            raise AdqlError.at(
                f"the queries of {type(node).__name__.upper()} select different numbers of "
                f"columns ({len(left)} and {len(right)})", node)
        cols = []
        for a, b in zip(left, right, strict=True):
            same = same_quantity(a, b)
            cols.append(ColumnMeta(a.name, a.datatype, joined_arraysize([a, b]), a.xtype,
                                   a.unit if same else None, a.ucd if same else None,
                                   description=a.description if same else None,
                                   coosys=a.coosys if same else None,
                                   timesys=a.timesys if same else None))
        frame = Frame(outputs={c.name: c for c in cols})
        self._order(node, frame, outer, ctes, outputs_only=True, ncols=len(cols))
        return cols

    def _select(self, node: exp.Select, outer: list[Frame], ctes: Ctes) -> list[ColumnMeta]:
        frame = Frame()
        frames = [frame, *outer]
        from_ = node.args.get("from_")
        if from_ is not None:
            frame.sources.append(self._source(from_.this, frame, outer, ctes))
        for join in node.args.get("joins") or []:
            src = self._source(join.this, frame, outer, ctes)
            left = list(frame.sources)
            frame.sources.append(src)
            if join.args.get("method") == "NATURAL":
                names = {c.name for s in left for c in s.columns}
                frame.merged |= {c.name for c in src.columns if c.name in names}
            using = join.args.get("using")
            if using:
                for ident in using:
                    name = ident.name
                    if src.column(name) is None or not any(s.column(name) for s in left):
                        raise AdqlError.at(f"USING column {name} must exist on both sides "
                                           "of the join", ident)
                    frame.merged.add(name)
                    ident.replace(exp.to_identifier(name, quoted=True)) \
                        if isinstance(ident, exp.Identifier) else None
            on = join.args.get("on")
            if on is not None:
                self._expr(on, frames, ctes)
        # select list
        items: list[tuple[exp.Expression, str]] = []
        for item in node.expressions:
            if isinstance(item, exp.Star) or (isinstance(item, exp.Column)
                                              and isinstance(item.this, exp.Star)):
                items.extend(self._star(item, frame))
                continue
            if isinstance(item, exp.Alias):
                self._expr(item.this, frames, ctes)
                items.append((item.this, item.alias))
            else:
                self._expr(item, frames, ctes)
                items.append((item, result_name(item)))
        cols: list[ColumnMeta] = []
        new_items = []
        seen: set[str] = set()
        counters: dict[str, int] = {}
        for expr_, name in items:
            unique = _unique(name, seen, counters)
            meta = describe(expr_)
            meta.name = unique
            cols.append(meta)
            frame.outputs.setdefault(name, meta)
            frame.outputs.setdefault(unique, meta)
            new_items.append(exp.Alias(this=expr_, alias=exp.to_identifier(unique, quoted=True)))
        node.set("expressions", new_items)
        where = node.args.get("where")
        if where is not None:
            self._expr(where.this, frames, ctes)
        group = node.args.get("group")
        if group is not None:
            for e in group.expressions:
                self._expr(e, frames, ctes, aliases=frame.outputs)
        having = node.args.get("having")
        if having is not None:
            self._expr(having.this, frames, ctes, aliases=frame.outputs)
        self._order(node, frame, outer, ctes, outputs_only=False, ncols=len(cols))
        annotate(node, frame=frame)
        return cols

    def _order(self, node: exp.Expression, frame: Frame, outer: list[Frame], ctes: Ctes, *,
               outputs_only: bool,
               ncols: int) -> None:
        order = node.args.get("order")
        if order is None:
            return
        for ordered in order.expressions:
            key = ordered.this
            if isinstance(key, exp.Literal) and not key.is_string:
                n = int(key.this) if key.this.isdigit() else 0
                if not 1 <= n <= ncols:
                    raise AdqlError.at(f"ORDER BY {key.this}: there are {ncols} columns", key)
                continue
            if isinstance(key, exp.Column) and not key.table and key.name in frame.outputs:
                key.replace(exp.column(exp.to_identifier(key.name, quoted=True)))
                continue
            if outputs_only:
                raise AdqlError.at(
                    f"ORDER BY {key.sql()} must name an output column"
                    + _suggest(key.sql(), list(frame.outputs)), key)
            self._expr(key, [frame, *outer], ctes, aliases=frame.outputs)

    # --- FROM --------------------------------------------------------------------------
    def _source(self, node: exp.Expression, frame: Frame, outer: list[Frame], ctes: Ctes) -> Source:
        taken = {s.alias for s in frame.sources}
        alias_node = node.args.get("alias")
        user_alias = alias_node.name if alias_node is not None and alias_node.name else None
        if user_alias and user_alias in taken:
            raise AdqlError.at(f"the alias {user_alias} is used twice in one FROM clause",
                               node)
        if isinstance(node, exp.Subquery):
            if not user_alias:
                raise AdqlError.at("a subquery in FROM needs an alias: (SELECT ...) AS name",
                                   node)
            cols = self.query(node.this, outer, ctes)
            cols = _rename(cols, alias_node, node)
            _quote_alias(node)
            return Source(user_alias, {(user_alias,)}, cols, node)
        if not isinstance(node, exp.Table):
            raise AdqlError.at(f"{node.sql()[:40]!r} is not a table", node)
        name = node.name
        schema = node.db or None
        if node.catalog and schema:  # REMOTE.schema.table: planned by taphouse.remotes
            raise AdqlError.at(
                f"{node.catalog}.{schema}.{name}: {node.catalog!r} is not a remote service"
                " this query can use (remote tables are named REMOTE.schema.table; GET"
                " /api/remotes lists them)", node)
        if schema is None and name in ctes:
            alias = user_alias or name
            node.set("this", exp.to_identifier(name, quoted=True))
            node.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
            return Source(alias, {(alias,)}, ctes[name], node)
        table = self._lookup(node, schema, name)
        key = (table.database, table.name)
        self.tables[key] = table
        inline = key in self.scope.inline
        relation = inline_name(table) if inline else self.scope.relation(table)
        rel = exp.to_table(relation)
        for part in ("this", "db", "catalog"):
            ident = rel.args.get(part)
            if ident is not None:
                rel.set(part, exp.to_identifier(ident.name, quoted=True))
        alias = user_alias or _unique(table.name, taken)
        rel.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
        node.replace(rel)
        refs: set[tuple[str, ...]]
        if user_alias:
            refs = {(user_alias,)}
        else:
            refs = {(table.name,), (table.database, table.name)}
        return Source(alias, refs, list(table.columns), rel, table, inline,
                      table.internal_columns())

    def _lookup(self, node: exp.Table, schema: str | None, name: str) -> TableMeta:
        scope = self.scope
        if schema is not None:
            real = scope.schema_aliases.get(schema, schema)
            table = scope.table(real, name)
            if table is None:
                known = [f"{s}.{t}" for s, t in scope.names()]
                raise AdqlError.at(
                    f"unknown table {schema}.{name}"
                    + _suggest(f"{real}.{name}", known + list(scope.schema_aliases)),
                    node)
            return table
        named = scope.named(name)
        for s in scope.search_path:
            real = scope.schema_aliases.get(s, s)
            if (real, name) in named:
                return named[(real, name)]
        found = list(named.values())
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise AdqlError.at(
                f"table name {name} is ambiguous: write "
                + " or ".join(sorted(t.qualified_name for t in found)), node)
        names = scope.names()
        raise AdqlError.at(f"unknown table {name}"
                           + _suggest(name, [n for _, n in names]
                                      + [f"{s}.{n}" for s, n in names]), node)

    def _star(self, item: exp.Expression, frame: Frame) -> list[tuple[exp.Expression, str]]:
        if isinstance(item, exp.Column):
            qual = _qualifier(item, self.scope)
            sources = [s for s in frame.sources if qual in s.refs]
            if not sources:
                raise AdqlError.at(f"unknown table {'.'.join(qual)} in {item.sql()}", item)
        else:
            sources = frame.sources
            if not sources:
                raise AdqlError.at("SELECT * needs a FROM clause", item)
        out: list[tuple[exp.Expression, str]] = []
        done: set[str] = set()
        for src in sources:
            for col in src.columns:
                if col.name in frame.merged and not isinstance(item, exp.Column):
                    if col.name in done:
                        continue
                    done.add(col.name)
                    ref = exp.column(exp.to_identifier(col.name, quoted=True))
                else:
                    ref = exp.column(exp.to_identifier(col.name, quoted=True),
                                     table=exp.to_identifier(src.alias, quoted=True))
                annotate(ref, col=col, src=src)
                out.append((ref, col.name))
        return out

    # --- expressions -----------------------------------------------------------------
    def _expr(self, node: exp.Expression, frames: list[Frame], ctes: Ctes,
              aliases: dict[str, ColumnMeta] | None = None) -> None:
        if isinstance(node, exp.Column):
            self._column(node, frames, aliases)
            return
        if isinstance(node, exp.Subquery | exp.Select | exp.SetOperation):
            self.query(node, frames, ctes)
            return
        for child in list(node.iter_expressions()):
            self._expr(child, frames, ctes, aliases)

    def _column(self, node: exp.Column, frames: list[Frame],
                aliases: dict[str, ColumnMeta] | None) -> None:
        if isinstance(node.this, exp.Star):
            raise AdqlError.at(f"{node.sql()} is only allowed in the select list", node)
        name = node.name
        if node.table:
            qual = _qualifier(node, self.scope)
            for frame in frames:
                for src in frame.sources:
                    if qual in src.refs:
                        found = src.named(name)
                        if found is None:
                            raise AdqlError.at(
                                f"unknown column {name} in {src.label}"
                                + _suggest(name, [c.name for c in src.columns]), node)
                        _bind(node, src, *found)
                        return
            known = [".".join(r) for f in frames for s in f.sources for r in s.refs]
            raise AdqlError.at(f"unknown table {'.'.join(qual)} in column reference "
                               f"{node.sql()}" + _suggest(".".join(qual), known), node)
        for frame in frames:
            hits = [(s, s.column(name)) for s in frame.sources if s.column(name) is not None]
            if name in frame.merged and hits:
                node.set("this", exp.to_identifier(name, quoted=True))
                annotate(node, col=hits[0][1])
                return
            if not hits:  # an internal column, if no listed column has the name
                hits = [(s, s.internal[name][1]) for s in frame.sources if name in s.internal]
            if len(hits) > 1:
                raise AdqlError.at(
                    f"column {name} is ambiguous: write "
                    + " or ".join(f"{s.alias}.{name}" for s, _ in hits), node)
            if hits:
                src = hits[0][0]
                found = src.named(name)
                assert found is not None
                _bind(node, src, *found)
                return
        if aliases and name in aliases:
            node.set("this", exp.to_identifier(name, quoted=True))
            annotate(node, col=aliases[name])
            return
        known = [c.name for f in frames for s in f.sources for c in s.columns]
        raise AdqlError.at(f"unknown column {name}" + _suggest(name, known), node)


def _bind(node: exp.Column, src: Source, col: ColumnMeta, stored: str | None = None) -> None:
    node.set("this", exp.to_identifier(stored or col.name, quoted=True))
    node.set("table", exp.to_identifier(src.alias, quoted=True))
    node.set("db", None)
    node.set("catalog", None)
    annotate(node, col=col, src=src)


def _qualifier(node: exp.Column, scope: Scope) -> tuple[str, ...]:
    if node.args.get("catalog") is not None:
        raise AdqlError.at(f"{node.sql()}: {node.catalog!r} is not a remote service this"
                           " query can use", node)
    parts = [p for p in (node.args.get("db"), node.args.get("table")) if p is not None]
    names = [p.name for p in parts]
    if len(names) == 2:
        names[0] = scope.schema_aliases.get(names[0], names[0])
    return tuple(names)


def _unique(name: str, seen: set[str], counters: dict[str, int] | None = None) -> str:
    # ``counters`` remembers the last suffix per name, so that n equal names cost O(n),
    # not O(n^2) (SELECT ra, ra, ra, ... with thousands of items).
    n = counters.get(name, 1) if counters is not None else 1
    unique = name if n == 1 else f"{name}_{n}"
    while unique in seen:
        n += 1
        unique = f"{name}_{n}"
    if counters is not None:
        counters[name] = n
    seen.add(unique)
    return unique


def _rename(cols: list[ColumnMeta], alias: exp.TableAlias | None,
            node: exp.Expression) -> list[ColumnMeta]:
    names = [c.name for c in alias.columns] if alias is not None and alias.columns else []
    if not names:
        return cols
    if len(names) != len(cols):
        raise AdqlError.at(f"{len(names)} column names given for {len(cols)} columns", node)
    out = []
    for c, n in zip(cols, names, strict=True):
        out.append(dataclasses.replace(c, name=n))
    return out


def _quote_alias(node: exp.Expression) -> None:
    alias = node.args.get("alias")
    if alias is None:
        return
    alias.set("this", exp.to_identifier(alias.name, quoted=True))
    cols = alias.args.get("columns")
    if cols:
        alias.set("columns", [exp.to_identifier(c.name, quoted=True) for c in cols])


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f"; did you mean {', '.join(close)}?" if close else ""
