import asyncio
import threading
import time

import pytest

from taphouse.auth.errors import LoginBusy, TooManyAttempts
from taphouse.auth.passwords import HashingGate, LoginLane
from taphouse.auth.throttle import LoginThrottle


def fail(t: LoginThrottle, name: str, address: str) -> None:
    t.end(t.begin(name, address), ok=False)


def test_pair_is_throttled_after_failures_then_recovers(clock):
    t = LoginThrottle(per_pair=3, per_address=100, window=60, clock=clock)
    for _ in range(3):
        fail(t, "alice", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as err:
        t.begin("ALICE ", "10.0.0.1")
    assert err.value.status == 429 and 1 <= err.value.retry_after <= 60
    t.end(t.begin("bob", "10.0.0.1"), ok=True)  # other accounts unaffected
    t.end(t.begin("alice", "10.0.0.2"), ok=True)  # and the account from elsewhere
    clock.advance(61)
    t.begin("alice", "10.0.0.1")


def test_address_is_throttled_across_names(clock):
    t = LoginThrottle(per_pair=100, per_address=4, window=60, clock=clock)
    for i in range(4):
        fail(t, f"user{i}", "10.1.1.1")
    with pytest.raises(TooManyAttempts):
        t.begin("someone", "10.1.1.1")
    t.begin("someone", "10.1.1.2")


def test_success_clears_pair_but_not_address(clock):
    t = LoginThrottle(per_pair=2, per_address=3, window=60, clock=clock)
    fail(t, "alice", "a")
    fail(t, "alice", "a")
    t.end(t.begin("alice", "b"), ok=True)
    with pytest.raises(TooManyAttempts):
        t.begin("alice", "a")
    fail(t, "carol", "a")
    with pytest.raises(TooManyAttempts):
        t.begin("dave", "a")


def test_retry_after_counts_down(clock):
    t = LoginThrottle(per_pair=1, per_address=100, window=100, clock=clock)
    fail(t, "alice", "a")
    clock.advance(40)
    with pytest.raises(TooManyAttempts) as err:
        t.begin("alice", "a")
    assert err.value.retry_after == 60


def test_account_failures_from_everywhere_delay_but_never_lock(clock):
    t = LoginThrottle(per_pair=5, per_address=20, account_free=5, first_delay=0.25,
                      max_delay=2.0, window=300, clock=clock)
    assert t.delay("victim") == 0
    delays = []
    for i in range(40):  # 8 addresses, 5 guesses each: every pair at its limit
        fail(t, "victim", f"10.9.0.{i // 5}")
        delays.append(t.delay("Victim"))
    assert delays[:4] == [0] * 4
    assert 0 < delays[4] < delays[6] <= 2.0
    assert max(delays) == 2.0  # capped
    # the owner, from their own address, is not refused: only slowed down
    t.end(t.begin("victim", "192.0.2.7"), ok=True)
    clock.advance(301)
    assert t.delay("victim") == 0


def test_attempts_in_flight_count_atomically(clock):
    # 40 concurrent wrong passwords against a pair limit of 5: before, all 40 passed
    # the check before any failure was recorded.
    t = LoginThrottle(per_pair=5, per_address=20, window=60, clock=clock)
    admitted, refused = [], []
    barrier = threading.Barrier(40)

    def attempt() -> None:
        barrier.wait()
        try:
            a = t.begin("alice", "10.0.0.1")
        except TooManyAttempts:
            refused.append(1)
            return
        admitted.append(a)

    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(admitted) == 5 and len(refused) == 35
    for a in admitted:
        t.end(a, ok=False)
    with pytest.raises(TooManyAttempts):
        t.begin("alice", "10.0.0.1")


def test_hashing_gate_caps_concurrency_and_queue():
    gate = HashingGate(concurrent=2, waiting=1, wait=0.2)
    release = threading.Event()
    entered = threading.Barrier(3)

    def hold() -> None:
        with gate:
            entered.wait()
            release.wait(5)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for th in holders:
        th.start()
    entered.wait()
    assert gate.running == 2
    with pytest.raises(LoginBusy) as err:  # waits 0.2 s for a slot, then gives up
        with gate:
            pass
    assert err.value.status == 503 and err.value.retry_after >= 1
    release.set()
    for th in holders:
        th.join()
    with gate:
        assert gate.running == 1
    assert gate.peak == 2


def test_ipv6_addresses_count_per_64_and_unchecked_attempts_do_not_count(clock):
    t = LoginThrottle(per_pair=100, per_address=3, window=60, clock=clock)
    for i in range(3):  # a new address of one /64 for every guess
        fail(t, f"user{i}", f"2001:db8:1:2::{i + 1}")
    with pytest.raises(TooManyAttempts):
        t.begin("someone", "2001:db8:1:2:ffff::9")
    t.begin("someone", "2001:db8:1:3::1")  # another /64
    # a check that did not happen (busy, error) releases without counting
    u = LoginThrottle(per_pair=1, per_address=100, window=60, clock=clock)
    u.end(u.begin("alice", "10.0.0.1"), None)
    u.begin("alice", "10.0.0.1")


def _lane_run(lane: LoginLane, calls: list[tuple[str, int]], release: threading.Event,
              hold: float = 5) -> list[object]:
    """Runs ``lane.run(address, work, i)`` for each call at once; ``work`` blocks until
    ``release``; returns each call's result or exception (in order)."""

    def work(i: int) -> int:
        release.wait(hold)
        return i

    async def main() -> list[object]:
        tasks = []
        for address, i in calls:
            tasks.append(asyncio.create_task(lane.run(address, work, i)))
            await asyncio.sleep(0.01)  # first come, first served
        await asyncio.sleep(0.05)
        seen = (lane.running, lane.waiting)
        release.set()
        out = await asyncio.gather(*tasks, return_exceptions=True)
        return [seen, *out]

    return asyncio.run(main())


def test_login_lane_queues_on_the_loop_and_refuses_past_its_bounds():
    lane = LoginLane(concurrent=1, queue=3, per_address=2, wait=10, retry_after=7)
    calls = [("10.0.0.1", 0), ("10.0.0.2", 1), ("10.0.0.3", 2), ("10.0.0.5", 3),
             ("10.0.0.4", 4),  # the queue (3) is full, no address holds more: refused
             ]
    seen, *out = _lane_run(lane, calls, threading.Event())
    assert seen == (1, 3)  # one check runs, three wait (holding no thread)
    assert out[:4] == [0, 1, 2, 3]
    assert isinstance(out[4], LoginBusy) and out[4].retry_after == 7
    assert lane.peak == 1 and lane.waiting == 0 and lane.running == 0
    # per address (IPv6 by /64): the third waiter of one network is refused
    lane = LoginLane(concurrent=1, queue=100, per_address=2, wait=10)
    calls = [("10.0.0.1", 0), ("2001:db8::1", 1), ("2001:db8::2", 2), ("2001:db8::3", 3),
             ("2001:db8:0:1::1", 4)]
    seen, *out = _lane_run(lane, calls, threading.Event())
    assert out[0:3] == [0, 1, 2] and out[4] == 4
    assert isinstance(out[3], LoginBusy) and out[3].status == 503


def test_login_lane_gives_up_waiting_after_its_deadline():
    lane = LoginLane(concurrent=1, queue=10, per_address=10, wait=0.3, retry_after=2)
    release = threading.Event()

    def work() -> str:
        release.wait(5)
        return "done"

    async def main() -> list[object]:
        first = asyncio.create_task(lane.run("10.0.0.1", work))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        with pytest.raises(LoginBusy) as err:
            await lane.run("10.0.0.2", work)
        waited = time.monotonic() - t0
        release.set()
        return [await first, waited, err.value.retry_after, lane.waiting]

    done, waited, retry, waiting = asyncio.run(main())
    assert done == "done" and 0.25 <= waited < 3 and retry == 2 and waiting == 0
