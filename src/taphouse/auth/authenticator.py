"""Establishing the identity of each request, and the account operations around it.

Presentation rules:

- no ``Authorization`` header: the anonymous caller (when the operator allows anonymous
  read; the VOSI capabilities and availability stay public so clients can discover how
  to log in);
- ``Bearer <token>``: a session or personal token, validated on every request;
- ``Basic <name:password>``: checked with argon2id, then cached briefly;
- bad, expired or revoked credentials are always refused (HTTP 401), never downgraded
  to anonymous;
- credentials over plain HTTP are refused unless the client is on loopback, or a
  trusted proxy (``Settings.trusted_proxies``) says the client used https
  (``X-Forwarded-Proto: https``); see :mod:`taphouse.admission.addresses`.
- job tokens (``thj_...``) are accepted only on the sandbox API socket, and that socket
  accepts nothing else (see :data:`LISTENER`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from taphouse.admission.addresses import came_via_proxy, is_loopback
from taphouse.auth.accounts import AccountStore, User, check_account_name
from taphouse.auth.audit import AuditLog
from taphouse.auth.basic_cache import BasicCache
from taphouse.auth.errors import AccountError, AuthError, Forbidden, InsecureTransport
from taphouse.auth.identity import ANONYMOUS, Identity
from taphouse.auth.passwords import LoginLane, PasswordHashing
from taphouse.auth.throttle import LoginThrottle
from taphouse.auth.tokens import JOB_KIND, IssuedToken, TokenRecord, TokenService
from taphouse.observability.requestlog import note_caller

if TYPE_CHECKING:
    from taphouse.metadata import MetadataDB
    from taphouse.settings import Settings

T = TypeVar("T")

BAD_LOGIN = "invalid user name or password"
# Paths any caller may fetch even when anonymous read is off: clients read the
# capabilities to learn which login methods the service accepts.
PUBLIC_SUFFIXES = ("/capabilities", "/availability")
#: ASGI scope key naming the listener a request came in on; the sandbox API socket sets
#: it to :data:`SANDBOX_LISTENER` (taphouse.compute.listener), the TCP listener does not.
LISTENER = "taphouse.listener"
SANDBOX_LISTENER = "sandbox"
#: ``Identity.method`` of a request made with a job token from inside a sandbox.
SANDBOX_METHOD = "sandbox"
#: ... with a notebook token (a job token minted for a Jupyter kernel of the hub): it
#: may also submit compute jobs, and nothing else a job token may not do.
NOTEBOOK_METHOD = "notebook"
#: Job ids of notebook tokens start with this (see taphouse.hub.link).
NOTEBOOK_JOB_PREFIX = "nb-"
#: ASGI scope key: the real peer of a request whose client address the hub forwarded.
PEER_SCOPE = "taphouse.peer"


@dataclass(frozen=True)
class Caller:
    """The result of authenticating one request: the identity and, for bearer
    requests, the token record."""

    identity: Identity
    token: TokenRecord | None = None


class Authenticator:
    """Authentication and account operations of one server.

    Parameters
    ----------
    meta
        The metadata database.
    settings
        Server settings (``anonymous_read``, ``token_lifetime``, ``password_min_length``,
        ``basic_cache_seconds``).
    hashing
        Password hashing; argon2-cffi's default argon2id parameters when omitted.
    clock
        Current time in seconds since the epoch. Tests move time by assigning
        ``authenticator.clock``; every service here reads it.
    """

    def __init__(self, meta: MetadataDB, settings: Settings, *, hashing: PasswordHashing | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.meta = meta
        self.settings = settings
        self.clock = clock
        now = self._now
        self._hashing = hashing or PasswordHashing()
        self.accounts = AccountStore(meta, self._hashing,
                                     password_min_length=settings.password_min_length,
                                     clock=now)
        self.tokens = TokenService(meta, session_lifetime=settings.token_lifetime, clock=now)
        self.throttle = LoginThrottle(clock=now)
        #: Where the password checks of HTTP requests wait and run (see :class:`LoginLane`).
        self.login_lane = LoginLane(
            concurrent=self._hashing.gate.concurrent,
            queue=getattr(settings, "login_queue", 256),
            per_address=getattr(settings, "login_queue_per_address", 4),
            per_site=getattr(settings, "login_queue_per_site", 64),
            per_provider=getattr(settings, "login_queue_per_provider", 128),
            wait=getattr(settings, "login_wait", 30.0),
            retry_after=getattr(settings, "retry_after", 5))
        self.basic_cache = BasicCache(settings.basic_cache_seconds, clock=now)
        self.audit_log = AuditLog(meta, clock=now)

    def _now(self) -> float:
        return self.clock()

    @property
    def hashing(self) -> PasswordHashing:
        """Password hashing; assigning it (e.g. cheaper parameters in tests) applies to
        new hashes and checks; existing hashes keep verifying with their own parameters."""
        return self._hashing

    @hashing.setter
    def hashing(self, value: PasswordHashing) -> None:
        self._hashing = value
        self.accounts.hashing = value

    # --- per request ---------------------------------------------------------------
    def identify(self, request: Request, *, allow_basic: bool = True) -> Identity:
        """The identity of ``request`` (raises :class:`AuthError` for bad credentials)."""
        return self.caller(request, allow_basic=allow_basic).identity

    async def identify_async(self, request: Request) -> Identity:
        """:meth:`identify` for async handlers: a request without credentials is
        answered on the event loop (no database, no hashing), others in a thread."""
        return (await self.caller_async(request)).identity

    async def caller_async(self, request: Request, *, allow_basic: bool = True) -> Caller:
        """:meth:`caller` for async handlers. Before an uncached HTTP Basic check the
        account's throttle delay is waited on the event loop, holding no thread."""
        caller = await self._caller_async(request, allow_basic=allow_basic)
        note_caller(request.scope, caller.identity.username)  # for the request log
        return caller

    async def _caller_async(self, request: Request, *, allow_basic: bool) -> Caller:
        header = request.headers.get("authorization")
        if not header or not header.strip():
            return self.caller(request, allow_basic=allow_basic)
        name = self._uncached_basic_name(header) if allow_basic else None
        if name is not None:
            return await self.password_check(name, client_address(request), self.caller,
                                             request, allow_basic=allow_basic)
        return await run_in_threadpool(self.caller, request, allow_basic=allow_basic)

    def _uncached_basic_name(self, header: str) -> str | None:
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        username, sep, password = decoded.partition(":")
        if not sep or self.basic_cache.get(self.basic_cache.key(username, password)):
            return None
        return username

    def caller(self, request: Request, *, allow_basic: bool = True) -> Caller:
        """Like :meth:`identify`, with the token record of bearer requests."""
        header = request.headers.get("authorization")
        sandbox = is_sandbox_request(request)
        if not header or not header.strip():
            if sandbox:
                raise AuthError("the sandbox API socket needs the job's token"
                                " (TAPHOUSE_TOKEN; taphouse.connect() sends it)")
            if self.settings.anonymous_read or request.url.path.endswith(PUBLIC_SUFFIXES):
                return Caller(ANONYMOUS)
            raise AuthError("this service requires a login: send HTTP Basic credentials or"
                            " a bearer token (POST /auth/token)")
        scheme, _, credentials = header.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        self.check_transport(request)
        if scheme == "bearer":
            caller = self._bearer(credentials)
            is_job = caller.token is not None and caller.token.kind == JOB_KIND
            if sandbox and not is_job:
                raise AuthError("the sandbox API socket accepts only the job's token",
                                bearer_error="invalid_token")
            if is_job and not sandbox:
                raise AuthError("invalid token: job tokens work only inside their job's"
                                " sandbox", bearer_error="invalid_token")
            return caller
        if sandbox:
            raise AuthError("the sandbox API socket accepts only the job's token")
        if scheme == "basic":
            if not allow_basic:
                raise AuthError("HTTP Basic is not accepted here: send a bearer token"
                                " (get one at POST /auth/token)")
            return self._basic(credentials, client_address(request))
        raise AuthError(f"unsupported authorization scheme {scheme[:20]!r}: use Bearer or Basic")

    def check_transport(self, request: Request) -> None:
        """Refuse credentials sent in clear text over a network."""
        if request.url.scheme in ("https", "wss"):
            return
        if is_sandbox_request(request):  # a local Unix socket: nothing travels a network
            return
        # Through a trusted proxy the peer is the proxy: only its X-Forwarded-Proto
        # (already applied to the scheme above) can vouch for the client's transport.
        # The hub forwards its browser's address: its own hop is what travelled here.
        peer = request.scope.get(PEER_SCOPE) or client_address(request)
        if not came_via_proxy(request.scope) and is_loopback(peer):
            return
        raise InsecureTransport(
            "credentials over plain HTTP are refused: use https (operators running behind"
            " a TLS-terminating proxy list it in TAPHOUSE_TRUSTED_PROXIES and have it send"
            " X-Forwarded-Proto: https)")

    def _bearer(self, secret: str) -> Caller:
        if not secret:
            raise AuthError("invalid token: the Bearer header is empty",
                            bearer_error="invalid_request")
        record = self.tokens.validate(secret)
        user = self.accounts.user_by_id(record.user_id)
        if user is None or user.disabled:
            raise AuthError("invalid token: the account is disabled or deleted",
                            bearer_error="invalid_token")
        method = "bearer"
        if record.kind == JOB_KIND:
            notebook = (record.job_id or "").startswith(NOTEBOOK_JOB_PREFIX)
            method = NOTEBOOK_METHOD if notebook else SANDBOX_METHOD
        return Caller(self.identity_of(user, method, record.scopes), record)

    def _basic(self, credentials: str, client: str) -> Caller:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise AuthError("malformed HTTP Basic credentials") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthError("malformed HTTP Basic credentials")
        key = self.basic_cache.key(username, password)
        hit = self.basic_cache.get(key)
        if hit is not None:
            user = self.accounts.user_by_id(hit[0])
            if user is not None and not user.disabled and user.credentials_version == hit[1]:
                return Caller(self.identity_of(user, "basic"))
        user = self.check_password(username, password, client=client, method="basic")
        self.basic_cache.put(key, user.id, user.credentials_version)
        return Caller(self.identity_of(user, "basic"))

    def identity_of(self, user: User, method: str,
                    scopes: Iterable[str] | None = None) -> Identity:
        """The identity of ``user``; ``scopes=None`` means all the user may have."""
        allowed = self.allowed_scopes(user)
        granted = allowed if scopes is None else allowed & frozenset(scopes)
        return Identity(username=user.name, user_id=user.id, groups=user.groups,
                        scopes=granted, is_admin=user.is_admin and "admin" in granted,
                        method=method)

    @staticmethod
    def allowed_scopes(user: User) -> frozenset[str]:
        return frozenset({"read", "write", "admin"} if user.is_admin else {"read", "write"})

    def identity_for(self, user_id: int | None) -> Identity:
        """The identity a background job runs as: its owner (by stable user id: a
        re-created name is another account) with current groups (:class:`AuthError`
        when the account was disabled or deleted since)."""
        if user_id is None:
            return ANONYMOUS
        user = self.accounts.user_by_id(user_id)
        if user is None or user.disabled:
            raise AuthError("the account that owns this job is disabled or deleted")
        return self.identity_of(user, "job")

    # --- passwords -----------------------------------------------------------------
    def check_password(self, username: str, password: str, *, client: str = "-",
                       method: str = "password") -> User:
        """The user whose name and password these are, or :class:`AuthError`.

        Throttled per (name, client address) and per address, counted atomically (see
        :mod:`taphouse.auth.throttle`); an unknown name costs the same argon2id check as
        a wrong password and gets the same answer. HTTP callers wait
        :meth:`login_delay` first (without holding a thread).
        """
        attempt = self.throttle.begin(username, client)
        try:
            try:
                found = self.accounts.password_hash(check_account_name(username))
            except AccountError:
                found = None
            ok = self.hashing.verify(found[1] if found else None, password) and found is not None
        except BaseException:
            # Not checked (busy server, database error): released, not counted as a
            # failure, or a flood could get the owner's own attempts counted.
            self.throttle.end(attempt, None)
            raise
        self.throttle.end(attempt, ok)
        if not ok or found is None:
            self.audit_log.record("login_failed", username=found[0].name if found else None,
                                  user_id=found[0].id if found else None, method=method,
                                  client=client, outcome="refused",
                                  detail="" if found else "unknown user name")
            raise AuthError(BAD_LOGIN)
        user, stored = found
        if user.disabled:
            self.audit_log.record("login_failed", username=user.name, user_id=user.id,
                                  method=method, client=client, outcome="refused",
                                  detail="account disabled")
            raise AuthError("this account is disabled; ask the operator")
        if self.hashing.needs_rehash(stored):
            self.accounts.rehash(user.id, password)
        self.audit_log.record("login", username=user.name, user_id=user.id, method=method,
                              client=client)
        return user

    async def password_check(self, username: str, address: str, func: Callable[..., T],
                             *args: Any, **kwargs: Any) -> T:
        """``func(*args, **kwargs)``, which checks ``username``'s password for a client at
        ``address``, run in :attr:`login_lane`: refused at once (429) when the throttle
        would refuse it anyway, so doomed guesses take no place in the queue; then the
        account's :meth:`login_delay`; then the lane's turn (503 when it does not come)."""
        self.throttle.check(username, address)
        await self.login_delay(username)
        return await self.login_lane.run(address, func, *args, **kwargs)

    async def login_delay(self, username: str) -> None:
        """Wait the account's throttle delay (0 to 2 s, after failed logins from
        anywhere) on the event loop, before a password check of ``username``."""
        delay = self.throttle.delay(username)
        if delay > 0:
            await asyncio.sleep(delay)

    def login(self, username: str, password: str, *, client: str = "-",
              scopes: Iterable[str] | None = None) -> tuple[User, IssuedToken]:
        """Check name and password and issue a session token."""
        user = self.check_password(username, password, client=client, method="password")
        allowed = self.allowed_scopes(user)
        wanted = allowed if scopes is None else frozenset(scopes)
        if not wanted <= allowed:
            raise Forbidden(f"scope(s) {sorted(wanted - allowed)} not available to"
                            f" {user.name!r}; allowed: {sorted(allowed)}")
        return user, self.tokens.issue(user.id, kind="session", scopes=wanted)

    def change_password(self, user: User, current: str, new: str, *,
                        client: str = "-") -> User:
        """The user changes their own password (the current one is checked first).
        Every token of the user is revoked and cached Basic checks dropped."""
        self.check_password(user.name, current, client=client, method="password")
        return self.set_password(user.name, new, by=user.name)

    def set_password(self, username: str, password: str, *, by: str | None = None) -> User:
        """Set a password (operator, or after :meth:`change_password`); revokes tokens."""
        user = self.accounts.set_password(username, password)
        self.basic_cache.drop_user(user.id)
        self.audit_log.record("password", username=user.name, user_id=user.id,
                              detail=f"password set by {by or 'the operator'};"
                                     " all tokens revoked")
        return user

    def set_disabled(self, username: str, disabled: bool, *, by: str | None = None) -> User:
        user = self.accounts.set_disabled(username, disabled)
        self.basic_cache.drop_user(user.id)
        self.audit_log.record("admin", username=user.name, user_id=user.id,
                              detail=f"{'disabled' if disabled else 'enabled'} by"
                                     f" {by or 'the operator'}")
        return user

    def revoke_all(self, username: str, *, by: str | None = None) -> int:
        user = self.accounts.require(username)
        count = self.accounts.revoke_tokens(user.name)
        self.basic_cache.drop_user(user.id)
        self.audit_log.record("admin", username=user.name, user_id=user.id,
                              detail=f"{count} token(s) revoked by {by or 'the operator'}")
        return count

    def delete_user(self, username: str, *, by: str | None = None) -> None:
        user = self.accounts.require(username)
        self.accounts.delete_user(user.name)
        self.basic_cache.drop_user(user.id)
        self.audit_log.record("admin", username=user.name, user_id=user.id,
                              detail=f"deleted by {by or 'the operator'}")


def require_scope(identity: Identity, scope: str) -> None:
    """Raise unless ``identity`` is logged in with ``scope`` (``read``, ``write``,
    ``admin``)."""
    if identity.anonymous:
        raise AuthError("this needs a login: send a bearer token (POST /auth/token) or"
                        " HTTP Basic credentials")
    if scope not in identity.scopes:
        raise Forbidden(f"this needs the {scope!r} scope; the credentials used have"
                        f" {sorted(identity.scopes)}")


def is_sandbox_request(request: Request) -> bool:
    """Whether ``request`` came in on the sandbox API socket."""
    return request.scope.get(LISTENER) == SANDBOX_LISTENER


def refuse_sandbox(identity: Identity, action: str, *, allow_notebook: bool = False) -> None:
    """Raise :class:`Forbidden` for a job token (inside a sandbox) trying ``action``;
    with ``allow_notebook``, a notebook kernel's token may."""
    if identity.method == SANDBOX_METHOD or (identity.method == NOTEBOOK_METHOD
                                             and not allow_notebook):
        raise Forbidden(f"a job token cannot {action}; do it from outside the job")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


