"""Caps on concurrent work: a request over a cap is refused at once, never queued.

:class:`SlotPool` admits a unit of work (a sync query, a download, an upload) when the
pool, the caller and — for anonymous callers — all anonymous callers together are under
their caps; otherwise it raises :class:`Overloaded` (HTTP 503 with ``Retry-After``).
Waiting in a queue would let one caller's backlog delay everyone and hold a connection
per waiting request; an immediate 503 tells a well-written client to come back later.

:class:`ByteBudget` does the same for bytes held on behalf of a caller (upload bytes in
flight).
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from taphouse.errors import ServiceError


class Overloaded(ServiceError):
    """A cap is full: HTTP 503 with ``Retry-After`` (seconds)."""

    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Slot:
    """One admitted unit of work; :meth:`release` gives the place back (idempotent)."""

    __slots__ = ("_pool", "key", "grouped", "_released")

    def __init__(self, pool: SlotPool, key: str, grouped: bool) -> None:
        self._pool, self.key, self.grouped, self._released = pool, key, grouped, False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self.key, self.grouped)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class SlotPool:
    """Concurrent units of work: at most ``total`` in all, ``per_key`` per caller key and
    ``group_total`` for the keys acquired with ``grouped=True`` (the anonymous callers).

    Parameters
    ----------
    what
        What a slot is, for the refusal message ("synchronous queries").
    retry_after
        Seconds suggested to a refused caller.
    """

    def __init__(self, what: str, *, total: int, per_key: int, group_total: int | None = None,
                 retry_after: int = 5) -> None:
        self.what = what
        self.total = max(1, int(total))
        self.per_key = max(1, int(per_key))
        self.group_total = None if group_total is None else max(1, int(group_total))
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()
        self._count = 0
        self._group = 0

    def acquire(self, key: str, *, grouped: bool = False) -> Slot:
        """A slot for ``key``, or :class:`Overloaded` when a cap is full."""
        with self._lock:
            self._check(key, grouped)
            self._running[key] += 1
            self._count += 1
            if grouped:
                self._group += 1
        return Slot(self, key, grouped)

    def check(self, key: str, *, grouped: bool = False) -> None:
        """Raise :class:`Overloaded` if :meth:`acquire` would now (takes nothing)."""
        with self._lock:
            self._check(key, grouped)

    def _check(self, key: str, grouped: bool) -> None:
        if self._running.get(key, 0) >= self.per_key:
            raise Overloaded(
                f"you already have {self.per_key} {self.what} running, the most one"
                " caller may run at once; wait for one to finish (or use the async"
                " endpoint for long queries)", self.retry_after)
        if self._count >= self.total:
            raise Overloaded(f"the service is running as many {self.what} as it can"
                             f" ({self.total}); try again shortly", self.retry_after)
        if grouped and self.group_total is not None and self._group >= self.group_total:
            raise Overloaded(
                f"anonymous callers together are running as many {self.what} as they"
                f" may ({self.group_total}); try again shortly, or log in",
                self.retry_after)

    def _release(self, key: str, grouped: bool) -> None:
        with self._lock:
            self._running[key] -= 1
            if self._running[key] <= 0:
                del self._running[key]
            self._count -= 1
            if grouped:
                self._group -= 1

    def running(self, key: str | None = None) -> int:
        """Slots held in all (or by ``key``)."""
        with self._lock:
            return self._count if key is None else self._running.get(key, 0)


class ByteBudget:
    """Bytes held per caller key at once (e.g. upload bytes being received or read),
    at most ``per_key``; :meth:`take` refuses more with :class:`TooLarge` (HTTP 413)."""

    def __init__(self, per_key: int, what: str = "upload bytes") -> None:
        self.per_key = int(per_key)
        self.what = what
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    def take(self, key: str, nbytes: int) -> None:
        with self._lock:
            held = self._held.get(key, 0)
            if held + nbytes > self.per_key:
                raise TooLarge(
                    f"you have {held} {self.what} in flight; one caller may have at most"
                    f" {self.per_key} at once: wait for your other uploads to finish")
            self._held[key] += nbytes

    def give_back(self, key: str, nbytes: int) -> None:
        with self._lock:
            self._held[key] -= nbytes
            if self._held[key] <= 0:
                del self._held[key]

    def held(self, key: str | None = None) -> int:
        """Bytes held by ``key`` (or by everyone)."""
        with self._lock:
            return sum(self._held.values()) if key is None else self._held.get(key, 0)


async def spool_body(request: Any, limit: int, directory: Path, budget: ByteBudget,
                     key: str, what: str = "upload") -> tuple[Path, int]:
    """Write the body of ``request`` (a Starlette request) to a new file under
    ``directory`` as it arrives: at most ``limit`` bytes, each counted against the
    caller's bytes in flight (``budget`` under ``key``) before it is written, so a body
    over either bound is refused (:class:`TooLarge`) as soon as it gets there, whether
    its length was declared or it came chunked. Returns the file and the bytes held in
    ``budget``; the caller deletes the file and gives those back."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{what} of {declared} bytes; the limit is {limit}")
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", dir=directory)
    path, held = Path(name), 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                if held + len(chunk) > limit:
                    raise TooLarge(f"{what} larger than the limit of {limit} bytes")
                budget.take(key, len(chunk))
                held += len(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        if held:
            budget.give_back(key, held)
        raise
    return path, held


#: The most bytes of a JSON request body to /api (names, descriptions, share lists,
#: remote registrations).
JSON_MAX_BYTES = 1024 * 1024


async def read_body(request: Any, limit: int = JSON_MAX_BYTES) -> bytes:
    """The whole body of ``request`` (a Starlette request) in memory, for small bodies
    (JSON, forms): at most ``limit`` bytes, else :class:`TooLarge` as soon as the declared
    length or the bytes arrived so far pass it (a chunked body declares none)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body has {declared} bytes; at most {limit} here")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise TooLarge(f"the request body is larger than {limit} bytes, the most"
                           " accepted here")
    return bytes(raw)


T = TypeVar("T")


class ThreadLane:
    """Worker threads of its own for one kind of work, so that it never waits behind
    another kind for a thread of the shared pool (queries here, logins and metadata
    there). ``size`` should be the cap of the :class:`SlotPool` that admits the work."""

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self._limiter: Any = None

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        import anyio.to_thread

        if self._limiter is None:  # created in the event loop that uses it
            self._limiter = anyio.CapacityLimiter(self.size)
        return await anyio.to_thread.run_sync(functools.partial(func, *args),
                                              limiter=self._limiter)


def _nothing() -> None:
    return None


async def retire_idle_threads(period: float = 5.0) -> None:
    """Every ``period`` seconds, until cancelled: end the worker threads of the event
    loop's pool that have been idle 10 s or more.

    anyio ends an idle worker only when another call reuses the pool, so after a burst
    (up to the shared pool's 40 threads plus the query, metadata and login lanes) the
    threads stayed, each with its open SQLite connection of the metadata database (two
    open files: the database and its WAL): open files grew with the highest concurrency
    reached. A no-op call every few seconds lets anyio prune them; a thread's connection
    is closed as the thread ends."""
    import asyncio

    import anyio.to_thread

    while True:
        await asyncio.sleep(period)
        await anyio.to_thread.run_sync(_nothing)


class RetryAfter:
    """ASGI middleware: every 503 the application sends carries ``Retry-After`` (the
    application's own value when it set one, else ``seconds``), whichever layer raised
    it (a full cap, a login queue, a backend or the data directory not available)."""

    def __init__(self, app: Any, seconds: int = 5) -> None:
        self.app = app
        self.header = (b"retry-after", str(max(1, int(seconds))).encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_retry(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                headers = list(message.get("headers", ()))
                if not any(k.lower() == b"retry-after" for k, _ in headers):
                    message = {**message, "headers": [*headers, self.header]}
            await send(message)

        await self.app(scope, receive, send_with_retry)


class TooLarge(ServiceError):
    """A request or its sum with what the caller holds exceeds a byte limit (HTTP 413)."""

    status = 413


__all__ = ["JSON_MAX_BYTES", "ByteBudget", "Overloaded", "RetryAfter", "Slot", "SlotPool",
           "ThreadLane", "TooLarge", "read_body", "retire_idle_threads", "spool_body"]
