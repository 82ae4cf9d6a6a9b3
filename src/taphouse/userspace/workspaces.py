"""Workspaces: named sets of databases a user queries together, each with its own TAP
endpoint ``/ws/<user>/<workspace>/tap`` whose scope is exactly those databases plus the
user's own schema. Owned by the stable user id (a re-created name inherits none)."""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any

from taphouse.auth.identity import Identity
from taphouse.metadata import MetadataDB
from taphouse.userspace.errors import TableConflict, UnknownTable, UserSpaceError
from taphouse.userspace.names import check_identifier


@dataclass
class Workspace:
    owner: str
    name: str
    databases: list[str]
    description: str = ""
    created: str | None = None

    def to_dict(self, public_url: str) -> dict[str, Any]:
        return {"name": self.name, "databases": list(self.databases),
                "description": self.description, "created": self.created,
                "tap_url": f"{public_url}/ws/{self.owner}/{self.name}/tap"}


class Workspaces:
    """The workspaces of every user, stored in the metadata database.

    ``readable`` is a callable ``(identity) -> set of database names`` the caller may
    read: a workspace may list only those (the user's own schema is always included and
    need not be listed).
    """

    def __init__(self, meta: MetadataDB, readable: Any) -> None:
        self.meta = meta
        self.readable = readable

    def list(self, identity: Identity) -> list[Workspace]:
        rows = self.meta.query("SELECT * FROM workspaces WHERE owner_id=? ORDER BY name",
                               (_owner(identity),))
        return [_workspace(r) for r in rows]

    def get(self, owner_id: int, name: str) -> Workspace | None:
        """The workspace ``name`` of the user with id ``owner_id``, or None."""
        row = self.meta.query_one("SELECT * FROM workspaces WHERE owner_id=? AND name=?",
                                  (owner_id, name))
        return _workspace(row) if row else None

    def get_own(self, identity: Identity, name: str) -> Workspace:
        ws = self.get(_owner(identity), name) if isinstance(name, str) else None
        if ws is None:
            raise UnknownTable(f"unknown workspace {name!r}")
        return ws

    def remove_owner(self, owner_id: int) -> int:
        """Delete every workspace of the user with id ``owner_id``; returns how many."""
        return self.meta.execute("DELETE FROM workspaces WHERE owner_id=?",
                                 (owner_id,)).rowcount

    def create(self, identity: Identity, name: Any, databases: Any,
               description: str = "") -> Workspace:
        owner = _owner(identity)
        name = check_identifier(name, "workspace")
        dbs = self._check_databases(identity, databases)
        if self.get(owner, name) is not None:
            raise TableConflict(f"workspace {name!r} already exists")
        try:
            self.meta.execute("INSERT INTO workspaces(owner_id, owner, name, databases,"
                              " description) VALUES (?,?,?,?,?)",
                              (owner, identity.username, name, json.dumps(dbs),
                               str(description or "")))
        except Exception as exc:
            if "UNIQUE" in str(exc):
                raise TableConflict(f"workspace {name!r} already exists") from None
            raise
        return self.get_own(identity, name)

    def update(self, identity: Identity, name: str, *, databases: Any = None,
               description: Any = None, new_name: Any = None) -> Workspace:
        ws = self.get_own(identity, name)
        if databases is not None:
            ws.databases = self._check_databases(identity, databases)
        if description is not None:
            ws.description = str(description)
        target = ws.name
        owner = _owner(identity)
        if new_name is not None and new_name != ws.name:
            target = check_identifier(new_name, "workspace")
            if self.get(owner, target) is not None:
                raise TableConflict(f"workspace {target!r} already exists")
        self.meta.execute("UPDATE workspaces SET name=?, databases=?, description=?"
                          " WHERE owner_id=? AND name=?",
                          (target, json.dumps(ws.databases), ws.description, owner, name))
        return self.get_own(identity, target)

    def delete(self, identity: Identity, name: str) -> None:
        self.get_own(identity, name)
        self.meta.execute("DELETE FROM workspaces WHERE owner_id=? AND name=?",
                          (_owner(identity), name))

    def _check_databases(self, identity: Identity, databases: Any) -> builtins.list[str]:
        if not isinstance(databases, list) or not all(isinstance(d, str) for d in databases):
            raise UserSpaceError('"databases" must be a list of database names')
        readable = self.readable(identity)
        own = f"user_{identity.username}"
        out: list[str] = []
        for d in databases:
            name = d.strip().lower()
            if name in ("mydb", own):
                continue  # always part of the workspace
            if name not in readable:
                raise UserSpaceError(f"unknown database {d!r}")
            if name not in out:
                out.append(name)
        return out


def _owner(identity: Identity) -> int:
    if identity.user_id is None:
        from taphouse.auth.errors import AuthError

        raise AuthError("log in to use workspaces")
    return identity.user_id


def _workspace(row: Any) -> Workspace:
    return Workspace(owner=row["owner"], name=row["name"],
                     databases=json.loads(row["databases"]),
                     description=row["description"], created=row["created"])
