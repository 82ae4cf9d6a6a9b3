"""Building the scope of one request: what this caller may see, and nothing else.

Visibility is decided here, once, from the packages' own answers: the catalogue's
databases and tables, auth's read policy (public, groups, administrators, one's own
schema) and user space's shares (another user's tables shared with the caller make
their schema visible with just those tables in it). Nothing else decides who sees what.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taphouse.adql.scope import Scope
from taphouse.auth.identity import Identity
from taphouse.auth.policy import ReadPolicy
from taphouse.catalogue.model import DatabaseMeta, TableMeta, TableSummary
from taphouse.catalogue.store import CatalogueStore
from taphouse.engine.duckdb import DuckDBEngine
from taphouse.userspace.shares import Shares

if TYPE_CHECKING:
    from taphouse.remotes.catalog import RemoteSchemas


@dataclass(frozen=True)
class _View:
    """What one caller sees: databases (narrowed to a workspace, if any) and, in other
    users' schemas among them, the tables shared with the caller."""

    identity: Identity
    databases: list[DatabaseMeta]
    shared: frozenset[tuple[str, str]]

    def whole(self, db: DatabaseMeta) -> bool:
        """Whether every table of ``db`` is visible (not another user's schema)."""
        return db.kind != "user" or db.name == self.identity.user_schema


class ScopeBuilder:
    """Turns (identity, workspace, uploads) into an ADQL :class:`Scope`."""

    def __init__(self, catalogue: CatalogueStore, engine: DuckDBEngine,
                 policy: ReadPolicy, shares: Shares, *,
                 remote_schemas: RemoteSchemas | None = None) -> None:
        self.catalogue = catalogue
        self.engine = engine
        self.policy = policy
        self.shares = shares
        self.remote_schemas = remote_schemas

    def remote_metadata(self, identity: Identity, workspace: Sequence[str] | None
                        ) -> tuple[list[DatabaseMeta], list[TableMeta]]:
        """The schemas ``NAME.schema`` and tables of the remote services a workspace
        selects (its metadata documents list them; none outside workspaces)."""
        if workspace is None or self.remote_schemas is None:
            return [], []
        return self.remote_schemas.metadata(identity, workspace)

    def _view(self, identity: Identity, workspace: Sequence[str] | None = None) -> _View:
        every = self.catalogue.databases()
        readable = {db.name for db in self.policy.readable(identity, every)}
        shared: frozenset[tuple[str, str]] = frozenset()
        if identity.user_id is not None and any(
                db.kind == "user" and db.name not in readable for db in every):
            shared = frozenset(self.shares.tables(identity))
        shared_schemas = {s for s, _ in shared}
        result = []
        for db in every:
            if db.name not in readable and not (db.kind == "user"
                                                and db.name in shared_schemas):
                continue
            # A workspace holds its listed databases (shared user schemas included)
            # plus the caller's own schema.
            if (workspace is not None and db.name not in workspace
                    and db.name != identity.user_schema):
                continue
            result.append(db)
        return _View(identity, result, shared)

    def visible_databases(self, identity: Identity,
                          workspace: Sequence[str] | None = None) -> list[DatabaseMeta]:
        """Databases the caller may read; with a workspace, only its databases and the
        caller's own schema, and the schemas of the remote services it selects."""
        return self._view(identity, workspace).databases + \
            self.remote_metadata(identity, workspace)[0]

    def visible_tables(self, identity: Identity,
                       workspace: Sequence[str] | None = None) -> list[TableMeta]:
        """Tables of the visible databases; in another user's schema only the tables
        shared with the caller (the others do not exist for them). In a workspace, also
        the tables of the remote services it selects."""
        return _visible_tables(self.catalogue, self._view(identity, workspace)) + \
            self.remote_metadata(identity, workspace)[1]

    def visible_summaries(self, identity: Identity, databases: Sequence[str] | None = None,
                          *, search: str | None = None, offset: int = 0,
                          limit: int | None = None) -> list[TableSummary]:
        """Summaries (no columns) of the tables :meth:`visible_tables` would give, of
        all visible databases or of those named: cheap with many thousands of tables."""
        whole, pairs = _readable(self._view(identity), databases)
        return self.catalogue.table_summaries(whole, tables=pairs, search=search,
                                              offset=offset, limit=limit)

    def visible_counts(self, identity: Identity) -> list[tuple[DatabaseMeta, int]]:
        """The visible databases with the number of tables the caller sees in each."""
        view = self._view(identity)
        whole, pairs = _readable(view, None)
        counts = self.catalogue.table_counts(whole)
        for d, _ in pairs:
            counts[d] = counts.get(d, 0) + 1
        return [(db, counts.get(db.name, 0)) for db in view.databases]

    def visible_table(self, identity: Identity, database: str, name: str,
                      workspace: Sequence[str] | None = None) -> TableMeta | None:
        """One table with its columns if the caller may see it (in the workspace, if
        any), else None."""
        return _VisibleTables(self.catalogue, self._view(identity, workspace)).table(
            database.lower(), name.lower())

    def build(self, identity: Identity, workspace: Sequence[str] | None = None,
              uploads: dict[str, tuple[object, TableMeta]] | None = None, *,
              relation: Callable[[TableMeta], str] | None = None) -> Scope:
        """The scope for one query: visible tables (looked up when the query names
        them), TAP_SCHEMA, TAP_UPLOAD tables. ``relation`` gives the backend relation
        of a stored table (a request's :class:`~taphouse.engine.duckdb.VersionLease`;
        default: the engine's, unheld)."""
        from taphouse.tap.tap_schema import tap_schema_meta, tap_schema_tables

        view = self._view(identity, workspace)
        source = _VisibleTables(self.catalogue, view)
        tables: dict[tuple[str, str], TableMeta] = {}
        inline: dict[tuple[str, str], object] = {}
        built: dict[tuple[str, str], object] = {}

        def tap_schema_data(key: tuple[str, str]) -> object:
            # TAP_SCHEMA rows are built only when a query reads them, once per request.
            if not built:
                remote_dbs, remote_tables = self.remote_metadata(identity, workspace)
                stored = _visible_tables(self.catalogue, view) + remote_tables
                descriptions = {d.name: d.description for d in
                                self.catalogue.databases() + remote_dbs}
                built.update({(m.database, m.name): data
                              for m, data in tap_schema_tables(stored, descriptions)})
            return built[key]

        for meta in tap_schema_meta():
            key = (meta.database, meta.name)
            tables[key] = meta
            inline[key] = lambda key=key: tap_schema_data(key)
        for name, (data, meta) in (uploads or {}).items():
            tables[("tap_upload", name)] = meta
            inline[("tap_upload", name)] = data
        aliases = {}
        if identity.user_schema:
            aliases["mydb"] = identity.user_schema
        # Unqualified names resolve when exactly one searched schema has the table.
        search = sorted(source.searched(), key=lambda s: (s.startswith("user_"), s))
        return Scope(tables=tables, relation=relation or self.engine.relation,
                     schema_aliases=aliases, search_path=search, inline=inline,
                     source=source)


