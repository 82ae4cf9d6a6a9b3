"""Read access to user tables granted to other users and groups.

Sharing is per table and read-only. A table shared with a caller makes its schema
``user_<owner>`` visible to that caller with just the shared tables in it.

Grantees are kept by their stable id (``grantee_id``): a share made to ``bob`` is a
share to that account, not to whoever holds the name later. A name that matches no
account is kept in the list as given but grants nothing (``grantee_id`` NULL), so the
answer does not tell whether an account of that name exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from taphouse.auth.identity import Identity
from taphouse.catalogue.store import CatalogueStore
from taphouse.metadata import MetadataDB
from taphouse.userspace.errors import UserSpaceError
from taphouse.userspace.lineage import outside_groups, restricted_sources
from taphouse.userspace.names import check_identifier

if TYPE_CHECKING:
    from taphouse.remotes.registry import RemoteRegistry


class Grantees(Protocol):
    """Who can be granted a share: auth's accounts and groups, by name
    (:class:`taphouse.auth.accounts.AccountStore`)."""

    def user_ids(self, names: Iterable[str]) -> dict[str, int]: ...

    def group_ids(self, names: Iterable[str]) -> dict[str, int]: ...


def shared_table_ids(meta: MetadataDB, identity: Identity, grantees: Grantees) -> set[int]:
    """Ids of the tables shared with this caller (by name or through a group)."""
    if identity.user_id is None:
        return set()
    clause = "(grantee_kind='user' AND grantee_id=?)"
    args: list[object] = [identity.user_id]
    group_ids = sorted(grantees.group_ids(identity.groups).values()) if identity.groups else []
    if group_ids:
        clause += (" OR (grantee_kind='group' AND grantee_id IN"
                   f" ({','.join('?' * len(group_ids))}))")
        args += group_ids
    rows = meta.query("SELECT DISTINCT table_id FROM user_shares WHERE " + clause, args)
    return {r[0] for r in rows}


class Shares:
    """The shares of one platform, as the scope builder asks for them."""

    def __init__(self, meta: MetadataDB, catalogue: CatalogueStore,
                 grantees: Grantees, remotes: RemoteRegistry | None = None) -> None:
        self.meta = meta
        self.catalogue = catalogue
        self.grantees = grantees
        #: The remote registry (restricted remotes among a table's sources), if any.
        self.remotes = remotes

    def tables(self, identity: Identity) -> set[tuple[str, str]]:
        """``{(schema, table)}`` of other users' tables shared with this caller (the
        catalogue names the tables). A table holding rows of a restricted source the
        caller may not read (appended after it was shared, or the caller left the
        group) is left out: its rows are not for them (:mod:`.lineage`)."""
        ids = shared_table_ids(self.meta, identity, self.grantees)
        if not ids:
            return set()
        out = set()
        for db, name, kind in self.catalogue.table_names(ids).values():
            if kind != "user":
                continue
            table = self.catalogue.table(db, name)
            if table is None or outside_groups(
                    restricted_sources(table, self.catalogue, self.remotes),
                    identity.groups, is_admin=identity.is_admin):
                continue
            out.add((db, name))
        return out

    def of(self, table_id: int) -> dict[str, list[str]]:
        """:func:`get_shares` of one table."""
        return get_shares(self.meta, table_id)

    def of_many(self, table_ids: Iterable[int]) -> dict[int, dict[str, list[str]]]:
        """:func:`shares_of` these tables (one query)."""
        return shares_of(self.meta, table_ids)

    def replace(self, table_id: int, users: list[str], groups: list[str], *,
                owner: str) -> dict[str, list[str]]:
        """:func:`set_shares` with this platform's grantees."""
        return set_shares(self.meta, table_id, users, groups, owner=owner,
                          grantees=self.grantees)


def get_shares(meta: MetadataDB, table_id: int) -> dict[str, list[str]]:
    """``{"users": [...], "groups": [...]}`` a table is shared with."""
    return shares_of(meta, [table_id])[table_id]


def shares_of(meta: MetadataDB, table_ids: Iterable[int]) -> dict[int, dict[str, list[str]]]:
    """:func:`get_shares` of many tables in one query."""
    ids = sorted(set(table_ids))
    out: dict[int, dict[str, list[str]]] = {i: {"users": [], "groups": []} for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = meta.query("SELECT table_id, grantee_kind, grantee FROM user_shares WHERE"
                          f" table_id IN ({','.join('?' * len(chunk))}) ORDER BY grantee",
                          chunk)
        for r in rows:
            kind = "users" if r["grantee_kind"] == "user" else "groups"
            out[r["table_id"]][kind].append(r["grantee"])
    return out


def remove_table_shares(meta: MetadataDB, table_ids: Iterable[int]) -> None:
    """Forget every share of these tables (their schema is being archived)."""
    ids = list(table_ids)
    with meta.transaction() as con:
        con.executemany("DELETE FROM user_shares WHERE table_id=?", [(i,) for i in ids])


def set_shares(meta: MetadataDB, table_id: int, users: list[str], groups: list[str],
               *, owner: str, grantees: Grantees) -> dict[str, list[str]]:
    """Replace the share list of a table. Names are checked for form only: one that
    matches no account or group is listed but grants nothing (see the module doc)."""
    users = sorted({check_identifier(_text(u, "user").lower(), "user") for u in users}
                   - {owner})
    groups = sorted({_text(g, "group").lower() for g in groups})
    user_ids = grantees.user_ids(users)
    group_ids = grantees.group_ids(groups)
    with meta.transaction() as con:
        con.execute("DELETE FROM user_shares WHERE table_id=?", (table_id,))
        con.executemany("INSERT INTO user_shares(table_id, grantee_kind, grantee, grantee_id)"
                        " VALUES (?,?,?,?)",
                        [(table_id, "user", u, user_ids.get(u)) for u in users]
                        + [(table_id, "group", g, group_ids.get(g)) for g in groups])
    return get_shares(meta, table_id)


def remove_grantee(meta: MetadataDB, user_id: int) -> int:
    """Remove every share made to the user with id ``user_id`` (the account is being
    deleted); returns how many."""
    with meta.transaction() as con:
        count = con.execute("DELETE FROM user_shares WHERE grantee_kind='user'"
                            " AND grantee_id=?", (user_id,)).rowcount
    return count


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserSpaceError(f"a {what} to share with must be a non-empty name")
    return value.strip()

