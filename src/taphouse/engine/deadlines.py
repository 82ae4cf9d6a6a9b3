"""One thread that runs actions at deadlines: the time limits of every running query
(:class:`taphouse.query.cancel.CancelHandle`, ``Backend.limit``)."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

class Deadline:
    """One pending action; setting ``cancelled`` drops it."""

    __slots__ = ("when", "action", "reason", "cancelled")

    def __init__(self, when: float, action: Callable[[str], None], reason: str) -> None:
        self.when, self.action, self.reason, self.cancelled = when, action, reason, False

    def __lt__(self, other: Deadline) -> bool:
        return self.when < other.when


class DeadlineClock:
    """One thread for the time limits of all running queries (a thread per query would
    cost more than a small query itself)."""

    def __init__(self) -> None:
        self._heap: list[Deadline] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, action: Callable[[str], None], reason: str) -> Deadline:
        item = Deadline(time.monotonic() + seconds, action, reason)
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
                try:
                    item.action(item.reason)
                except Exception:  # noqa: BLE001 - one failed interrupt must not end
                    # the thread, and with it every later time limit of the process
                    log.exception("time limit action failed (%s)", item.reason)


#: The process's one clock.
DEADLINES = DeadlineClock()
