"""Throttling of failed logins, per account name and per client address.

In memory: a restart forgets the counts, which is acceptable for slowing down guessing
(each guess still costs an argon2id check). Names that do not exist are counted like
names that do, so the answers reveal nothing about which accounts exist.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from taphouse.auth.errors import TooManyAttempts


class LoginThrottle:
    """Refuses logins after too many recent failures.

    Parameters
    ----------
    per_account, per_address
        Failures allowed within ``window`` seconds for one account name / one client
        address before further attempts are refused until the oldest failure ages out.
    window
        Seconds over which failures count.
    clock
        Returns the current time in seconds.
    """

    def __init__(self, *, per_account: int = 5, per_address: int = 20, window: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def check(self, username: str, address: str) -> None:
        """Raise :class:`TooManyAttempts` when this account or address is throttled."""
        now = self.clock()
        with self._lock:
            waits = [self._wait(_account(username), self.per_account, now),
                     self._wait(("address", address), self.per_address, now)]
        wait = max(waits)
        if wait > 0:
            raise TooManyAttempts(
                f"too many failed logins; try again in {math.ceil(wait)} s",
                retry_after=math.ceil(wait))

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (_account(username), ("address", address)):
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of names
                self._prune(now)

    def succeeded(self, username: str) -> None:
        """A correct password clears the account's count (not the address's)."""
        with self._lock:
            self._failures.pop(_account(username), None)

    def _wait(self, key: tuple[str, str], limit: int, now: float) -> float:
        q = self._failures.get(key)
        if not q:
            return 0.0
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) < limit:
            return 0.0
        return q[len(q) - limit] + self.window - now

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            q = self._failures[key]
            while q and q[0] <= now - self.window:
                q.popleft()
            if not q:
                del self._failures[key]


def _account(username: str) -> tuple[str, str]:
    # The same normalisation as the account lookup (check_account_name): " Alice " is
    # alice, and must not get a throttle count of its own.
    return ("account", username.strip().lower())
