"""A short cache of successful HTTP Basic checks.

TOPCAT, STILTS and pyvo send name and password with every request; an argon2id check
per request would cost ~0.2 s and 64 MiB. A successful check is remembered for a few
minutes, keyed by an HMAC of the credentials under a key that exists only in this
process's memory (so the cache holds nothing an attacker could test guesses against).
An entry counts only while the account's ``credentials_version`` is unchanged: a
password change or a disable, even from another process, ends it at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable


class BasicCache:
    """Maps a digest of (name, password) to (user id, credentials version, expiry)."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.time,
                 max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.clock = clock
        self.max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._entries: dict[bytes, tuple[int, int, float]] = {}

    def key(self, username: str, password: str) -> bytes:
        msg = username.lower().encode() + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def get(self, key: bytes) -> tuple[int, int] | None:
        """(user id, credentials version) of a live entry, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[2] <= self.clock():
                del self._entries[key]
                return None
            return entry[0], entry[1]

    def put(self, key: bytes, user_id: int, credentials_version: int) -> None:
        if self.seconds <= 0:
            return
        now = self.clock()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[2] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (user_id, credentials_version, now + self.seconds)

    def drop_user(self, user_id: int) -> None:
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[0] != user_id}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
