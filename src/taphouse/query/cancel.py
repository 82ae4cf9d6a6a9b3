"""Cancelling a running query: :class:`CancelHandle` (abort, time limit, client gone)
and the one clock thread that enforces every query's time limit."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import Protocol


class Interruptible(Protocol):
    """What a running query can be stopped through (a DuckDB cursor, a sandbox...)."""

    def interrupt(self) -> None: ...


class CancelHandle:
    """Lets another thread cancel a running query (abort, time limit, client gone)."""

    def __init__(self) -> None:
        self._cursor: Interruptible | None = None
        self._lock = threading.Lock()
        self.reason: str | None = None
        self.rows = 0
        self._deadline: _Deadline | None = None

    def attach(self, cursor: Interruptible) -> None:
        with self._lock:
            self._cursor = cursor
            if self.reason:
                cursor.interrupt()

    def detach(self) -> None:
        """The cursor's query is over (the time limit still runs: one request may run
        several queries, e.g. a DEST write and the read-back)."""
        with self._lock:
            self._cursor = None

    def finish(self) -> None:
        """The request is over: detach, and drop the time limit."""
        with self._lock:
            self._cursor = None
            if self._deadline is not None:
                self._deadline.cancelled = True

    def cancel(self, reason: str) -> None:
        with self._lock:
            first = self.reason is None
            if first:
                self.reason = reason
            if self._cursor is not None:
                self._cursor.interrupt()
        if first:
            # DuckDB ignores an interrupt that arrives before the query starts running on
            # the cursor: keep interrupting until the query lets go of the cursor.
            threading.Thread(target=self._keep_interrupting, daemon=True).start()

    def _keep_interrupting(self, period: float = 0.05, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(period)
            with self._lock:
                cursor = self._cursor
                if cursor is None:
                    return
                cursor.interrupt()

    def deadline(self, seconds: float, reason: str | None = None) -> None:
        """Cancel automatically after ``seconds``."""
        msg = reason or f"execution duration limit of {seconds:g} s reached"
        self._deadline = _DEADLINES.add(seconds, self.cancel, msg)


class _Deadline:
    __slots__ = ("when", "action", "reason", "cancelled")

    def __init__(self, when: float, action: Callable[[str], None], reason: str) -> None:
        self.when, self.action, self.reason, self.cancelled = when, action, reason, False

    def __lt__(self, other: _Deadline) -> bool:
        return self.when < other.when


class _DeadlineClock:
    """One thread for the time limits of all running queries (a thread per query would
    cost more than a small query itself)."""

    def __init__(self) -> None:
        self._heap: list[_Deadline] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, action: Callable[[str], None], reason: str) -> _Deadline:
        item = _Deadline(time.monotonic() + seconds, action, reason)
        with self._wake:
            if len(self._heap) > 4096:  # drop the limits of queries that ended long ago
                self._heap = [i for i in self._heap if not i.cancelled]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="query-deadlines",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()
        return item

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                delay = self._heap[0].when - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                item = heapq.heappop(self._heap)
            if not item.cancelled:
                item.action(item.reason)


_DEADLINES = _DeadlineClock()
