"""Password hashing (argon2id) and the password rules."""

from __future__ import annotations

import hmac
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from taphouse.auth.errors import AccountError, LoginBusy

MAX_PASSWORD_LENGTH = 1024  # bounds the work one request can cause


class HashingGate:
    """At most ``concurrent`` argon2id computations at once (each holds 64 MiB and a core
    for ~0.2 s), with at most ``waiting`` callers queued for ``wait`` seconds; anything
    beyond is refused at once with :class:`LoginBusy` (503), so a flood of logins costs
    neither unbounded memory nor every server thread."""

    def __init__(self, concurrent: int = 2, waiting: int = 8, wait: float = 10.0) -> None:
        self.concurrent = concurrent
        self._slots = threading.BoundedSemaphore(max(1, concurrent))
        self._lock = threading.Lock()
        self._waiting = 0
        self.max_waiting = waiting
        self.wait = wait
        self.running = 0
        self.peak = 0

    def __enter__(self) -> HashingGate:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self.max_waiting:
                    raise LoginBusy("too many logins are being checked right now; try again"
                                    " in a second", retry_after=1)
                self._waiting += 1
            try:
                got = self._slots.acquire(timeout=self.wait)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not got:
                raise LoginBusy("too many logins are being checked right now; try again"
                                " in a few seconds", retry_after=2)
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.running -= 1
        self._slots.release()


class PasswordHashing:
    """argon2id hashing and verification.

    Parameters
    ----------
    time_cost, memory_cost, parallelism
        argon2id parameters; the defaults are argon2-cffi's (RFC 9106 low-memory profile:
        3 passes over 64 MiB, 4 lanes), about 0.2 s per check on a small server.
    """

    def __init__(self, time_cost: int = 3, memory_cost: int = 65536,
                 parallelism: int = 4, *, gate: HashingGate | None = None) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                                      parallelism=parallelism)
        self._dummy: str | None = None
        #: Caps the argon2id computations running at once (shared by hash and verify).
        self.gate = gate or HashingGate()

    def hash(self, password: str) -> str:
        """An argon2id hash (salted, with its parameters) of ``password``."""
        with self.gate:
            return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored_hash``. With ``stored_hash=None`` a
        dummy hash is checked (same cost) and False returned."""
        if len(password) > MAX_PASSWORD_LENGTH:
            password = password[:MAX_PASSWORD_LENGTH]
            stored_hash = None
        if self._dummy is None:
            # A hash of a random secret nobody knows: checked when the user does not
            # exist, so an unknown name costs the same time as a wrong password.
            self._dummy = self.hash(secrets.token_urlsafe(24))
        target = stored_hash or self._dummy
        ok: bool
        with self.gate:
            try:
                ok = self._hasher.verify(target, password)
            except (VerificationError, InvalidHashError):
                ok = False
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)


def check_password_rules(username: str, password: str, min_length: int) -> None:
    """Raise :class:`AccountError` when ``password`` is too weak for ``username``."""
    if len(password) < min_length:
        raise AccountError(f"password too short: use at least {min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"password too long: use at most {MAX_PASSWORD_LENGTH} characters")
    if hmac.compare_digest(password.strip().lower().encode(), username.lower().encode()):
        raise AccountError("the password must not be the user name")
    if len(set(password)) < 3:
        raise AccountError("password too simple: use more than two different characters")
