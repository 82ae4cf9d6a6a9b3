"""Cancelling a running query: :class:`CancelHandle` (abort, time limit, client gone)
and the one clock thread that enforces every query's time limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from taphouse.engine.deadlines import DEADLINES, Deadline


@runtime_checkable
class Interruptible(Protocol):
    """What a running query can be stopped through (a DuckDB cursor, a sandbox...)."""

    def interrupt(self) -> None: ...


class CancelHandle:
    """Lets another thread cancel a running query (abort, time limit, client gone)."""

    def __init__(self) -> None:
        self._cursor: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self.reason: str | None = None
        self.rows = 0
        self._deadline: Deadline | None = None

    def attach(self, cursor: Interruptible | Callable[[], None]) -> None:
        """What stops the running query: an object with ``interrupt()`` (a DuckDB
        cursor, a sandbox), or a function (``lambda: backend.interrupt(cur)``)."""
        with self._lock:
            self._cursor = cursor.interrupt if isinstance(cursor, Interruptible) else cursor
            if self.reason:
                self._cursor()

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
                self._cursor()
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
                cursor()

    def deadline(self, seconds: float, reason: str | None = None) -> None:
        """Cancel automatically after ``seconds``."""
        msg = reason or f"execution duration limit of {seconds:g} s reached"
        self._deadline = DEADLINES.add(seconds, self.cancel, msg)
