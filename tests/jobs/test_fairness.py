"""Round-robin across owners with a per-owner cap."""

from __future__ import annotations

from taphouse.jobs.fairness import FairScheduler


def _drain(sched: FairScheduler, queued: list[tuple[str, str | None]], slots: int) -> list[str]:
    """Start jobs as a pool of ``slots`` workers would, finishing the oldest first."""
    order: list[str] = []
    running: list[tuple[str, str | None]] = []
    queue = list(queued)
    while queue or running:
        while len(running) < slots:
            pick = sched.choose(queue)
            if pick is None:
                break
            queue.remove(pick)
            sched.started(pick[1])
            running.append(pick)
            order.append(pick[0])
        job_id, owner = running.pop(0)
        sched.finished(owner)
    return order


def test_owners_take_turns_whatever_the_queue_order():
    sched = FairScheduler(max_per_owner=5)
    queued = [(f"a{i}", "alice") for i in range(4)] + [("b0", "bob"), ("b1", "bob"),
                                                        ("c0", None)]
    order = _drain(sched, queued, slots=1)
    # alice queued first, but bob and the anonymous caller get their turns interleaved.
    assert order[:4] == ["a0", "b0", "c0", "a1"]
    assert order.index("b1") < order.index("a2")
    assert sorted(order) == sorted(j for j, _ in queued)


def test_cap_leaves_jobs_queued_when_only_capped_owners_wait():
    sched = FairScheduler(max_per_owner=2)
    queued = [(f"a{i}", "alice") for i in range(4)]
    assert sched.choose(queued) == ("a0", "alice")
    sched.started("alice")
    assert sched.choose(queued[1:]) == ("a1", "alice")
    sched.started("alice")
    assert sched.choose(queued[2:]) is None
    # Another owner is not blocked by alice's cap.
    assert sched.choose([*queued[2:], ("b0", "bob")]) == ("b0", "bob")
    sched.finished("alice")
    assert sched.choose(queued[2:]) == ("a2", "alice")
    assert sched.running["alice"] == 1


def test_never_served_owner_goes_before_recently_served():
    sched = FairScheduler(max_per_owner=3)
    sched.started("alice")
    sched.finished("alice")
    assert sched.choose([("a1", "alice"), ("b0", "bob")]) == ("b0", "bob")
