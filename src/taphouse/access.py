"""Building the scope of one request: what this caller may see, and nothing else."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from taphouse.adql.scope import Scope
from taphouse.auth.identity import Identity
from taphouse.auth.policy import ReadPolicy
from taphouse.catalogue.model import DatabaseMeta, TableMeta, TableSummary
from taphouse.catalogue.store import CatalogueStore
from taphouse.engine.duckdb import DuckDBEngine


class ScopeBuilder:
    """Turns (identity, workspace, uploads) into an ADQL :class:`Scope`."""

    def __init__(self, catalogue: CatalogueStore, engine: DuckDBEngine,
                 policy: ReadPolicy) -> None:
        self.catalogue = catalogue
        self.engine = engine
        self.policy = policy

    def visible_databases(self, identity: Identity,
                          workspace: Sequence[str] | None = None) -> list[DatabaseMeta]:
        """Databases the caller may read; with a workspace, only its databases and the
        caller's own schema."""
        result = []
        for db in self.catalogue.databases():
            if not self.policy.can_read(identity, db):
                continue
            # A workspace holds its listed databases (shared user schemas included)
            # plus the caller's own schema.
            if (workspace is not None and db.name not in workspace
                    and db.name != identity.user_schema):
                continue
            result.append(db)
        return result

    def visible_tables(self, identity: Identity,
                       workspace: Sequence[str] | None = None) -> list[TableMeta]:
        """Tables of the visible databases; in another user's schema only the tables
        shared with the caller (the others do not exist for them)."""
        from taphouse.userspace.shares import shared_tables

        kinds = {db.name: db.kind for db in self.visible_databases(identity, workspace)}
        shared: set[tuple[str, str]] | None = None
        result = []
        for t in self.catalogue.tables(databases=kinds):
            if kinds.get(t.database) == "user" and t.database != identity.user_schema:
                if shared is None:
                    shared = shared_tables(self.policy.meta, identity)
                if (t.database, t.name) not in shared:
                    continue
            result.append(t)
        return result

    def visible_summaries(self, identity: Identity, databases: Sequence[str] | None = None,
                          *, search: str | None = None, offset: int = 0,
                          limit: int | None = None) -> list[TableSummary]:
        """Summaries (no columns) of the tables :meth:`visible_tables` would give, of
        all visible databases or of those named: cheap with many thousands of tables."""
        whole, pairs = self._readable(identity, databases)
        return self.catalogue.table_summaries(whole, tables=pairs, search=search,
                                              offset=offset, limit=limit)

    def visible_counts(self, identity: Identity) -> list[tuple[DatabaseMeta, int]]:
        """The visible databases with the number of tables the caller sees in each."""
        dbs = self.visible_databases(identity)
        whole, pairs = self._readable(identity, None, dbs)
        counts = self.catalogue.table_counts(whole)
        for d, _ in pairs:
            counts[d] = counts.get(d, 0) + 1
        return [(db, counts.get(db.name, 0)) for db in dbs]

    def _readable(self, identity: Identity, databases: Sequence[str] | None,
                  visible: list[DatabaseMeta] | None = None,
                  ) -> tuple[list[str], list[tuple[str, str]]]:
        """(databases the caller sees whole, (database, table) pairs shared with them in
        other users' schemas), among ``databases`` if given."""
        from taphouse.userspace.shares import shared_tables

        whole, partial = [], set()
        for db in self.visible_databases(identity) if visible is None else visible:
            if databases is not None and db.name not in databases:
                continue
            if db.kind == "user" and db.name != identity.user_schema:
                partial.add(db.name)
            else:
                whole.append(db.name)
        pairs = [(d, t) for d, t in shared_tables(self.policy.meta, identity)
                 if d in partial] if partial else []
        return whole, pairs

    def visible_table(self, identity: Identity, database: str, name: str) -> TableMeta | None:
        """One table with its columns if the caller may see it, else None."""
        from taphouse.userspace.shares import shared_tables

        db = self.catalogue.database(database)
        if db is None or not self.policy.can_read(identity, db):
            return None
        if db.kind == "user" and db.name != identity.user_schema and \
                (db.name, name.lower()) not in shared_tables(self.policy.meta, identity):
            return None
        return self.catalogue.table(db.name, name)

    def build(self, identity: Identity, workspace: Sequence[str] | None = None,
              uploads: dict[str, tuple[object, TableMeta]] | None = None, *,
              relation: Callable[[TableMeta], str] | None = None) -> Scope:
        """The scope for one query: visible tables, TAP_SCHEMA, TAP_UPLOAD tables.
        ``relation`` gives the backend relation of a stored table (a request's
        :class:`~taphouse.engine.duckdb.VersionLease`; default: the engine's, unheld)."""
        from taphouse.tap.tap_schema import tap_schema_meta, tap_schema_tables

        stored = self.visible_tables(identity, workspace)
        tables: dict[tuple[str, str], TableMeta] = {(t.database, t.name): t for t in stored}
        inline: dict[tuple[str, str], object] = {}
        built: dict[tuple[str, str], object] = {}

        def tap_schema_data(key: tuple[str, str]) -> object:
            # TAP_SCHEMA rows are built only when a query reads them, once per request.
            if not built:
                descriptions = {d.name: d.description for d in self.catalogue.databases()}
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
        search = [t.database for t in stored]
        search = sorted(set(search), key=lambda s: (s.startswith("user_"), s))
        return Scope(tables=tables, relation=relation or self.engine.relation,
                     schema_aliases=aliases,
                     search_path=search, inline=inline)
