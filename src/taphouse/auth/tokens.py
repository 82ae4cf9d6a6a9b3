"""Bearer tokens: issue, validate, refresh, list and revoke.

A token is ``th_`` followed by 32 random bytes, URL-safe base64 (43 characters). Only
its SHA-256 digest is stored: a leaked metadata database does not give usable tokens,
and a random 256-bit secret needs no slow password hash. Session tokens come from a
login and can be refreshed; personal tokens are named, long-lived and made for scripts.

Job tokens (kind ``"job"``, prefix ``thj_``) belong to one running sandbox: a compute job
(or, later, a notebook kernel). They live in their own table, end with the job, are
accepted only on the sandbox API socket and cannot create tokens or change accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from taphouse.auth.errors import AccountError, AuthError, UnknownObject
from taphouse.metadata import MetadataDB

PREFIX = "th_"
JOB_PREFIX = "thj_"
JOB_KIND = "job"
SCOPES = ("read", "write", "admin")
"""``read``: queries and metadata; ``write``: user space, jobs, tokens; ``admin``: the
operator API (only for administrators)."""

# Refreshing swaps the old session token for a new one; the old one stays valid this
# long so requests already in flight with it (parallel notebook cells) still succeed.
REFRESH_GRACE = 60.0
# Writing last_used on every request would turn each read into a write.
LAST_USED_RESOLUTION = 60.0


@dataclass(frozen=True)
class TokenRecord:
    """A stored token (never the secret itself)."""

    id: int
    user_id: int
    kind: str
    name: str
    scopes: frozenset[str]
    issued: float
    expires: float | None
    session_start: float
    last_used: float | None
    revoked: float | None
    #: The job (or sandbox session) a job token belongs to; None for other kinds.
    job_id: str | None = None
    family: int | None = None  # the first token of the login (session tokens)
    replaced_by: int | None = None  # the token a refresh gave for this one

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "name": self.name,
                "scopes": sorted(self.scopes), "issued_at": iso_time(self.issued),
                "expires_at": iso_time(self.expires), "last_used": iso_time(self.last_used),
                "revoked": self.revoked is not None}


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: the only moment its secret is known to the server."""

    secret: str
    record: TokenRecord


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class TokenService:
    """Issues and validates tokens.

    Parameters
    ----------
    meta
        The metadata database.
    session_lifetime
        Seconds a session token is valid (``Settings.token_lifetime``).
    max_session_age
        Seconds after a login beyond which a session can no longer be refreshed.
    clock
        Returns the current time in seconds since the epoch; tests replace it to move time.
    """

    def __init__(self, meta: MetadataDB, *, session_lifetime: float = 24 * 3600.0,
                 max_session_age: float = 30 * 24 * 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.meta = meta
        self.session_lifetime = session_lifetime
        self.max_session_age = max_session_age
        self.clock = clock

    def issue(self, user_id: int, *, kind: str = "session", name: str = "",
              scopes: Iterable[str] = ("read", "write"), lifetime: float | None = None,
              session_start: float | None = None) -> IssuedToken:
        """A new token; ``lifetime=None`` means the session lifetime for session tokens
        and no expiry for personal ones."""
        if kind not in ("session", "personal"):
            raise AccountError(f"token kind must be session or personal, not {kind!r}")
        scope_set = frozenset(scopes)
        unknown = scope_set - set(SCOPES)
        if unknown:
            raise AccountError(f"unknown token scope(s) {sorted(unknown)}; use {list(SCOPES)}")
        now = self.clock()
        with self.meta.transaction() as con:
            token_id, secret = self._insert(con, user_id, kind, name, scope_set, now,
                                            lifetime, session_start, family=None)
        record = self.get(token_id)
        assert record is not None
        return IssuedToken(secret, record)

    def _insert(self, con: sqlite3.Connection, user_id: int, kind: str, name: str,
                scopes: frozenset[str], now: float, lifetime: float | None,
                session_start: float | None, *, family: int | None) -> tuple[int, str]:
        if lifetime is None and kind == "session":
            lifetime = self.session_lifetime
        expires = None if lifetime is None else now + lifetime
        secret = PREFIX + secrets.token_urlsafe(32)
        start = now if session_start is None else session_start
        cur = con.execute(
            "INSERT INTO tokens(user_id, digest, kind, name, scopes, issued, expires,"
            " session_start, family) VALUES (?,?,?,?,?,?,?,?,?)",
            (user_id, token_digest(secret), kind, name, " ".join(sorted(scopes)), now,
             expires, start, family))
        token_id = int(cur.lastrowid or 0)
        if family is None:
            con.execute("UPDATE tokens SET family=? WHERE id=?", (token_id, token_id))
        return token_id, secret

    def issue_job(self, user_id: int, job_id: str, *, lifetime: float,
                  scopes: Iterable[str] = ("read", "write")) -> IssuedToken:
        """A job token for the sandbox running ``job_id`` (never with ``admin``)."""
        scope_set = frozenset(scopes) & {"read", "write"}
        now = self.clock()
        secret = JOB_PREFIX + secrets.token_urlsafe(32)
        cur = self.meta.execute(
            "INSERT INTO job_tokens(user_id, digest, job_id, scopes, issued, expires)"
            " VALUES (?,?,?,?,?,?)",
            (user_id, token_digest(secret), job_id, " ".join(sorted(scope_set)), now,
             now + lifetime))
        row = self.meta.query_one("SELECT * FROM job_tokens WHERE id=?", (cur.lastrowid,))
        assert row is not None
        return IssuedToken(secret, _job_record(row))

    def revoke_job(self, job_id: str) -> None:
        """End every job token of ``job_id`` (the job has ended)."""
        now = self.clock()
        self.meta.execute("UPDATE job_tokens SET revoked=? WHERE job_id=? AND revoked IS NULL",
                          (now, job_id))
        self.meta.execute("DELETE FROM job_tokens WHERE expires < ?", (now - 7 * 86400.0,))

    def revoke_all_jobs(self, *, keep_prefix: str | None = None) -> None:
        """End every job token (at start-up: no job of an earlier run is still running);
        those whose job id starts with ``keep_prefix`` are kept (notebook servers live
        in the hub, not in this server)."""
        if keep_prefix is None:
            self.meta.execute("UPDATE job_tokens SET revoked=? WHERE revoked IS NULL",
                              (self.clock(),))
            return
        self.meta.execute("UPDATE job_tokens SET revoked=? WHERE revoked IS NULL"
                          " AND substr(job_id, 1, ?) != ?",
                          (self.clock(), len(keep_prefix), keep_prefix))

    def revoke_jobs_like(self, prefix: str) -> int:
        """End every live job token whose job id starts with ``prefix``."""
        cur = self.meta.execute("UPDATE job_tokens SET revoked=? WHERE revoked IS NULL"
                                " AND substr(job_id, 1, ?) = ?",
                                (self.clock(), len(prefix), prefix))
        return cur.rowcount

    def validate(self, secret: str) -> TokenRecord:
        """The record of a live token, or :class:`AuthError` saying why not."""
        digest = token_digest(secret)
        if secret.startswith(JOB_PREFIX):
            return self._validate_job(digest)
        row = self.meta.query_one("SELECT * FROM tokens WHERE digest=?", (digest,))
        # The lookup is by digest, so timing says nothing about the secret; the compare
        # is a second line of defence.
        if row is None or not hmac.compare_digest(row["digest"], digest):
            raise AuthError("invalid token: not issued by this service; log in again",
                            bearer_error="invalid_token")
        record = _record(row)
        now = self.clock()
        if record.revoked is not None and record.revoked <= now:
            raise AuthError("invalid token: it has been revoked (logout, password change or"
                            " operator); log in again", bearer_error="invalid_token")
        if record.expires is not None and record.expires <= now:
            raise AuthError(f"token expired at {iso_time(record.expires)}; log in again"
                            " (session tokens can be refreshed before they expire at"
                            " POST /auth/refresh)", bearer_error="invalid_token")
        if record.last_used is None or now - record.last_used > LAST_USED_RESOLUTION:
            try:
                self.meta.execute("UPDATE tokens SET last_used=? WHERE id=?", (now, record.id))
            except sqlite3.Error:
                pass  # bookkeeping only: a full disk must not stop reads
        return record

    def _validate_job(self, digest: str) -> TokenRecord:
        row = self.meta.query_one("SELECT * FROM job_tokens WHERE digest=?", (digest,))
        if row is None or not hmac.compare_digest(row["digest"], digest):
            raise AuthError("invalid token: not issued by this service",
                            bearer_error="invalid_token")
        record = _job_record(row)
        now = self.clock()
        if (record.revoked is not None and record.revoked <= now) or (
                record.expires is not None and record.expires <= now):
            raise AuthError(f"invalid token: job {record.job_id} has ended, and its token"
                            " with it", bearer_error="invalid_token")
        return record

    def refresh(self, record: TokenRecord) -> IssuedToken:
        """A new session token for a live session token; the old one stays valid for
        :data:`REFRESH_GRACE` seconds, then is revoked. A token is refreshed once: a
        second refresh of it (concurrent or later) is refused, so one login never
        spreads into several live sessions."""
        if record.kind != "session":
            raise AccountError("only session tokens can be refreshed; personal tokens have"
                               " their own lifetime")
        now = self.clock()
        if now - record.session_start > self.max_session_age:
            raise AuthError("session too old to refresh: log in again with name and password",
                            bearer_error="invalid_token")
        with self.meta.transaction() as con:
            row = con.execute("SELECT replaced_by FROM tokens WHERE id=?",
                              (record.id,)).fetchone()
            if row is None or row["replaced_by"] is not None:
                raise AuthError("this session token was already refreshed: use the token"
                                " that refresh returned, or log in again",
                                bearer_error="invalid_token")
            token_id, secret = self._insert(
                con, record.user_id, "session", "", record.scopes, now, None,
                record.session_start, family=record.family or record.id)
            con.execute("UPDATE tokens SET replaced_by=?, revoked=CASE WHEN revoked IS NULL"
                        " OR revoked > ? THEN ? ELSE revoked END WHERE id=?",
                        (token_id, now + REFRESH_GRACE, now + REFRESH_GRACE, record.id))
        new = self.get(token_id)
        assert new is not None
        return IssuedToken(secret, new)

    def end_session(self, record: TokenRecord) -> int:
        """Logout: revoke the presented token and, for a session token, every token of
        its login (its predecessors still in their grace period and its successors)."""
        now = self.clock()
        if record.kind != "session":
            self.revoke(record.id)
            return 1
        cur = self.meta.execute(
            "UPDATE tokens SET revoked=? WHERE user_id=? AND (family=? OR id=?)"
            " AND (revoked IS NULL OR revoked > ?)",
            (now, record.user_id, record.family or record.id, record.id, now))
        return cur.rowcount

    def revoke(self, token_id: int, *, user_id: int | None = None) -> None:
        """Revoke one token (of ``user_id`` only, when given)."""
        record = self.get(token_id)
        if record is None or (user_id is not None and record.user_id != user_id):
            raise UnknownObject(f"no token with id {token_id}")
        self.meta.execute("UPDATE tokens SET revoked=? WHERE id=? AND"
                          " (revoked IS NULL OR revoked > ?)",
                          (self.clock(), token_id, self.clock()))

    def get(self, token_id: int) -> TokenRecord | None:
        row = self.meta.query_one("SELECT * FROM tokens WHERE id=?", (token_id,))
        return _record(row) if row else None

    def list(self, user_id: int, *, kind: str | None = None,
             include_dead: bool = False) -> list[TokenRecord]:
        """Tokens of a user, newest first (live ones only unless ``include_dead``)."""
        rows = self.meta.query("SELECT * FROM tokens WHERE user_id=? ORDER BY id DESC",
                               (user_id,))
        now = self.clock()
        out = []
        for r in rows:
            rec = _record(r)
            if kind is not None and rec.kind != kind:
                continue
            dead = ((rec.revoked is not None and rec.revoked <= now)
                    or (rec.expires is not None and rec.expires <= now))
            if dead and not include_dead:
                continue
            out.append(rec)
        return out

    def purge(self, older_than: float = 7 * 24 * 3600.0) -> int:
        """Delete records of tokens dead for longer than ``older_than`` seconds."""
        cutoff = self.clock() - older_than
        cur = self.meta.execute("DELETE FROM tokens WHERE (revoked IS NOT NULL AND revoked < ?)"
                                " OR (expires IS NOT NULL AND expires < ?)", (cutoff, cutoff))
        return cur.rowcount


def _record(row: sqlite3.Row) -> TokenRecord:
    return TokenRecord(id=row["id"], user_id=row["user_id"], kind=row["kind"], name=row["name"],
                       scopes=frozenset(row["scopes"].split()), issued=row["issued"],
                       expires=row["expires"], session_start=row["session_start"],
                       last_used=row["last_used"], revoked=row["revoked"],
                       family=row["family"], replaced_by=row["replaced_by"])


def _job_record(row: sqlite3.Row) -> TokenRecord:
    return TokenRecord(id=row["id"], user_id=row["user_id"], kind=JOB_KIND,
                       name=f"job {row['job_id']}", scopes=frozenset(row["scopes"].split()),
                       issued=row["issued"], expires=row["expires"],
                       session_start=row["issued"], last_used=None, revoked=row["revoked"],
                       job_id=row["job_id"])


def iso_time(t: float | None) -> str | None:
    """ISO 8601 UTC text of a POSIX time (None stays None)."""
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
