"""The login queue's fair shares between client networks (IPv6 /32 → /48 → /64, IPv4
/16 → /24 → address): caps per network, push-out of the heaviest network's newest
waiter when full, round-robin turns."""

from __future__ import annotations

import pytest

from taphouse.admission.addresses import address_path
from taphouse.admission.fair_queue import FairQueue, QueueFull


def test_address_paths_go_from_the_operator_to_the_host():
    assert address_path("2001:db8:aa:ff01::7") == (
        "2001:db8::/32", "2001:db8:aa::/48", "2001:db8:aa:ff01::/64")
    assert address_path("::ffff:192.0.2.9") == ("192.0.0.0/16", "192.0.2.0/24", "192.0.2.9")
    assert address_path("testclient") == ("testclient",) * 3


def _fill(q: FairQueue[str], hosts: list[str]) -> list[str | None]:
    return [q.push(address_path(h), h) for h in hosts]


def test_a_56_gets_the_share_of_one_48_and_pushes_nobody_out():
    q: FairQueue[str] = FairQueue(256, (64, 16, 4))
    assert q.push(address_path("2001:db8:bb::1"), "neighbour") is None  # another /48
    flood = [f"2001:db8:aa:ff{i:02x}::{k + 1}" for i in range(256) for k in range(4)]
    for host in flood:
        try:
            pushed = q.push(address_path(host), host)
        except QueueFull as full:
            assert full.level == 1  # the /48's cap, no lighter /64 in it
        else:  # a /64 of the flood holding none pushes out one of its own /48
            assert pushed is None or pushed.startswith("2001:db8:aa:ff")
    assert q.count(address_path(flood[0])[:2]) == 16 and len(q) == 17
    assert q.push(address_path("192.0.2.1"), "v4") is None


def test_a_full_queue_pushes_out_the_newest_waiter_of_the_heaviest_network():
    q: FairQueue[str] = FairQueue(6, (0, 0, 0))  # no caps: only the total
    _fill(q, ["2001:db8:1::1", "2001:db8:1::2", "2001:db8:1:2::1", "2001:db8:1:2::2",
              "10.0.0.1", "10.1.0.1"])
    # the IPv6 /32 holds 4 of 6: its heaviest /64's newest waiter makes room
    assert q.push(address_path("192.168.0.1"), "newcomer") == "2001:db8:1::2"
    assert len(q) == 6
    # now 3 from the /32, 1 from each IPv4 /16: newcomers from two more /16s push out
    # of the /32 again, a third cannot (all networks hold one: no swap of places)
    assert q.push(address_path("172.16.0.1"), "second").startswith("2001:db8:1:")
    assert q.push(address_path("172.17.0.1"), "third").startswith("2001:db8:1:")
    with pytest.raises(QueueFull) as err:
        q.push(address_path("172.18.0.1"), "fourth")
    assert err.value.level == -1 and len(q) == 6
    # a network never pushes out its own waiters
    with pytest.raises(QueueFull):
        q.push(address_path("10.0.0.1"), "same address")


def test_a_network_at_its_cap_makes_room_for_a_lighter_subnetwork():
    q: FairQueue[str] = FairQueue(100, (0, 4, 0))
    _fill(q, ["2001:db8:aa:1::1", "2001:db8:aa:1::2", "2001:db8:aa:1::3", "2001:db8:aa:2::1"])
    # the /48 is full; a waiter from a /64 of it that holds none pushes out the newest
    # of the /64 that holds three
    assert q.push(address_path("2001:db8:aa:3::1"), "x") == "2001:db8:aa:1::3"
    assert q.push(address_path("2001:db8:aa:4::1"), "y") == "2001:db8:aa:1::2"
    with pytest.raises(QueueFull) as err:  # every /64 holds one: nothing to push out
        q.push(address_path("2001:db8:aa:5::1"), "z")
    assert err.value.level == 1


def test_turns_go_round_robin_between_networks():
    q: FairQueue[str] = FairQueue(100, (0, 0, 0))
    _fill(q, [f"2001:db8:aa:{i}::1" for i in range(10)])  # ten /64s of one /48
    _fill(q, ["2001:db8:bb::1", "2001:db8:bb::2", "2001:db9::1", "10.0.0.1"])
    order = [q.pop() for _ in range(len(q))]
    assert q.pop() is None and len(q) == 0
    # one turn per /32 (and IPv4 /16) in turn; within 2001:db8::/32 one per /48
    assert order[:3] == ["2001:db8:aa:0::1", "2001:db9::1", "10.0.0.1"]
    assert order[3] == "2001:db8:bb::1"
    assert order.index("2001:db8:bb::2") == 5
    assert sorted(order) == sorted(set(order)) and len(order) == 14
