"""The query path's entry points for a federated join (called from
:mod:`taphouse.query.service` by two small hooks): :func:`prepare_federated` plans it
(nothing runs; errors are the query's own), :meth:`FederatedQuery.materialize` runs the
remote part and returns the local part, translated for the query's backend over the
fetched rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlglot import exp

from taphouse.adql import translate
from taphouse.adql.scope import Scope, inline_name
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import ColumnMeta, TableMeta
from taphouse.catalogue.store import CatalogueStore
from taphouse.engine.backend import Backend
from taphouse.federation.planner import FederatedPlan, plan_federated
from taphouse.federation.run import (
    FederationLimits,
    FederationStats,
    choose_strategy,
    run_plan,
)
from taphouse.federation.trust import described_sources, sensitive_sources, untrusted
from taphouse.remotes.registry import RemoteRegistry


def mixes_sources(tree: exp.Expression) -> bool:
    """Whether a query names both remote tables (``REMOTE.schema.table``) and others."""
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    tables = list(tree.find_all(exp.Table))
    remote = any(t.catalog for t in tables)
    local = any(not t.catalog and not (not t.db and t.name.lower() in ctes) for t in tables)
    return remote and local


@dataclass
class Residual:
    """The local part of a federated join, ready for the backend."""

    sql: str
    columns: list[ColumnMeta]
    tables: list[TableMeta]
    inline: dict[str, Any]
    limit: int | None


@dataclass
class FederatedQuery:
    """A planned federated join (see :mod:`taphouse.federation.planner`)."""

    plan: FederatedPlan
    strategy: str
    limits: FederationLimits
    stats: FederationStats | None = None

    @property
    def local_tables(self) -> list[TableMeta]:
        return [s.local for s in self.plan.local_sides if s.local is not None]

    def explain(self) -> list[dict[str, object]]:
        return self.plan.explain(self.strategy)

    def infos(self) -> list[tuple[str, str]]:
        """INFOs of the answer: the remote, the join's way, what was shipped."""
        if self.stats is None:
            return []
        return [("REMOTE", self.plan.remote.name), *self.stats.infos()]

    def materialize(self, *, registry: RemoteRegistry, engine: Backend, scope: Scope,
                    maxrec: int | None, cancelled: Callable[[], bool] | None = None,
                    max_bytes: int | None = None) -> Residual:
        """Run the remote part (and read the local side it needs), then translate the
        local part over the fetched rows."""
        client = registry.client(self.plan.remote)

        def read_local(adql: str, max_rows: int) -> tuple[pa.Table, list[ColumnMeta]]:
            tr = translate(adql, scope, dialect=engine.dialect, maxrec=max_rows)
            with engine.cursor(_inline(tr.tables, scope)) as cur:
                reader = engine.stream(cur, tr.sql)
                table = reader.read_all() if hasattr(reader, "read_all") else \
                    pa.Table.from_batches(list(reader))
            return table, tr.columns

        rows = run_plan(self.plan, self.strategy, client, read_local, self.limits,
                        cancelled=cancelled, max_bytes=max_bytes)
        self.stats = rows.stats
        tables = dict(scope.tables)
        inline_data = dict(scope.inline)
        for name, (data, meta) in rows.tables.items():
            tables[("tap_upload", name)] = meta
            inline_data[("tap_upload", name)] = data
        local_scope = dataclasses.replace(scope, tables=tables, inline=inline_data)
        tr = translate(rows.adql, local_scope, dialect=engine.dialect, maxrec=maxrec)
        used = [t for t in tr.tables if t.kind != "upload" or
                (t.database, t.name) not in {("tap_upload", n) for n in rows.tables}]
        seen = {(t.database, t.name) for t in used}
        used += [t for t in self.local_tables if (t.database, t.name) not in seen]
        return Residual(sql=tr.sql, columns=tr.columns, tables=used,
                        inline=_inline(tr.tables, local_scope), limit=tr.limit)


def prepare_federated(tree: exp.Expression, identity: Identity, scope: Scope,
                      registry: RemoteRegistry, catalogue: CatalogueStore,
                      limits: FederationLimits) -> FederatedQuery:
    """Plan a query joining local tables with a remote table; raises
    :class:`~taphouse.adql.AdqlError` or :class:`~taphouse.federation.FederationError`
    naming what cannot be done."""
    plan = plan_federated(tree, identity, scope, registry, lookup_local)
    side = plan.upload_side
    if side is not None and side.local is not None:
        sources = described_sources(scope.schemas(), identity, catalogue) \
            if side.local.kind == "tap_schema" else \
            sensitive_sources(side.local, identity, catalogue, registry)
        refused = untrusted(sources, plan.remote.name, limits.trusted)
        if refused:
            plan.upload_refused = (
                f"{side.label()} holds rows of {', '.join(refused)}, which this service"
                f" never sends to remote {plan.remote.name!r} (the operator has not marked"
                " it trusted for them)")
    strategy = choose_strategy(plan, limits)
    return FederatedQuery(plan=plan, strategy=strategy, limits=limits)


def lookup_local(scope: Scope, node: exp.Table) -> TableMeta:
    """The local table a node names in ``scope`` (the ADQL resolver's rules and errors)."""
    from taphouse.adql.resolve import Resolver

    schema = node.db.lower() if node.db else None
    name = node.name if _quoted(node) else node.name.lower()
    return Resolver(scope)._lookup(node, schema, name)


def _inline(tables: list[TableMeta], scope: Scope) -> dict[str, Any]:
    inline: dict[str, Any] = {}
    for t in tables:
        data = scope.inline.get((t.database, t.name))
        if data is not None:
            inline[inline_name(t)] = data() if callable(data) else data
    return inline


def _quoted(node: exp.Table) -> bool:
    ident = node.args.get("this")
    return isinstance(ident, exp.Identifier) and ident.quoted


__all__ = ["FederatedQuery", "Residual", "prepare_federated", "mixes_sources"]
