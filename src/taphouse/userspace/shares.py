"""Read access to user tables granted to other users and groups.

Sharing is per table and read-only. A table shared with a caller makes its schema
``user_<owner>`` visible to that caller with just the shared tables in it.
"""

from __future__ import annotations

from taphouse.auth.identity import Identity
from taphouse.metadata import MetadataDB
from taphouse.userspace.errors import UserSpaceError
from taphouse.userspace.names import check_identifier


def shared_tables(meta: MetadataDB, identity: Identity) -> set[tuple[str, str]]:
    """``{(schema, table)}`` of other users' tables shared with this caller."""
    if identity.username is None:
        return set()
    groups = sorted(identity.groups)
    marks = ",".join("?" * len(groups))
    group_clause = f" OR (s.grantee_kind='group' AND s.grantee IN ({marks}))" if groups else ""
    rows = meta.query(
        "SELECT DISTINCT d.name AS db, t.name AS tab FROM user_shares s"
        " JOIN tables t ON t.id=s.table_id JOIN databases d ON d.id=t.database_id"
        " WHERE d.kind='user' AND ((s.grantee_kind='user' AND s.grantee=?)" + group_clause + ")",
        (identity.username, *groups))
    return {(r["db"], r["tab"]) for r in rows}


def get_shares(meta: MetadataDB, table_id: int) -> dict[str, list[str]]:
    """``{"users": [...], "groups": [...]}`` a table is shared with."""
    rows = meta.query("SELECT grantee_kind, grantee FROM user_shares WHERE table_id=?"
                      " ORDER BY grantee", (table_id,))
    return {"users": [r["grantee"] for r in rows if r["grantee_kind"] == "user"],
            "groups": [r["grantee"] for r in rows if r["grantee_kind"] == "group"]}


def set_shares(meta: MetadataDB, table_id: int, users: list[str], groups: list[str],
               *, owner: str) -> dict[str, list[str]]:
    """Replace the share list of a table; users and groups must exist."""
    users = sorted({check_identifier(_text(u, "user"), "user") for u in users} - {owner})
    groups = sorted({_text(g, "group") for g in groups})
    missing = [u for u in users if not _exists(meta, "users", u)]
    missing += [f"group {g}" for g in groups if not _exists(meta, "groups", g)]
    if missing:
        raise UserSpaceError(f"cannot share with unknown {', '.join(missing)}")
    with meta.transaction() as con:
        con.execute("DELETE FROM user_shares WHERE table_id=?", (table_id,))
        con.executemany("INSERT INTO user_shares(table_id, grantee_kind, grantee)"
                        " VALUES (?,?,?)",
                        [(table_id, "user", u) for u in users]
                        + [(table_id, "group", g) for g in groups])
        # Scopes and TAP_SCHEMA caches compare the catalogue generation.
        con.execute("UPDATE catalogue_generation SET value=value+1 WHERE id=1")
    return get_shares(meta, table_id)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserSpaceError(f"a {what} to share with must be a non-empty name")
    return value.strip()


def _exists(meta: MetadataDB, table: str, name: str) -> bool:
    try:
        return meta.query_one(f"SELECT 1 FROM {table} WHERE name=?", (name,)) is not None
    except Exception:  # noqa: BLE001  (accounts not installed: nobody to check against)
        return True


def schema_shared_with(meta: MetadataDB, identity: Identity, schema: str) -> bool:
    """Whether at least one table of ``schema`` is shared with this caller."""
    if identity.username is None:
        return False
    groups = sorted(identity.groups)
    marks = ",".join("?" * len(groups))
    group_clause = f" OR (s.grantee_kind='group' AND s.grantee IN ({marks}))" if groups else ""
    row = meta.query_one(
        "SELECT 1 FROM user_shares s JOIN tables t ON t.id=s.table_id"
        " JOIN databases d ON d.id=t.database_id WHERE d.name=?"
        " AND ((s.grantee_kind='user' AND s.grantee=?)" + group_clause + ") LIMIT 1",
        (schema, identity.username, *groups))
    return row is not None