def _visible_tables(catalogue: CatalogueStore, view: _View) -> list[TableMeta]:
    kinds = {db.name: db for db in view.databases}
    return [t for t in catalogue.tables(databases=kinds)
            if view.whole(kinds[t.database]) or (t.database, t.name) in view.shared]


def _readable(view: _View, databases: Sequence[str] | None
              ) -> tuple[list[str], list[tuple[str, str]]]:
    """(databases the caller sees whole, (database, table) pairs shared with them in
    other users' schemas), among ``databases`` if given."""
    whole, partial = [], set()
    for db in view.databases:
        if databases is not None and db.name not in databases:
            continue
        (whole.append(db.name) if view.whole(db) else partial.add(db.name))
    pairs = sorted((d, t) for d, t in view.shared if d in partial)
    return whole, pairs


class _VisibleTables:
    """The stored tables of one view, looked up by name (a :class:`TableSource`)."""

    def __init__(self, catalogue: CatalogueStore, view: _View) -> None:
        self.catalogue = catalogue
        self.view = view
        self.dbs = {db.name: db for db in view.databases}

    def _visible(self, schema: str, name: str) -> bool:
        db = self.dbs.get(schema)
        return db is not None and (self.view.whole(db) or (schema, name) in self.view.shared)

    def table(self, schema: str, name: str) -> TableMeta | None:
        if not self._visible(schema, name):
            return None
        return self.catalogue.table(schema, name)

    def named(self, name: str) -> list[TableMeta]:
        dbs = [d for d in self.dbs if self._visible(d, name)]
        return self.catalogue.tables_named(name, dbs) if dbs else []

    def names(self) -> list[tuple[str, str]]:
        whole, pairs = _readable(self.view, None)
        return [(t.database, t.name) for t in
                self.catalogue.table_summaries(whole, tables=pairs)]

    def schemas(self) -> set[str]:
        whole, pairs = _readable(self.view, None)
        return {d for d, n in self.catalogue.table_counts(whole).items() if n} | \
            {d for d, _ in pairs}

    def searched(self) -> list[str]:
        """Schemas searched for unqualified names: the visible databases (of other
        users' schemas, those with tables shared with the caller)."""
        return [d for d, db in self.dbs.items()
                if self.view.whole(db) or any(s == d for s, _ in self.view.shared)]
