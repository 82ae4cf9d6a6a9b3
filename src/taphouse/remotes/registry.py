"""Registered remote TAP services and one shared cache of their metadata.

:class:`RemoteRegistry` registers a remote (its name checked, its capabilities and
tables fetched through :mod:`taphouse.outbound` before anything is stored), refreshes
it (on demand, or when ``refresh_interval`` has passed), records its health, removes
it, and tells which remotes an identity may see. Each remote's metadata is stored once
(not per workspace or user), one row per table.
"""

from __future__ import annotations

import calendar
import ipaddress
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from taphouse.auth.identity import Identity
from taphouse.metadata import MetadataDB
from taphouse.outbound import Outbound, OutboundPolicy, Resolver, system_resolver
from taphouse.remotes.client import RemoteTap, RetryPolicy
from taphouse.remotes.credentials import secret_name
from taphouse.remotes.errors import RemoteError, RemoteNotFound, RemoteUnavailable
from taphouse.remotes.model import (
    AUTH_KINDS,
    NAME_PATTERN,
    RESERVED_NAMES,
    RESERVED_PREFIXES,
    Capabilities,
    Remote,
    RemoteColumn,
    RemoteTable,
)
from taphouse.remotes.vosi import MetadataLimits, clean, richness
from taphouse.secrets import Secret, SecretError, SecretStore

log = logging.getLogger("taphouse.remotes")


@dataclass(frozen=True)
class RemoteConfig:
    """How the platform talks to remotes (from :class:`~taphouse.settings.Settings`)."""

    allow: tuple[str, ...] = ()  # outbound_allow: non-public hosts allowed
    timeout: float = 60.0  # seconds for one request
    query_timeout: float = 600.0  # seconds for one async query in all
    max_bytes: int = 200 * 1024**2  # one result document
    metadata_max_bytes: int = 50 * 1024**2  # one metadata document
    refresh_interval: float = 24 * 3600.0  # seconds between metadata refreshes
    retries: int = 3
    backoff: float = 0.5
    user_remotes: bool = False  # users may register remotes for themselves
    user_max: int = 10  # most remotes one user may register for themselves
    limits: MetadataLimits = field(default_factory=MetadataLimits)

    @classmethod
    def from_settings(cls, settings: object) -> RemoteConfig:
        def get(name: str, default: object) -> object:
            return getattr(settings, name, default)

        return cls(allow=tuple(get("outbound_allow", ())),  # type: ignore[arg-type]
                   timeout=float(get("remote_timeout", 60.0)),  # type: ignore[arg-type]
                   query_timeout=float(get("remote_query_timeout", 600.0)),  # type: ignore[arg-type]
                   max_bytes=int(get("remote_max_bytes", 200 * 1024**2)),  # type: ignore[call-overload]
                   refresh_interval=float(get("remote_refresh_interval", 86400.0)),  # type: ignore[arg-type]
                   retries=int(get("remote_retries", 3)),  # type: ignore[call-overload]
                   user_remotes=bool(get("remote_user_registration", False)),
                   user_max=int(get("remote_user_max", 10)))  # type: ignore[call-overload]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _epoch(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return 0.0


