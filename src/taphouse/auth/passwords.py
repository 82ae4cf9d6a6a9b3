"""Password hashing (argon2id) and the password rules."""

from __future__ import annotations

import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from taphouse.auth.errors import AccountError

MAX_PASSWORD_LENGTH = 1024  # bounds the work one request can cause


class PasswordHashing:
    """argon2id hashing and verification.

    Parameters
    ----------
    time_cost, memory_cost, parallelism
        argon2id parameters; the defaults are argon2-cffi's (RFC 9106 low-memory profile:
        3 passes over 64 MiB, 4 lanes), about 0.2 s per check on a small server.
    """

    def __init__(self, time_cost: int = 3, memory_cost: int = 65536,
                 parallelism: int = 4) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                                      parallelism=parallelism)
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        """An argon2id hash (salted, with its parameters) of ``password``."""
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
            self._dummy = self._hasher.hash(secrets.token_urlsafe(24))
        target = stored_hash or self._dummy
        try:
            ok = self._hasher.verify(target, password)
        except (VerificationError, InvalidHashError):
            ok = False
        return bool(ok) and stored_hash is not None

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
