"""A query joining catalogue tables that live on two local backends (PostgreSQL and the
embedded DuckDB, say): the tables of the backend holding fewer rows are read there,
their own WHERE terms and only the columns needed pushed, and the rest of the query runs
on the other backend over those rows as per-request tables (the same local part as a
federated join's, :mod:`taphouse.federation.query`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from sqlglot import exp

from taphouse.adql import translate
from taphouse.adql.errors import AdqlError
from taphouse.adql.scope import Scope
from taphouse.catalogue.model import ColumnMeta, TableMeta
from taphouse.engine.backend import Backend
from taphouse.engine.routing import (
    BackendRouter,
    BackendUnavailable,
    backend_key,
    describe_key,
    movable,
)
from taphouse.federation.planner import (
    ONE,
    Side,
    _aliases,
    _col,
    _columns_of,
    _conjuncts,
    _expand_stars,
    _qualify,
    check_shape,
)
from taphouse.federation.run import FederationError, FederationLimits, _meta
from taphouse.remotes.pushdown import to_adql

Key = tuple[str, str | None]


def mixed_backends(tables: list[TableMeta]) -> bool:
    """Whether catalogue tables of two backends meet in one query."""
    return len({backend_key(t) for t in tables if not movable(t)}) > 1


@dataclass
class _Pull:
    side: Side
    key: Key
    terms: list[exp.Expression]
    name: str


@dataclass
class CrossBackendQuery:
    """A planned join across local backends; duck-typed like
    :class:`~taphouse.federation.query.FederatedQuery` for the query path's hooks."""

    tree: exp.Select
    main: Key
    pulls: list[_Pull]
    sides: list[Side]
    router: BackendRouter
    limits: FederationLimits
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def local_tables(self) -> list[TableMeta]:
        return [s.local for s in self.sides if s.local is not None]

    def residual(self) -> exp.Select:
        tree = self.tree.copy()
        dropped = {t.sql() for p in self.pulls for t in p.terms}
        for join in tree.args.get("joins") or []:
            on = join.args.get("on")
            if on is not None:
                kept = [t for t in _conjuncts(on) if t.sql() not in dropped]
                join.set("on", exp.and_(*kept) if kept else exp.EQ(
                    this=exp.Literal.number(1), expression=exp.Literal.number(1)))
        where = tree.args.get("where")
        kept = [t for t in _conjuncts(where.this)] if where is not None else []
        kept = [t for t in kept if t.sql() not in dropped]
        tree.set("where", exp.Where(this=exp.and_(*kept)) if kept else None)
        names = {p.side.alias: p.name for p in self.pulls}
        for node in tree.find_all(exp.Table):
            if node.alias in names:
                node.set("db", exp.to_identifier("TAP_UPLOAD"))
                node.set("this", exp.to_identifier(names[node.alias]))
        return tree

    def pull_adql(self, pull: _Pull) -> str:
        cols = _columns_of(self.residual(), pull.side)
        items: list[exp.Expr] = [_col(pull.side.alias, c) for c in cols] or [
            exp.alias_(exp.Literal.number(1), ONE)]
        select = exp.Select(expressions=items).from_(pull.side.node.copy(), copy=False)
        if pull.terms:
            select = select.where(*[t.copy() for t in pull.terms], copy=False)
        return to_adql(select)

    def explain(self) -> list[dict[str, object]]:
        parts: list[dict[str, object]] = [
            {"runs_on": f"backend {describe_key(p.key)}", "strategy": "pull",
             "adql": self.pull_adql(p), "tables": [p.side.label()],
             "estimates": {"rows": p.side.local.nrows if p.side.local else None,
                           "pull_max_rows": self.limits.pull_max_rows}}
            for p in self.pulls]
        parts.append({"runs_on": f"backend {describe_key(self.main)}",
                      "adql": to_adql(self.residual()),
                      "tables": [s.label() for s in self.sides]})
        return parts

    def infos(self) -> list[tuple[str, str]]:
        return [("CROSS_BACKEND", ", ".join(f"{n}: {r} rows" for n, r in self.rows.items()))]

    def materialize(self, *, engine: Backend, scope: Scope, maxrec: int | None,
                    cancelled: Callable[[], bool] | None = None, **_: Any) -> Any:
        """Read the pulled tables on their backends, then translate the local part for
        ``engine`` (the main backend) over them."""
        import dataclasses

        from taphouse.federation.query import Residual, _inline

        tables = dict(scope.tables)
        inline_data = dict(scope.inline)
        cap = self.limits.pull_max_rows
        for pull in self.pulls:
            if cancelled is not None and cancelled():
                raise FederationError("query cancelled")
            backend = self.router.backend(pull.key)
            tr = translate(self.pull_adql(pull), scope, dialect=backend.dialect, maxrec=cap)
            try:
                with backend.cursor(_inline(tr.tables, scope)) as cur:
                    reader = backend.stream(cur, tr.sql)
                    data = reader.read_all() if hasattr(reader, "read_all") else \
                        pa.Table.from_batches(list(reader))
            except Exception as exc:  # noqa: BLE001  (the backend's own error, described)
                raise FederationError(f"reading {pull.side.label()} on its backend"
                                      f" ({describe_key(pull.key)}) failed:"
                                      f" {backend.describe_error(exc)}") from None
            if data.num_rows > cap:
                raise FederationError(_too_big(pull.side.label(), pull.key, self.main, cap))
            columns: list[ColumnMeta] = tr.columns
            self.rows[pull.side.label()] = data.num_rows
            tables[("tap_upload", pull.name)] = _meta(pull.name, columns, data.num_rows)
            inline_data[("tap_upload", pull.name)] = data
        local_scope = dataclasses.replace(scope, tables=tables, inline=inline_data)
        tr = translate(to_adql(self.residual()), local_scope, dialect=engine.dialect,
                       maxrec=maxrec)
        pulled = {p.name for p in self.pulls}
        used = [t for t in tr.tables if not (t.database == "tap_upload" and t.name in pulled)]
        seen = {(t.database, t.name) for t in used}
        used += [t for t in self.local_tables if (t.database, t.name) not in seen]
        return Residual(sql=tr.sql, columns=tr.columns, tables=used,
                        inline=_inline(tr.tables, local_scope), limit=tr.limit)


