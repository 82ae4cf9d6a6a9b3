"""The one clock thread of every query's time limit survives an action that fails."""

from __future__ import annotations

import threading

from taphouse.engine.deadlines import DeadlineClock


def test_a_failing_action_does_not_end_later_time_limits():
    """An interrupt that raises (a backend gone, a closed connection) ended the clock's
    thread, and with it every later time limit of the process: queries ran on forever."""
    clock = DeadlineClock()
    fired = threading.Event()

    def fails(_reason: str) -> None:
        raise RuntimeError("the interrupt failed")

    clock.add(0.01, fails, "first")
    clock.add(0.02, lambda _reason: fired.set(), "second")
    assert fired.wait(10)
    later = threading.Event()
    clock.add(0.01, lambda _reason: later.set(), "third")
    assert later.wait(10)
