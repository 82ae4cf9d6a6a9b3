"""Password hashing (argon2id) and the password rules."""

from __future__ import annotations

import asyncio
import functools
import hmac
import secrets
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from taphouse.auth.errors import AccountError, LoginBusy

MAX_PASSWORD_LENGTH = 1024  # bounds the work one request can cause
T = TypeVar("T")


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


class _Turn:
    """One password check waiting for its turn in a :class:`LoginLane`."""

    __slots__ = ("loop", "future", "state")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.state = "waiting"  # then "running" (its turn came) or "pushed out"


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if not future.done():
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class LoginLane:
    """The password checks of HTTP requests (logins, uncached HTTP Basic, password
    changes): at most ``concurrent`` run at once, in worker threads of their own; the
    others wait their turn on the event loop, where a waiting login costs a coroutine
    and its connection, neither a thread nor argon2 memory.

    The waiting room is a :class:`~taphouse.admission.fair_queue.FairQueue` over client
    networks: at most ``queue`` callers wait in all, ``per_address`` per address (IPv6
    /64), ``per_site`` per IPv6 /48 or IPv4 /24 and ``per_provider`` per IPv6 /32 or IPv4
    /16; turns go round-robin between networks, and a full queue pushes out the newest
    waiter of the heaviest network for a caller from a lighter one. Each waits at most
    ``wait`` seconds; a caller refused a place, pushed out or out of time gets
    :class:`LoginBusy` (503 with Retry-After). So a legitimate login under load waits
    rather than fails, a flood of logins holds ``concurrent`` threads and ``concurrent``
    × 64 MiB at most, and a flood from one network (even a /32) neither fills the queue
    nor delays another network's turn by more than one check per flooding network.
    ``concurrent`` should be the :class:`HashingGate`'s: checks started here then never
    wait in the gate (other callers of the gate, such as the command line, still may).
    """

    def __init__(self, concurrent: int = 2, queue: int = 256, per_address: int = 4,
                 wait: float = 30.0, retry_after: int = 5, *, per_site: int = 64,
                 per_provider: int = 128) -> None:
        from taphouse.admission.fair_queue import FairQueue

        self.concurrent = max(1, int(concurrent))
        self.queue = max(0, int(queue))
        self.per_address = max(0, int(per_address))
        self.wait = wait
        self.retry_after = max(1, int(retry_after))
        self.running = 0
        self.peak = 0
        self._waiting: FairQueue[_Turn] = FairQueue(
            self.queue, (max(0, int(per_provider)), max(0, int(per_site)), self.per_address))
        # Turns and counts are shared by every event loop serving the app (the sandbox
        # API has its own): a turn is handed to a waiter of another loop thread-safely.
        # Threads are per loop (anyio limiters belong to one loop).
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = \
            weakref.WeakKeyDictionary()

    @property
    def waiting(self) -> int:
        """Callers waiting for their turn."""
        return len(self._waiting)

    def waiting_from(self, network: tuple[str, ...]) -> int:
        """Callers waiting from ``network`` (a prefix of an address path)."""
        with self._lock:
            return self._waiting.count(network)

    def _threads(self) -> Any:
        import anyio

        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._loops.get(loop)
            if found is None:
                found = anyio.CapacityLimiter(self.concurrent)
                self._loops[loop] = found
        return found

    def _busy(self, why: str) -> LoginBusy:
        return LoginBusy(f"{why}; try again in {self.retry_after} s",
                         retry_after=self.retry_after)

    def _start_locked(self) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)

    def _finish_locked(self) -> None:
        """A running check ended: its turn goes to the next waiter."""
        self.running -= 1
        while self.running < self.concurrent:
            turn = self._waiting.pop()
            if turn is None:
                return
            turn.state = "running"
            self._start_locked()
            turn.loop.call_soon_threadsafe(_settle, turn.future, None)

    async def run(self, address: str, func: Callable[..., T], *args: Any,
                  **kwargs: Any) -> T:
        """``func(*args, **kwargs)`` in a thread of the lane, once it is this caller's
        turn; :class:`LoginBusy` when there is no place for it in the queue, it is
        pushed out, or the turn does not come within ``wait`` seconds."""
        import anyio
        import anyio.to_thread

        from taphouse.admission.addresses import address_path
        from taphouse.admission.fair_queue import QueueFull

        threads = self._threads()
        turn = _Turn(asyncio.get_running_loop())
        with self._lock:
            if self.running < self.concurrent and not len(self._waiting):
                turn.state = "running"
                self._start_locked()
            else:
                try:
                    pushed = self._waiting.push(address_path(address), turn)
                except QueueFull:
                    raise self._busy("too many logins are waiting to be checked right"
                                     " now") from None
                if pushed is not None:
                    pushed.state = "pushed out"
                    pushed.loop.call_soon_threadsafe(
                        _settle, pushed.future,
                        self._busy("too many logins are waiting to be checked right now"
                                   " (this one made room for a login from another network)"))
        if turn.state == "waiting":
            try:
                with anyio.fail_after(self.wait):
                    await turn.future
            except BaseException as exc:
                with self._lock:
                    state = turn.state
                    if state == "waiting":
                        self._waiting.remove(turn)
                        turn.state = "gave up"
                    elif state == "running":  # the turn came as it gave up: pass it on
                        self._finish_locked()
                if isinstance(exc, TimeoutError) and state == "waiting":
                    raise self._busy(f"no password check could start within {self.wait:g} s"
                                     " (too many logins at once)") from None
                raise
        try:
            return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs),
                                                  limiter=threads)
        finally:
            with self._lock:
                self._finish_locked()


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
