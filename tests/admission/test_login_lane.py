"""Logins have a lane of their own: under load a legitimate login waits its turn (on the
event loop, holding no thread) rather than failing, while a flood of wrong passwords
holds two argon2 checks at once, is refused past its queue with 503 + Retry-After, and
does not hold up the queries of users already logged in."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from admission_helpers import add_nums, client_from, wait_for

from accounts import PASSWORD

TOP1 = "SELECT TOP 1 id FROM t.nums"


def _login(address: str, url: str, user: str, password: str) -> httpx.Response:
    with client_from(address, url, timeout=180) as c:
        return c.post("/auth/token", data={"username": user, "password": password})


def test_logins_under_load_wait_their_turn_instead_of_failing(start_server):
    # login_wait is generous for a loaded test machine: what is tested is that a
    # login waits rather than fails (before: 2 checks + 8 waiting, the rest a 503).
    server = start_server(login_wait=150)
    users = [f"user{i:02d}" for i in range(24)]
    for name in users:
        server.platform.authenticator.accounts.add_user(name, PASSWORD)
    with ThreadPoolExecutor(len(users)) as pool:
        answers = list(pool.map(lambda i: _login(f"127.0.0.{20 + i}", server.url, users[i],
                                                 PASSWORD), range(len(users))))
    assert [r.status_code for r in answers] == [200] * len(users), \
        [r.text for r in answers if r.status_code != 200][:3]
    lane = server.platform.authenticator.login_lane
    assert lane.peak <= 2 and lane.waiting == 0 and lane.running == 0


def test_a_flood_of_wrong_passwords_does_not_hold_up_logged_in_users(start_server):
    server = start_server(sync_timeout=60)
    add_nums(server.platform)
    server.platform.authenticator.accounts.add_user("alice", PASSWORD)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        token = c.post("/auth/token", data={"username": "alice",
                                            "password": PASSWORD}).json()["access_token"]
    lane = server.platform.authenticator.login_lane
    done = threading.Event()
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def flood(k: int) -> None:
        # 12 addresses x 5 connections = 60 at once: more than the 40 threads of the
        # shared pool that bearer checks and /tables use, and one more per address
        # than may wait.
        with client_from(f"127.0.0.{60 + k % 12}", server.url, timeout=120) as c:
            n = 0
            while not done.is_set():
                r = c.post("/auth/token", data={"username": f"victim{k}-{n}",
                                                "password": "wrong password"})
                n += 1
                with lock:
                    answers.append(r)

    def top1(c: httpx.Client) -> float:
        t0 = time.monotonic()
        r = c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": TOP1, "RESPONSEFORMAT": "csv"})
        assert r.status_code == 200 and r.text.split() == ["id", "0"], r.text
        return time.monotonic() - t0

    with httpx.Client(base_url=server.url, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as alice:
        quiet = [top1(alice) for _ in range(3)]
        flooders = [threading.Thread(target=flood, args=(k,)) for k in range(60)]
        for th in flooders:
            th.start()
        times: list[float] = []
        try:
            deadline = time.monotonic() + 60
            while lane.waiting < 30 and time.monotonic() < deadline:  # the flood is on
                time.sleep(0.05)
            assert lane.waiting >= 30, "the flood did not get going"
            for _ in range(10):
                times.append(top1(alice))
                assert lane.running <= 2 and lane.waiting <= 4 * 12
                time.sleep(0.1)
        finally:
            done.set()
            for th in flooders:
                th.join()
    codes = {r.status_code for r in answers}
    assert codes <= {401, 429, 503}, codes
    refused = [r for r in answers if r.status_code in (429, 503)]
    assert refused and all(int(r.headers["retry-after"]) > 0 for r in refused)
    assert any(r.status_code == 503 and "waiting" in r.text for r in answers)
    # Bounds, generous for a loaded 2-core machine (the 60 flooding clients share this
    # process, and its interpreter lock, with the server): the flood's checks run two at
    # a time, so the queries wait for CPU, never behind the flood's waiting logins for
    # a thread (a login held a thread while it waited, up to login_wait: with 60 of them
    # waiting on the 40 threads of the shared pool, a bearer check queued behind them).
    print("TOP 1 before:", [round(t, 3) for t in quiet], "during the flood:",
          [round(t, 3) for t in times],
          {c: sum(r.status_code == c for r in answers) for c in codes})
    assert max(times) < 10 and statistics.median(times) < 4, times
    assert lane.peak <= 2


def _via_proxy(client: str) -> dict[str, str]:
    """Headers of a request relayed by a TLS-terminating proxy for ``client``."""
    return {"X-Forwarded-For": client, "X-Forwarded-Proto": "https"}


def test_a_flood_from_one_ipv6_56_leaves_logins_from_elsewhere_a_place_and_a_turn(
        start_server):
    # Before: the queue was keyed by /64 only (4 places each, 256 in all): 256 × /64
    # of one /56 filled it, and every other login got a 503 at once while it lasted.
    import asyncio

    server = start_server(trusted_proxies=("127.0.0.1",), login_wait=120)
    auth = server.platform.authenticator
    auth.accounts.add_user("alice", PASSWORD)
    lane = auth.login_lane
    hold = threading.Event()
    checked: list[str] = []
    verify = auth.hashing.verify

    def held_verify(stored_hash: str | None, password: str) -> bool:
        # checks take as long as the test wants (an attacker's slow argon2), so the
        # flood's waiters stay in the queue
        hold.wait(120)
        checked.append(password)
        return verify(stored_hash, password)

    auth.hashing.verify = held_verify  # type: ignore[method-assign]
    flood = [f"2001:db8:aa:ff{i:02x}::{k + 1}" for i in range(100) for k in range(3)]
    answers: list[int] = []

    async def flood_logins() -> None:
        limits = httpx.Limits(max_connections=len(flood), max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, timeout=180, limits=limits) as c:
            async def one(i: int, host: str) -> None:
                r = await c.post("/auth/token", headers=_via_proxy(host),
                                 data={"username": f"victim{i}", "password": "wrong one"})
                answers.append(r.status_code)
            await asyncio.gather(*(one(i, h) for i, h in enumerate(flood)))

    flooder = threading.Thread(target=asyncio.run, args=(flood_logins(),))
    flooder.start()
    legit: list[httpx.Response] = []
    try:
        # the flood is in place: every request either runs, waits or was refused
        wait_for(lambda: lane.running + lane.waiting + len(answers) >= len(flood), 120,
                 "the flood to be queued or refused")
        assert lane.running == 2 and lane.waiting <= 64 + 4, (lane.waiting, sorted(answers))
        assert set(answers) == {503}

        def login() -> None:
            with httpx.Client(base_url=server.url, timeout=180) as c:
                legit.append(c.post("/auth/token", headers=_via_proxy("2001:db8:bb::5"),
                                    data={"username": "alice", "password": PASSWORD}))

        alice = threading.Thread(target=login)
        alice.start()
        wait_for(lambda: bool(legit) or lane.waiting_from(("2001:db8::/32", "2001:db8:bb::/48")),
                 60, "alice's login to be queued or answered")
        assert not legit, legit[0].text  # not refused: it has a place
    finally:
        hold.set()
        flooder.join()
    alice.join()
    assert legit[0].status_code == 200, legit[0].text
    # her turn came after at most one waiting check of the flood's /48 (round-robin),
    # behind the two that were running
    assert checked.index(PASSWORD) <= 3, checked.index(PASSWORD)
    assert lane.waiting == 0 and lane.running == 0
