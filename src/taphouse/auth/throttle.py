"""Throttling of password checks: per (account, address), per address, and a capped
per-account delay.

- **(account, address)**: one client may fail ``per_pair`` times on one account within
  ``window`` seconds; then that pair is refused (429 with Retry-After) until the oldest
  failure ages out.
- **address**: one client may fail ``per_address`` times across all accounts (against
  password spraying: many names, few guesses each).
- **account**: failures from any address slow every further check of that account by
  a delay that doubles per failure and is capped at ``max_delay`` (2 s). The account is
  never locked: its owner, with the right password, gets in after at most that delay,
  however many addresses are guessing.

Counting is atomic: :meth:`LoginThrottle.begin` reserves an attempt before the password
is checked, so attempts in flight count against the limits (40 concurrent wrong
passwords against a limit of 5 give 5 checks, not 40). Names that do not exist are
counted like names that do, so the answers reveal nothing about which accounts exist.

In memory: a restart forgets the counts (each guess still costs an argon2id check, and
the number of checks running at once is capped in :mod:`taphouse.auth.passwords`).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from taphouse.auth.errors import TooManyAttempts


@dataclass
class Attempt:
    """One reserved password check (see :meth:`LoginThrottle.begin`)."""

    account: str
    address: str
    done: bool = False


class LoginThrottle:
    """Limits password checks; see the module documentation.

    Parameters
    ----------
    per_pair
        Failures allowed within ``window`` for one (account, client address).
    per_address
        Failures allowed within ``window`` for one client address, across accounts.
    account_free, first_delay, max_delay
        The first ``account_free`` failures of an account (from any address) within
        ``window`` cost nothing; each further one doubles a delay starting at
        ``first_delay`` seconds, never more than ``max_delay``.
    window
        Seconds over which failures count.
    clock
        Returns the current time in seconds.
    """

    def __init__(self, *, per_pair: int = 5, per_address: int = 20, account_free: int = 5,
                 first_delay: float = 0.25, max_delay: float = 2.0, window: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.per_pair = per_pair
        self.per_address = per_address
        self.account_free = account_free
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, ...], deque[float]] = {}
        self._in_flight: dict[tuple[str, ...], int] = {}

    def begin(self, username: str, address: str) -> Attempt:
        """Reserve one password check, or raise :class:`TooManyAttempts` (429) when the
        pair or the address has used up its failures. Every :meth:`begin` must be
        followed by one :meth:`end`."""
        account = normalise(username)
        address = address_key(address)
        keys = (("pair", account, address), ("address", address))
        limits = (self.per_pair, self.per_address)
        now = self.clock()
        with self._lock:
            wait = 0.0
            for key, limit in zip(keys, limits, strict=True):
                wait = max(wait, self._wait(key, limit, now))
            if wait > 0:
                raise TooManyAttempts(
                    f"too many failed logins; try again in {math.ceil(wait)} s",
                    retry_after=math.ceil(wait))
            for key in keys:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
            if len(self._failures) > 100_000:  # bound memory under a spray of names
                self._prune(now)
        return Attempt(account, address)

    def check(self, username: str, address: str) -> None:
        """Raise :class:`TooManyAttempts` when :meth:`begin` would, reserving nothing:
        lets a caller refuse a doomed attempt before it waits for a password check."""
        keys = (("pair", normalise(username), address_key(address)),
                ("address", address_key(address)))
        now = self.clock()
        with self._lock:
            wait = max(self._wait(key, limit, now)
                       for key, limit in zip(keys, (self.per_pair, self.per_address),
                                             strict=True))
        if wait > 0:
            raise TooManyAttempts(f"too many failed logins; try again in {math.ceil(wait)} s",
                                  retry_after=math.ceil(wait))

    def end(self, attempt: Attempt, ok: bool | None) -> None:
        """Record the outcome of a reserved check: a failure counts for the pair, the
        address and the account; a success clears the pair's count; ``None`` (the
        check did not happen) only releases the reservation."""
        if attempt.done:
            return
        attempt.done = True
        pair = ("pair", attempt.account, attempt.address)
        address = ("address", attempt.address)
        now = self.clock()
        with self._lock:
            for key in (pair, address):
                left = self._in_flight.get(key, 1) - 1
                if left > 0:
                    self._in_flight[key] = left
                else:
                    self._in_flight.pop(key, None)
            if ok is None:
                return
            if ok:
                self._failures.pop(pair, None)
                return
            for key in (pair, address, ("account", attempt.account)):
                self._failures.setdefault(key, deque()).append(now)

    def delay(self, username: str) -> float:
        """Seconds to wait before checking a password of this account (0 to max_delay)."""
        key = ("account", normalise(username))
        now = self.clock()
        with self._lock:
            q = self._failures.get(key)
            if not q:
                return 0.0
            _expire(q, now - self.window)
            extra = len(q) - self.account_free
        if extra < 0:
            return 0.0
        return min(self.max_delay, self.first_delay * 2.0 ** min(extra, 16))

    def _wait(self, key: tuple[str, ...], limit: int, now: float) -> float:
        q = self._failures.get(key)
        if q:
            _expire(q, now - self.window)
        failed = len(q) if q else 0
        busy = self._in_flight.get(key, 0)
        if failed + busy < limit:
            return 0.0
        # The failure that must age out before one more attempt fits.
        index = failed + busy - limit
        if q and index < failed:
            return max(q[index] + self.window - now, 0.001)
        return 1.0  # only attempts in flight: they end within a second or two

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            q = self._failures[key]
            _expire(q, now - self.window)
            if not q:
                del self._failures[key]


def normalise(username: str) -> str:
    """The account a login name means: the same normalisation as the account lookup
    (``check_account_name``), so " Alice " and "ALICE" share alice's counts."""
    return username.strip().lower()


def address_key(address: str) -> str:
    """The client an address stands for: an IPv6 address counts as its /64 (one
    subscriber's network; rotating addresses within it must not reset the counts)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _expire(q: deque[float], cutoff: float) -> None:
    while q and q[0] <= cutoff:
        q.popleft()
