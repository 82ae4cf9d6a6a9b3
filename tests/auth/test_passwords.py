import statistics
import time

import pytest

from taphouse.auth.errors import AccountError
from taphouse.auth.passwords import PasswordHashing, check_password_rules


def test_hash_is_argon2id_salted_and_verifies(cheap_hashing):
    h1 = cheap_hashing.hash("a fine password")
    h2 = cheap_hashing.hash("a fine password")
    assert h1.startswith("$argon2id$")
    assert h1 != h2  # salted
    assert cheap_hashing.verify(h1, "a fine password")
    assert not cheap_hashing.verify(h1, "a fine passworD")
    assert not cheap_hashing.verify("not-a-hash", "a fine password")


def test_unknown_user_check_returns_false_and_costs_a_real_check(cheap_hashing):
    assert cheap_hashing.verify(None, "anything at all") is False


def test_default_parameters_are_argon2id_rfc9106_low_memory():
    h = PasswordHashing().hash("x" * 12)
    assert "$argon2id$" in h and "m=65536,t=3,p=4" in h


def test_unknown_user_and_wrong_password_take_similar_time():
    hashing = PasswordHashing(time_cost=2, memory_cost=8192, parallelism=1)
    stored = hashing.hash("the right password")
    hashing.verify(None, "warm-up")

    # The CPU time of this thread, not wall time: with parallelism 1 argon2 works in the
    # calling thread, and CPU time is not stretched by other work on a loaded machine
    # (at load 10 the wall times of one check spread over 11-38 ms, its CPU times 7-10).
    def cpu(stored_hash):
        t = time.thread_time()
        hashing.verify(stored_hash, "a wrong password")
        return time.thread_time() - t

    wrong, unknown = [], []
    for _ in range(15):  # interleaved: whatever slows one kind slows the other alike
        wrong.append(cpu(stored))
        unknown.append(cpu(None))
    # The check's work is counted by this clock (a check done in another thread would
    # leave both kinds near 0 and their ratio meaningless).
    assert statistics.median(wrong) > 0.001
    assert 0.5 < statistics.median(unknown) / statistics.median(wrong) < 2.0


@pytest.mark.parametrize("password,message", [
    ("short", "too short"),
    ("alicealice", "user name"),
    ("Alice", "too short"),
    ("aaaaaaaaaaaa", "too simple"),
    ("x" * 2000, "too long"),
])
def test_password_rules(password, message):
    name = "alicealice" if message == "user name" else "alice"
    with pytest.raises(AccountError, match=message):
        check_password_rules(name, password, 10)


def test_password_rules_accept_a_good_password():
    check_password_rules("alice", "correct horse battery", 10)
