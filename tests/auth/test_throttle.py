import pytest

from taphouse.auth.errors import TooManyAttempts
from taphouse.auth.throttle import LoginThrottle


def test_account_is_throttled_after_failures_then_recovers(clock):
    t = LoginThrottle(per_account=3, per_address=100, window=60, clock=clock)
    for i in range(3):
        t.check("alice", f"10.0.0.{i}")
        t.failed("alice", f"10.0.0.{i}")
    with pytest.raises(TooManyAttempts) as err:
        t.check("ALICE", "10.0.0.9")
    assert err.value.status == 429 and 1 <= err.value.retry_after <= 60
    t.check("bob", "10.0.0.9")  # other accounts unaffected
    clock.advance(61)
    t.check("alice", "10.0.0.9")


def test_address_is_throttled_across_names(clock):
    t = LoginThrottle(per_account=100, per_address=4, window=60, clock=clock)
    for i in range(4):
        t.failed(f"user{i}", "10.1.1.1")
    with pytest.raises(TooManyAttempts):
        t.check("someone", "10.1.1.1")
    t.check("someone", "10.1.1.2")


def test_success_clears_account_but_not_address(clock):
    t = LoginThrottle(per_account=2, per_address=3, window=60, clock=clock)
    t.failed("alice", "a")
    t.failed("alice", "a")
    t.succeeded("alice")
    t.check("alice", "b")
    t.failed("alice", "a")
    with pytest.raises(TooManyAttempts):
        t.check("carol", "a")


def test_retry_after_counts_down(clock):
    t = LoginThrottle(per_account=1, per_address=100, window=100, clock=clock)
    t.failed("alice", "a")
    clock.advance(40)
    with pytest.raises(TooManyAttempts) as err:
        t.check("alice", "a")
    assert err.value.retry_after == 60
