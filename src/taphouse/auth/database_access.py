"""Which groups may read a restricted catalogue database.

A database is public (``databases.public``, owned by the catalogue) or restricted to
the groups listed in ``database_groups``. A restricted database with no group is
readable only by administrators.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from taphouse.auth.errors import AccountError, UnknownObject
from taphouse.catalogue.model import DatabaseMeta
from taphouse.metadata import MetadataDB


def groups_of_database(meta: MetadataDB, database_id: int) -> frozenset[str]:
    """Names of the groups allowed to read a database."""
    rows = meta.query("SELECT g.name FROM database_groups dg JOIN groups g ON g.id=dg.group_id"
                      " WHERE dg.database_id=?", (database_id,))
    return frozenset(r[0] for r in rows)


def groups_of_databases(meta: MetadataDB, database_ids: Iterable[int]
                        ) -> dict[int, frozenset[str]]:
    """:func:`groups_of_database` of many databases in one query."""
    ids = sorted(set(database_ids))
    out: dict[int, set[str]] = {i: set() for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = meta.query("SELECT dg.database_id, g.name FROM database_groups dg JOIN groups g"
                          f" ON g.id=dg.group_id WHERE dg.database_id IN"
                          f" ({','.join('?' * len(chunk))})", chunk)
        for r in rows:
            out[r[0]].add(r[1])
    return {i: frozenset(g) for i, g in out.items()}


class CatalogueDatabases(Protocol):
    """What :class:`DatabaseAccess` needs of the catalogue (:class:`~taphouse.catalogue.store.CatalogueStore`)."""

    def database(self, name: str) -> DatabaseMeta | None: ...

    def databases(self, kind: str | None = None) -> list[DatabaseMeta]: ...

    def set_public(self, name: str, public: bool) -> None: ...


class DatabaseAccess:
    """Restricts catalogue databases to groups, or makes them public again."""

    def __init__(self, meta: MetadataDB, catalogue: CatalogueDatabases) -> None:
        self.meta = meta
        self.catalogue = catalogue

    def restrict(self, database: str, groups: Iterable[str]) -> dict[str, Any]:
        """Make ``database`` readable only by members of ``groups`` (and administrators)."""
        db, db_id = self._database(database)
        names = sorted({g.strip().lower() for g in groups if g.strip()})
        with self.meta.transaction() as con:
            ids = []
            for name in names:
                row = con.execute("SELECT id FROM groups WHERE name=?", (name,)).fetchone()
                if row is None:
                    raise UnknownObject(f"no group named {name!r}; create it first"
                                        " (`taphouse group add NAME`)")
                ids.append(row[0])
            con.execute("DELETE FROM database_groups WHERE database_id=?", (db_id,))
            con.executemany("INSERT INTO database_groups(database_id, group_id) VALUES (?,?)",
                            [(db_id, i) for i in ids])
        # Groups first, then the switch: the database is never public and group-less.
        self.catalogue.set_public(db.name, False)
        return self.describe(db.name)

    def make_public(self, database: str) -> dict[str, Any]:
        """Readable by everybody (anonymous callers too, when anonymous read is on)."""
        db, db_id = self._database(database)
        self.catalogue.set_public(db.name, True)
        self.meta.execute("DELETE FROM database_groups WHERE database_id=?", (db_id,))
        return self.describe(db.name)

    def describe(self, database: str) -> dict[str, Any]:
        db, db_id = self._database(database)
        return {"database": db.name, "public": db.public,
                "groups": sorted(groups_of_database(self.meta, db_id))}

    def all(self) -> list[dict[str, Any]]:
        return [self.describe(db.name) for db in self.catalogue.databases(kind="catalogue")]

    def _database(self, name: str) -> tuple[DatabaseMeta, int]:
        """The catalogue database ``name`` and its id."""
        db = self.catalogue.database(name)
        if db is None or db.database_id is None:  # a stored database always has an id
            raise UnknownObject(f"no database named {name!r}")
        if db.kind != "catalogue":
            raise AccountError(f"{db.name!r} is a user schema; its owner shares it")
        return db, db.database_id
