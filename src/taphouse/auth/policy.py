"""Who may read which database. Anything a caller may not read is, for them, absent."""

from __future__ import annotations

from taphouse.auth.database_access import groups_of_database
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import DatabaseMeta
from taphouse.metadata import MetadataDB


class ReadPolicy:
    """Decides read access to databases (catalogue databases and user schemas)."""

    def __init__(self, meta: MetadataDB) -> None:
        self.meta = meta

    def can_read(self, identity: Identity, db: DatabaseMeta) -> bool:
        if db.kind == "user":
            # Owned by the stable user id: a schema left by a deleted account that had
            # this name is not the new account's.
            own = (identity.user_id is not None and db.owner_id == identity.user_id
                   and identity.user_schema == db.name)
            return own or self._shared_with(identity, db)
        if db.kind == "archived":  # a deleted user's schema, kept for the operator
            return identity.is_admin
        if db.public or identity.is_admin:
            return True
        return bool(identity.groups & self.database_groups(db))

    def database_groups(self, db: DatabaseMeta) -> frozenset[str]:
        """Groups allowed to read a restricted database."""
        if db.database_id is None:
            return frozenset()
        return groups_of_database(self.meta, db.database_id)

    def _shared_with(self, identity: Identity, db: DatabaseMeta) -> bool:
        # Read shares are per table (taphouse.userspace.shares): a schema is visible to
        # whoever has at least one of its tables shared with them.
        from taphouse.userspace.shares import schema_shared_with

        return schema_shared_with(self.meta, identity, db.name)
