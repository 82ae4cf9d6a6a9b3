"""Who may read which database. Anything a caller may not read is, for them, absent.

This decides for catalogue databases (public, or restricted to groups), the caller's own
user schema and archived schemas. Other users' schemas are visible through the tables
shared with the caller, which user space knows: :class:`taphouse.access.ScopeBuilder`
puts both together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from taphouse.auth.database_access import groups_of_database, groups_of_databases
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import DatabaseMeta
from taphouse.metadata import MetadataDB


class ReadPolicy:
    """Decides read access to databases (catalogue databases and user schemas)."""

    def __init__(self, meta: MetadataDB) -> None:
        self.meta = meta

    def can_read(self, identity: Identity, db: DatabaseMeta) -> bool:
        """Whether the caller may read ``db`` on their own rights (another user's schema:
        never here; shares are the scope builder's)."""
        return self._decide(identity, db, lambda: self.database_groups(db))

    def readable(self, identity: Identity, dbs: Iterable[DatabaseMeta]) -> list[DatabaseMeta]:
        """Those of ``dbs`` that :meth:`can_read` allows, with one query for all the
        restricted databases' groups."""
        dbs = list(dbs)
        restricted = [db.database_id for db in dbs
                      if db.kind not in ("user", "archived") and not db.public
                      and db.database_id is not None]
        groups: dict[int, frozenset[str]] = {}
        if restricted and identity.groups and not identity.is_admin:
            groups = groups_of_databases(self.meta, restricted)
        def of(db: DatabaseMeta) -> Callable[[], frozenset[str]]:
            return lambda: groups.get(db.database_id or 0, frozenset())

        return [db for db in dbs if self._decide(identity, db, of(db))]

    @staticmethod
    def _decide(identity: Identity, db: DatabaseMeta, groups: Callable[[], frozenset[str]]
                ) -> bool:
        if db.kind == "user":
            # Owned by the stable user id: a schema left by a deleted account that had
            # this name is not the new account's.
            return (identity.user_id is not None and db.owner_id == identity.user_id
                    and identity.user_schema == db.name)
        if db.kind == "archived":  # a deleted user's schema, kept for the operator
            return identity.is_admin
        if db.public or identity.is_admin:
            return True
        return bool(identity.groups) and bool(identity.groups & groups())

    def database_groups(self, db: DatabaseMeta) -> frozenset[str]:
        """Groups allowed to read a restricted database."""
        if db.database_id is None:
            return frozenset()
        return groups_of_database(self.meta, db.database_id)