def _too_big(label: str, key: Key, main: Key, cap: int, rows: int | None = None) -> str:
    size = f"{rows} rows" if rows is not None else f"more than {cap} rows"
    return (f"the query joins tables of two backends: {label} on {describe_key(key)} has"
            f" {size} after its own WHERE terms, more than the {cap} this service moves to"
            f" the other tables' backend ({describe_key(main)}) for one query. Narrow it"
            " with a WHERE term on its own columns")


def prepare_cross_backend(tree: exp.Expression, scope: Scope, router: BackendRouter,
                          limits: FederationLimits,
                          lookup: Callable[[Scope, exp.Table], TableMeta]
                          ) -> CrossBackendQuery:
    """Plan a query whose catalogue tables live on two or more local backends: the
    backend holding the most rows runs the query; the others' tables are read there
    first. Raises :class:`AdqlError` for shapes not handled (as a federated join's)."""
    tree = check_shape(tree)
    sides: list[Side] = []
    seen: set[str] = set()
    for node in tree.find_all(exp.Table):
        meta = lookup(scope, node)
        alias = (node.alias or node.name).lower()
        if alias in seen:
            raise AdqlError.at(f"two tables are called {alias!r} in this query: give each"
                               " an alias (AS)", node)
        seen.add(alias)
        node.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        sides.append(Side(alias=alias, node=node, columns=[c.name for c in meta.columns],
                          local=meta))
    for join in tree.args.get("joins") or []:
        if join.side or join.kind.upper() not in ("", "INNER", "CROSS"):
            raise AdqlError.at(f"{join.side or join.kind} JOIN between tables of two"
                               " backends is not available yet: use an inner JOIN", join)
    _expand_stars(tree, sides)
    _qualify(tree, sides)
    totals: dict[Key, int] = {}
    for s in sides:
        assert s.local is not None
        if not movable(s.local):
            key = backend_key(s.local)
            totals[key] = totals.get(key, 0) + int(s.local.nrows or 0)
    main = max(totals, key=lambda k: (totals[k], k[0] == "duckdb"))
    where = tree.args.get("where")
    terms = [t for t in _conjuncts(where.this)] if where is not None else []
    for join in tree.args.get("joins") or []:
        if join.args.get("on") is not None:
            terms += _conjuncts(join.args["on"])
    pulls: list[_Pull] = []
    for s in sides:
        assert s.local is not None
        if movable(s.local) or backend_key(s.local) == main:
            continue
        own = [t for t in terms if _aliases(t) == {s.alias} and t.find(exp.AggFunc) is None]
        if not own and s.local.nrows and s.local.nrows > limits.pull_max_rows:
            raise FederationError(_too_big(s.label(), backend_key(s.local), main,
                                           limits.pull_max_rows, s.local.nrows))
        pulls.append(_Pull(side=s, key=backend_key(s.local), terms=own,
                           name=f"taphouse_pull_{len(pulls) + 1}"))
    for key in [main, *(p.key for p in pulls)]:
        try:
            router.backend(key)  # made (or refused) now, not halfway through the query
        except BackendUnavailable as exc:
            raise AdqlError(exc.message) from None
    return CrossBackendQuery(tree=tree, main=main, pulls=pulls, sides=sides, router=router,
                             limits=limits)


__all__ = ["CrossBackendQuery", "mixed_backends", "prepare_cross_backend"]