class RemoteRegistry:
    """Registered remotes, their cached metadata and health.

    Parameters
    ----------
    meta
        The metadata database.
    config
        Timeouts, limits, refresh interval.
    local_database
        Whether a name is a local database (a remote may not take it).
    resolver
        Host name lookups for the outbound guard (tests give their own).
    secrets
        Where remotes' credentials are kept sealed (without it, only public remotes).
    """

    def __init__(self, meta: MetadataDB, config: RemoteConfig, *,
                 local_database: Callable[[str], bool] = lambda name: False,
                 resolver: Resolver = system_resolver,
                 secrets: SecretStore | None = None) -> None:
        self.meta = meta
        self.config = config
        self.local_database = local_database
        self.resolver = resolver
        self.secrets = secrets

    # --- clients -----------------------------------------------------------------------
    def outbound(self, timeout: float | None = None, max_bytes: int | None = None) -> Outbound:
        """A guarded HTTP client with this registry's limits."""
        policy = OutboundPolicy(allow=self.config.allow,
                                max_bytes=max_bytes or self.config.max_bytes,
                                timeout=timeout or self.config.timeout)
        return Outbound(policy, resolver=self.resolver, user_agent="taphouse-remotes")

    def client(self, remote: Remote | str, owner_id: int | None = None) -> RemoteTap:
        """A client for a registered remote, with its credentials (sent to its origin
        only, never quoted in its errors)."""
        if isinstance(remote, str):
            remote = self.require(remote, owner_id)
        return self._client(remote.name, remote.url, remote.timeout,
                            self._credential(remote), remote.capabilities.maxrec_hard)

    def _client(self, name: str, url: str, timeout: float | None = None,
                credential: Secret | None = None,
                maxrec_hard: int | None = None) -> RemoteTap:
        headers = {"Authorization": credential.reveal()} if credential is not None else None
        return RemoteTap(name, url, self.outbound(timeout=timeout), credentials=headers,
                         retry=RetryPolicy(self.config.retries, self.config.backoff),
                         query_timeout=self.config.query_timeout, maxrec_hard=maxrec_hard)

    def _credential(self, remote: Remote) -> Secret | None:
        if remote.auth == "none":
            return None
        try:
            secret = self.secrets.get(secret_name(remote.id)) if self.secrets else None
        except SecretError as exc:
            # The detail (a key file, a key id) is for the operator's log, not for users.
            log.error("remote %s: its stored credentials cannot be opened: %s", remote.name,
                      exc.message)
            secret = None
        if secret is None:
            raise RemoteUnavailable(f"remote {remote.name!r}: its stored credentials cannot"
                                    " be read on this server; the operator must set them"
                                    " again (taphouse remote credentials)")
        return secret

    # --- registration ------------------------------------------------------------------
    def check_name(self, name: str, owner_id: int | None = None) -> str:
        """``name`` if a new remote may take it; :class:`RemoteError` says why not."""
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise RemoteError(f"bad remote name {str(name)[:60]!r}: use a lower-case letter"
                              " followed by up to 39 lower-case letters, digits or _")
        if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
            raise RemoteError(f"the name {name!r} is reserved for the platform's own schemas"
                              f" ({', '.join(RESERVED_NAMES)}, {'*, '.join(RESERVED_PREFIXES)}*)")
        from taphouse.adql.reserved import is_reserved

        if is_reserved(name):
            raise RemoteError(f"{name!r} is an ADQL reserved word: queries could not name"
                              " the remote's tables; choose another name")
        if self.local_database(name):
            raise RemoteError(f"{name!r} is a local database: a remote cannot take its name")
        if owner_id is None:  # the operator's names are everybody's: no user may hold one
            clash = self.meta.query_one("SELECT owner_id, created_by FROM remotes WHERE"
                                        " name=? ORDER BY owner_id IS NOT NULL", (name,))
            if clash is not None and clash["owner_id"] is not None:
                # A user took it first, for themselves: say who, and how to take it back.
                user = clash["created_by"] or f"#{clash['owner_id']}"
                raise RemoteError(f"a remote named {name!r} is registered by the user"
                                  f" {user!r} for themselves; to take the name, remove"
                                  f" theirs first (taphouse remote remove {name} --owner"
                                  f" {user}, or DELETE /api/admin/remotes/{name}?owner="
                                  f"{user})")
        else:
            clash = self.meta.query_one("SELECT 1 FROM remotes WHERE name=? AND"
                                        " (owner_id IS NULL OR owner_id=?)", (name, owner_id))
        if clash is not None:
            raise RemoteError(f"a remote named {name!r} is already registered")
        return name

    @staticmethod
    def check_url(url: str) -> str:
        """A remote's base URL: http(s), no credentials, query or fragment."""
        if not isinstance(url, str) or not url.strip():
            raise RemoteError("missing URL of the remote TAP service")
        url = url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"{url[:200]!r} is not an http(s) URL of a TAP service")
        if parts.username is not None or parts.password is not None:
            raise RemoteError("put no credentials in the URL (use --auth)")
        if parts.query or parts.fragment:
            raise RemoteError(f"{url[:200]!r}: give the service's base URL, without ?query"
                              " or #fragment")
        return url

    def add(self, name: str, url: str, *, auth: str = "none", by: str | None = None,
            owner_id: int | None = None, groups: tuple[str, ...] = (),
            timeout: float | None = None, credential: Secret | None = None) -> Remote:
        """Register a remote: checks the name and URL, fetches its capabilities (it must
        be a TAP service) and its tables; stores nothing if any of it fails.

        ``credential`` (an ``Authorization`` value, see
        :func:`taphouse.remotes.credentials.authorization`) is needed when ``auth`` is
        not ``none``; it is stored sealed. An operator's remote with credentials must
        name the ``groups`` that may query it (the credentials are the operator's)."""
        self.check_name(name, owner_id)
        url = self.check_url(url)
        self._check_owner_count(owner_id)
        self._check_auth(auth, credential, groups, owner_id)
        self._check_transport(url, auth)
        if timeout is not None and not 0 < timeout <= 3600:
            raise RemoteError("timeout must be between 0 and 3600 seconds")
        client = self._client(name, url, timeout, credential)
        try:
            caps, tables, source = self._describe(client)
        except RemoteUnavailable as exc:  # bad input here: nothing is registered
            raise RemoteError(f"cannot register {name!r}: {exc.message}") from None
        with self.meta.transaction() as con:
            try:
                cur = con.execute(
                    "INSERT INTO remotes(name, url, auth, owner_id, groups, capabilities,"
                    " metadata_source, state, checked_at, refreshed_at, timeout, created_by)"
                    " VALUES (?,?,?,?,?,?,?,'ok',?,?,?,?)",
                    (name, url, auth, owner_id, json.dumps(list(groups)),
                     json.dumps(caps.to_dict()), source, _now(), _now(), timeout, by))
            except sqlite3.IntegrityError:
                raise RemoteError(f"a remote named {name!r} is already registered") from None
            remote_id = int(cur.lastrowid or 0)
            if credential is not None and self.secrets is not None:
                self.secrets.put(secret_name(remote_id), credential.reveal(), con=con)
            self._store_tables(con, remote_id, tables)
        log.info("remote %s registered (%s, %d tables from %s) by %s", name, url,
                 len(tables), source, by or "-")
        return self.require(name, owner_id)

    def _check_owner_count(self, owner_id: int | None) -> None:
        """A user registers at most ``user_max`` remotes: each keeps up to
        ``limits.max_tables`` tables of metadata in the one shared store, refreshed at
        every interval (the operator's own are not counted)."""
        if owner_id is None:
            return
        row = self.meta.query_one("SELECT COUNT(*) AS n FROM remotes WHERE owner_id=?",
                                  (owner_id,))
        if row is not None and row["n"] >= self.config.user_max:
            raise RemoteError(f"you may register at most {self.config.user_max} remotes"
                              " for yourself on this platform: remove one first")

    def _check_auth(self, auth: str, credential: Secret | None, groups: tuple[str, ...],
                    owner_id: int | None) -> None:
        if auth not in AUTH_KINDS:
            raise RemoteError(f"--auth must be one of {', '.join(AUTH_KINDS)}, not"
                              f" {str(auth)[:20]!r}")
        if auth == "none":
            if credential is not None:
                raise RemoteError("credentials were given but --auth is 'none'")
            return
        if credential is None:
            raise RemoteError(f"--auth {auth} needs credentials")
        if self.secrets is None:
            raise RemoteError("this server keeps no credentials (no secret store)")
        if owner_id is None and not groups:
            raise RemoteError("a remote with credentials must name the groups that may"
                              " query it (--groups): the credentials are the platform's,"
                              " not every user's")

    def _check_transport(self, url: str, auth: str) -> None:
        """Credentials travel over https only, unless the operator allows the host by
        name or address (a service on their own network, reached over plain http)."""
        parts = urlsplit(url)
        if auth == "none" or parts.scheme == "https":
            return
        host = (parts.hostname or "").lower().rstrip(".")
        policy = OutboundPolicy(allow=self.config.allow)
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = (
                ipaddress.ip_address(host))
        except ValueError:
            ip = None
        if host in policy.names or (ip is not None and any(ip in net
                                                           for net in policy.networks)):
            return
        raise RemoteError(f"--auth {auth} over plain http would send the credentials"
                          f" unencrypted to {host!r}: register the service's https URL"
                          " (or, for a host on your own network, name it in"
                          " TAPHOUSE_OUTBOUND_ALLOW)")

    def set_credentials(self, name: str, auth: str, credential: Secret | None, *,
                        owner_id: int | None = None) -> Remote:
        """Replace a remote's credentials (or drop them: ``auth`` ``none``); they are
        checked by reading its tables with them first (nothing changes if that fails)."""
        remote = self.require(name, owner_id)
        self._check_auth(auth, credential, remote.groups, remote.owner_id)
        self._check_transport(remote.url, auth)
        client = self._client(remote.name, remote.url, remote.timeout, credential)
        try:
            caps, tables, source = self._describe(client)
        except RemoteUnavailable as exc:
            raise RemoteError(f"the new credentials of {name!r} do not work: {exc.message}"
                              ) from None
        with self.meta.transaction() as con:
            con.execute("UPDATE remotes SET auth=?, capabilities=?, metadata_source=?,"
                        " state='ok', last_error=NULL, checked_at=?, refreshed_at=?"
                        " WHERE id=?", (auth, json.dumps(caps.to_dict()), source, _now(),
                                        _now(), remote.id))
            if self.secrets is not None:
                if credential is None:
                    self.secrets.delete(secret_name(remote.id), con=con)
                else:
                    self.secrets.put(secret_name(remote.id), credential.reveal(), con=con)
            self._store_tables(con, remote.id, tables)
        log.info("remote %s: credentials replaced (auth %s)", name, auth)
        return self.require(name, owner_id)

    def _describe(self, client: RemoteTap) -> tuple[Capabilities, list[RemoteTable], str]:
        caps = client.capabilities()
        limits, size = self.config.limits, self.config.metadata_max_bytes
        vosi: list[RemoteTable] = []
        vosi_error: RemoteError | None = None
        try:
            vosi = client.tableset(limits, size)
        except RemoteError as exc:
            vosi_error = exc
        if vosi and all(t.columns for t in vosi):
            return caps, vosi, "vosi"
        # VOSI failed, or lists tables without columns (detail=min): TAP_SCHEMA.
        try:
            schema = client.tap_schema(limits, size)
        except RemoteError as exc:
            if vosi:
                return caps, vosi, "vosi"
            raise RemoteUnavailable(
                f"remote {client.name!r}: cannot read its tables from VOSI"
                f" ({vosi_error.message if vosi_error else 'no tables'}) nor from TAP_SCHEMA"
                f" ({exc.message})") from None
        if richness(schema) >= richness(vosi):
            return caps, schema, "tap_schema"
        return caps, vosi, "vosi"

    @staticmethod
    def _store_tables(con: sqlite3.Connection, remote_id: int,
                      tables: list[RemoteTable]) -> None:
        con.execute("DELETE FROM remote_tables WHERE remote_id=?", (remote_id,))
        seen: set[tuple[str, str]] = set()
        rows = []
        for t in tables:
            key = (t.schema, t.name)
            if key in seen:
                continue
            seen.add(key)
            rows.append((remote_id, t.schema, t.name, t.description, t.table_type, t.nrows,
                         json.dumps([c.to_dict() for c in t.columns])))
        con.executemany("INSERT INTO remote_tables(remote_id, schema_name, table_name,"
                        " description, table_type, nrows, columns) VALUES (?,?,?,?,?,?,?)",
                        rows)

    def refresh(self, name: str, owner_id: int | None = None) -> Remote:
        """Fetch a remote's capabilities and tables again. On failure the cached metadata
        stays, the remote is marked ``failing`` with the reason, and the error is raised."""
        remote = self.require(name, owner_id)
        try:
            caps, tables, source = self._describe(self.client(remote))
        except RemoteError as exc:
            self.meta.execute("UPDATE remotes SET state='failing', last_error=?, checked_at=?"
                              " WHERE id=?", (clean(exc.message, 2000), _now(), remote.id))
            raise
        with self.meta.transaction() as con:
            con.execute("UPDATE remotes SET capabilities=?, metadata_source=?, state='ok',"
                        " last_error=NULL, checked_at=?, refreshed_at=? WHERE id=?",
                        (json.dumps(caps.to_dict()), source, _now(), _now(), remote.id))
            self._store_tables(con, remote.id, tables)
        return self.require(name, owner_id)

    def refresh_due(self, now: float | None = None) -> dict[str, str | None]:
        """Refresh every remote whose last check is older than the refresh interval;
        returns name -> None (refreshed) or the error."""
        now = time.time() if now is None else now
        out: dict[str, str | None] = {}
        for remote in self._all():
            if now - _epoch(remote.checked_at) < self.config.refresh_interval:
                continue
            try:
                self.refresh(remote.name, remote.owner_id)
                out[remote.name] = None
            except RemoteError as exc:
                out[remote.name] = exc.message
        return out

    def remove(self, name: str, owner_id: int | None = None) -> None:
        remote = self.require(name, owner_id)
        with self.meta.transaction() as con:
            con.execute("DELETE FROM remote_tables WHERE remote_id=?", (remote.id,))
            con.execute("DELETE FROM remotes WHERE id=?", (remote.id,))
            if self.secrets is not None:
                self.secrets.delete(secret_name(remote.id), con=con)
        log.info("remote %s removed", name)

    # --- reading -----------------------------------------------------------------------
    def get(self, name: str, owner_id: int | None = None) -> Remote | None:
        """The operator's remote ``name``, or (with ``owner_id``) that user's own."""
        if owner_id is None:
            row = self.meta.query_one(_SELECT + " WHERE r.name=? AND r.owner_id IS NULL",
                                      (name,))
        else:
            row = self.meta.query_one(_SELECT + " WHERE r.name=? AND r.owner_id=?",
                                      (name, owner_id))
        return _remote(row) if row else None

    def require(self, name: str, owner_id: int | None = None) -> Remote:
        remote = self.get(name, owner_id)
        if remote is None:
            raise RemoteNotFound(f"no remote named {str(name)[:60]!r} is registered")
        return remote

    def _all(self) -> list[Remote]:
        return [_remote(r) for r in self.meta.query(_SELECT + " ORDER BY r.name")]

    def remotes(self, owner_id: int | None = None) -> list[Remote]:
        """The operator's remotes, or (with ``owner_id``) one user's own."""
        if owner_id is None:
            rows = self.meta.query(_SELECT + " WHERE r.owner_id IS NULL ORDER BY r.name")
        else:
            rows = self.meta.query(_SELECT + " WHERE r.owner_id=? ORDER BY r.name",
                                   (owner_id,))
        return [_remote(r) for r in rows]

    def visible(self, identity: Identity) -> list[Remote]:
        """The remotes ``identity`` may query: the operator's (those restricted to groups
        only for members and administrators) and the caller's own."""
        out = []
        for remote in self.remotes():
            if not remote.groups or identity.is_admin or set(remote.groups) & set(
                    identity.groups):
                out.append(remote)
        if identity.user_id is not None:
            out += self.remotes(identity.user_id)
        return out

    def find(self, identity: Identity, name: str) -> Remote | None:
        """The remote a query of ``identity`` means by ``name`` (None: none visible)."""
        for remote in self.visible(identity):
            if remote.name == name:
                return remote
        return None

    def tables(self, remote: Remote) -> list[RemoteTable]:
        """The cached tables of a remote."""
        rows = self.meta.query("SELECT * FROM remote_tables WHERE remote_id=?"
                               " ORDER BY schema_name, table_name", (remote.id,))
        return [_table(r) for r in rows]

    def table(self, remote: Remote, schema: str, name: str) -> RemoteTable | None:
        """One cached table, its schema and name matched case-insensitively (ADQL regular
        identifiers) when there is no exact match."""
        row = self.meta.query_one("SELECT * FROM remote_tables WHERE remote_id=? AND"
                                  " schema_name=? AND table_name=?", (remote.id, schema, name))
        if row is None:
            rows = self.meta.query("SELECT * FROM remote_tables WHERE remote_id=? AND"
                                   " lower(schema_name)=lower(?) AND"
                                   " lower(table_name)=lower(?)", (remote.id, schema, name))
            row = rows[0] if len(rows) == 1 else None
        return _table(row) if row else None


_SELECT = ("SELECT r.*, (SELECT COUNT(*) FROM remote_tables t WHERE t.remote_id=r.id)"
           " AS table_count FROM remotes r")


def _remote(row: sqlite3.Row) -> Remote:
    return Remote(id=row["id"], name=row["name"], url=row["url"], auth=row["auth"],
                  owner_id=row["owner_id"], groups=tuple(json.loads(row["groups"] or "[]")),
                  title=row["title"],
                  capabilities=Capabilities.from_dict(json.loads(row["capabilities"] or "{}")),
                  metadata_source=row["metadata_source"], state=row["state"],
                  last_error=row["last_error"], checked_at=row["checked_at"],
                  refreshed_at=row["refreshed_at"], created=row["created"],
                  created_by=row["created_by"], table_count=row["table_count"],
                  timeout=row["timeout"])


def _table(row: sqlite3.Row) -> RemoteTable:
    return RemoteTable(schema=row["schema_name"], name=row["table_name"],
                       description=row["description"], table_type=row["table_type"],
                       nrows=row["nrows"],
                       columns=[RemoteColumn.from_dict(c) for c in json.loads(row["columns"])])


__all__ = ["RemoteRegistry", "RemoteConfig"]
