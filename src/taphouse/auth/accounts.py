"""User accounts and groups, stored in the metadata database.

User ids are stable and never reused (``AUTOINCREMENT``); names are lower-case.
Every change of a user's credentials or status increments ``credentials_version``, which
the Basic cache compares, so a password change or a disable takes effect at once, also
when done by another process (the command line).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from taphouse.auth.errors import AccountError, UnknownObject
from taphouse.auth.passwords import PasswordHashing, check_password_rules
from taphouse.auth.tokens import iso_time as _iso
from taphouse.metadata import MetadataDB

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
# Group names never become SQL identifiers (user names do: schema user_<name>), so they
# may also hold hyphens, as in "survey-team".
_GROUP_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")


@dataclass(frozen=True)
class User:
    """One account (without its password hash)."""

    id: int
    name: str
    is_admin: bool
    disabled: bool
    created: float
    password_changed: float
    credentials_version: int
    groups: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict:
        return {"id": self.id, "username": self.name, "is_admin": self.is_admin,
                "disabled": self.disabled, "groups": sorted(self.groups),
                "created": _iso(self.created), "password_changed": _iso(self.password_changed)}


@dataclass(frozen=True)
class Group:
    name: str
    description: str
    members: tuple[str, ...]

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description,
                "members": list(self.members)}


def check_account_name(name: str, what: str = "user") -> str:
    """Validate a user or group name; return it lower-case.

    User names: a letter, then letters, digits or ``_`` (they name the schema
    ``user_<name>``); group names may also hold ``-``. 2 to 32 characters.
    """
    lname = name.strip().lower()
    group = what == "group"
    if not (_GROUP_NAME if group else _NAME).match(lname):
        allowed = "letters, digits, '_' or '-'" if group else "letters, digits or '_'"
        raise AccountError(f"invalid {what} name {name!r}: use 2 to 32 characters, a letter"
                           f" first, then {allowed}")
    return lname


class AccountStore:
    """Users and groups.

    Parameters
    ----------
    meta
        The metadata database.
    hashing
        Password hashing (argon2id).
    password_min_length
        Minimum password length accepted by :meth:`add_user` and :meth:`set_password`.
    clock
        Returns the current time in seconds since the epoch.
    """

    def __init__(self, meta: MetadataDB, hashing: PasswordHashing, *,
                 password_min_length: int = 10,
                 clock: Callable[[], float] = time.time) -> None:
        self.meta = meta
        self.hashing = hashing
        self.password_min_length = password_min_length
        self.clock = clock

    # --- users ---------------------------------------------------------------------
    def add_user(self, name: str, password: str, *, is_admin: bool = False,
                 groups: Iterable[str] = ()) -> User:
        """Create an account; the groups must exist."""
        lname = check_account_name(name)
        check_password_rules(lname, password, self.password_min_length)
        digest = self.hashing.hash(password)
        now = self.clock()
        with self.meta.transaction() as con:
            if con.execute("SELECT 1 FROM users WHERE name=?", (lname,)).fetchone():
                raise AccountError(f"user {lname!r} already exists")
            cur = con.execute(
                "INSERT INTO users(name, password_hash, password_changed, is_admin, created)"
                " VALUES (?,?,?,?,?)", (lname, digest, now, int(is_admin), now))
            user_id = cur.lastrowid
            assert user_id is not None  # an INSERT's row id
            for g in groups:
                self._add_member(con, g, user_id)
        return self.require(lname)

    def user(self, name: str) -> User | None:
        row = self.meta.query_one("SELECT * FROM users WHERE name=?", (name.strip().lower(),))
        return self._user(row) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        row = self.meta.query_one("SELECT * FROM users WHERE id=?", (user_id,))
        return self._user(row) if row else None

    def require(self, name: str) -> User:
        user = self.user(name)
        if user is None:
            raise UnknownObject(f"no user named {name!r}; see `taphouse user list`")
        return user

    def users(self) -> list[User]:
        return [self._user(r) for r in self.meta.query("SELECT * FROM users ORDER BY name")]

    def password_hash(self, name: str) -> tuple[User, str] | None:
        """The user and their stored hash (for verification only)."""
        row = self.meta.query_one("SELECT * FROM users WHERE name=?", (name.strip().lower(),))
        return (self._user(row), row["password_hash"]) if row else None

    def set_password(self, name: str, password: str) -> User:
        """Change a password; revokes every token of the user."""
        user = self.require(name)
        check_password_rules(user.name, password, self.password_min_length)
        digest = self.hashing.hash(password)
        now = self.clock()
        with self.meta.transaction() as con:
            con.execute("UPDATE users SET password_hash=?, password_changed=?,"
                        " credentials_version=credentials_version+1 WHERE id=?",
                        (digest, now, user.id))
            _revoke_all(con, user.id, now)
        return self.require(user.name)

    def rehash(self, user_id: int, password: str) -> None:
        """Store a new hash of the same password (after the hashing parameters changed)."""
        self.meta.execute("UPDATE users SET password_hash=? WHERE id=?",
                          (self.hashing.hash(password), user_id))

    def set_disabled(self, name: str, disabled: bool) -> User:
        """Disable (revoking every token) or re-enable an account."""
        user = self.require(name)
        now = self.clock()
        with self.meta.transaction() as con:
            con.execute("UPDATE users SET disabled=?, credentials_version=credentials_version+1"
                        " WHERE id=?", (int(disabled), user.id))
            if disabled:
                _revoke_all(con, user.id, now)
        return self.require(user.name)

    def set_admin(self, name: str, is_admin: bool) -> User:
        user = self.require(name)
        self.meta.execute("UPDATE users SET is_admin=?, credentials_version="
                          "credentials_version+1 WHERE id=?", (int(is_admin), user.id))
        return self.require(user.name)

    def delete_user(self, name: str) -> None:
        """Delete an account with its tokens and memberships (its id is never reused)."""
        user = self.require(name)
        with self.meta.transaction() as con:
            con.execute("DELETE FROM users WHERE id=?", (user.id,))

    def revoke_tokens(self, name: str) -> int:
        """Revoke every token of a user; returns how many were live."""
        user = self.require(name)
        with self.meta.transaction() as con:
            return _revoke_all(con, user.id, self.clock())

    def user_ids(self, names: Iterable[str]) -> dict[str, int]:
        """Ids of the accounts among ``names`` (names matching none are left out)."""
        return self._ids("users", names)

    def group_ids(self, names: Iterable[str]) -> dict[str, int]:
        """Ids of the groups among ``names`` (names matching none are left out)."""
        return self._ids("groups", names)

    def _ids(self, table: str, names: Iterable[str]) -> dict[str, int]:
        wanted = sorted({n.strip().lower() for n in names if isinstance(n, str)})
        out: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.meta.query(f"SELECT name, id FROM {table} WHERE name IN ({marks})",
                                   chunk)
            out.update({r[0]: r[1] for r in rows})
        return out

    def groups_of(self, user_id: int) -> frozenset[str]:
        rows = self.meta.query("SELECT g.name FROM memberships m JOIN groups g"
                               " ON g.id=m.group_id WHERE m.user_id=?", (user_id,))
        return frozenset(r[0] for r in rows)

    # --- groups --------------------------------------------------------------------
    def add_group(self, name: str, description: str = "") -> Group:
        lname = check_account_name(name, "group")
        try:
            self.meta.execute("INSERT INTO groups(name, description, created) VALUES (?,?,?)",
                              (lname, description, self.clock()))
        except sqlite3.IntegrityError:
            raise AccountError(f"group {lname!r} already exists") from None
        return self.group(lname)

    def group(self, name: str) -> Group:
        lname = name.strip().lower()
        row = self.meta.query_one("SELECT * FROM groups WHERE name=?", (lname,))
        if row is None:
            raise UnknownObject(f"no group named {name!r}; see `taphouse group list`")
        members = self.meta.query("SELECT u.name FROM memberships m JOIN users u"
                                  " ON u.id=m.user_id WHERE m.group_id=? ORDER BY u.name",
                                  (row["id"],))
        return Group(row["name"], row["description"], tuple(r[0] for r in members))

    def groups(self) -> list[Group]:
        return [self.group(r[0]) for r in self.meta.query("SELECT name FROM groups ORDER BY name")]

    def delete_group(self, name: str) -> None:
        group = self.group(name)
        self.meta.execute("DELETE FROM groups WHERE name=?", (group.name,))

    def add_member(self, group: str, username: str) -> Group:
        user = self.require(username)
        with self.meta.transaction() as con:
            self._add_member(con, group, user.id)
        return self.group(group)

    def remove_member(self, group: str, username: str) -> Group:
        user = self.require(username)
        g = self.group(group)
        self.meta.execute("DELETE FROM memberships WHERE user_id=? AND group_id="
                          "(SELECT id FROM groups WHERE name=?)", (user.id, g.name))
        return self.group(g.name)

    # --- internals -----------------------------------------------------------------
    def _add_member(self, con: sqlite3.Connection, group: str, user_id: int) -> None:
        row = con.execute("SELECT id FROM groups WHERE name=?",
                          (group.strip().lower(),)).fetchone()
        if row is None:
            raise UnknownObject(f"no group named {group!r}; create it first"
                                " (`taphouse group add NAME`)")
        con.execute("INSERT OR IGNORE INTO memberships(user_id, group_id) VALUES (?,?)",
                    (user_id, row[0]))

    def _user(self, row: sqlite3.Row) -> User:
        return User(id=row["id"], name=row["name"], is_admin=bool(row["is_admin"]),
                    disabled=bool(row["disabled"]), created=row["created"],
                    password_changed=row["password_changed"],
                    credentials_version=row["credentials_version"],
                    groups=self.groups_of(row["id"]))


def _revoke_all(con: sqlite3.Connection, user_id: int, now: float) -> int:
    cur = con.execute("UPDATE tokens SET revoked=? WHERE user_id=?"
                      " AND (revoked IS NULL OR revoked > ?)"
                      " AND (expires IS NULL OR expires > ?)", (now, user_id, now, now))
    return cur.rowcount
