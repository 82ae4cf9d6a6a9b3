"""Sync admission: per-caller, anonymous and global caps answer 503 at once with
Retry-After and a DALI error; metadata, TAP_SCHEMA, login and refresh never wait behind
queries; addresses come from trusted proxies only."""

from __future__ import annotations

import httpx
from admission_helpers import SLOW, add_nums, client_from, wait_for
from lxml import etree

from accounts import PASSWORD
from taphouse.admission import address_key, caller_key

VOT = {"v": "http://www.ivoa.net/xml/VOTable/v1.3"}
TOP1 = "SELECT TOP 1 id FROM t.nums"


def _server(start_server, **settings):
    server = start_server(**settings)
    add_nums(server.platform)
    server.platform.authenticator.accounts.add_user("alice", PASSWORD)
    server.platform.authenticator.accounts.add_user("bob", PASSWORD)
    return server


def _sync(c: httpx.Client, query: str, **extra: str) -> httpx.Response:
    return c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query, **extra})


def _assert_503(r: httpx.Response, words: str) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0
    doc = etree.fromstring(r.content)
    status = doc.find(".//v:INFO[@name='QUERY_STATUS']", VOT)
    assert status.get("value") == "ERROR" and words in status.text


def _running(server, key: str, n: int) -> None:
    slots = server.platform.sync_slots
    wait_for(lambda: slots.running(key) >= n, what=f"{n} running queries of {key}")


def test_a_caller_over_its_cap_gets_503_while_others_and_metadata_go_on(start_server, held):
    server = _server(start_server, sync_max_per_caller=1, sync_timeout=60)
    held(server.url, SLOW)
    _running(server, "addr:127.0.0.1", 1)
    with httpx.Client(base_url=server.url, timeout=30) as anon, \
            httpx.Client(base_url=server.url, timeout=30, auth=("alice", PASSWORD)) as alice:
        _assert_503(_sync(anon, TOP1), "already have 1 synchronous queries running")
        # Metadata never waits behind queries: VOSI, TAP_SCHEMA queries, login, refresh.
        assert anon.get("/tap/tables").status_code == 200
        assert anon.get("/tap/capabilities").status_code == 200
        assert anon.get("/tap/availability").status_code == 200
        r = _sync(anon, "SELECT table_name FROM TAP_SCHEMA.tables", RESPONSEFORMAT="csv")
        assert r.status_code == 200 and "t.nums" in r.text
        r = anon.post("/auth/token", data={"username": "bob", "password": PASSWORD})
        assert r.status_code == 200
        token = r.json()["access_token"]
        r = anon.post("/auth/refresh", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        # Another caller is not held up by the first one's cap.
        r = _sync(alice, TOP1, RESPONSEFORMAT="csv")
        assert r.status_code == 200 and r.text.split() == ["id", "0"]


def test_forwarded_for_from_an_untrusted_client_does_not_change_its_key(start_server, held):
    server = _server(start_server, sync_max_per_caller=1, sync_timeout=60)
    held(server.url, SLOW)
    _running(server, "addr:127.0.0.1", 1)
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        r = _sync(anon, TOP1, RESPONSEFORMAT="csv")
        _assert_503(r, "already have 1")
        r = anon.post("/tap/sync", data={"LANG": "ADQL", "QUERY": TOP1},
                      headers={"X-Forwarded-For": "203.0.113.9"})
        _assert_503(r, "already have 1")
        # Credentials from loopback stay acceptable: the forged header did not move the
        # client off loopback (uvicorn's default would have believed it).
        r = anon.get("/tap/tables", auth=("alice", PASSWORD),
                     headers={"X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 200


def test_anonymous_callers_together_get_a_share_logged_in_users_the_rest(start_server, held):
    server = _server(start_server, sync_max_concurrent=8, anonymous_sync_share=0.25,
                     sync_timeout=60)
    for address in ("127.0.0.2", "127.0.0.3"):
        held(server.url, SLOW, address=address)
    wait_for(lambda: server.platform.sync_slots.running() >= 2, what="two anonymous queries")
    with client_from("127.0.0.4", server.url) as other_anon, \
            client_from("127.0.0.4", server.url, auth=("alice", PASSWORD)) as alice:
        _assert_503(_sync(other_anon, TOP1), "anonymous callers together")
        assert _sync(alice, TOP1).status_code == 200


def test_the_global_cap_refuses_everyone_at_once(start_server, held):
    server = _server(start_server, sync_max_concurrent=2, sync_timeout=60)
    basic = {"Authorization": "Basic " + __import__("base64").b64encode(
        f"alice:{PASSWORD}".encode()).decode()}
    held(server.url, SLOW, headers=basic)
    held(server.url, SLOW, address="127.0.0.2")
    wait_for(lambda: server.platform.sync_slots.running() >= 2, what="two queries")
    with client_from("127.0.0.5", server.url, auth=("bob", PASSWORD)) as bob:
        _assert_503(_sync(bob, TOP1), "as many synchronous queries as it can (2)")
        assert bob.get("/tap/tables").status_code == 200


def test_a_slot_is_free_again_when_the_query_ends_or_its_client_goes(start_server, held):
    server = _server(start_server, sync_max_per_caller=1, sync_timeout=60)
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        for _ in range(3):  # finished queries give their slot back
            assert _sync(anon, TOP1).status_code == 200
        # A streamed result (more than one piece) too.
        r = _sync(anon, "SELECT a.id FROM t.nums AS a, t.nums AS b WHERE b.id < 100",
                  MAXREC="200000", RESPONSEFORMAT="csv")
        assert r.status_code == 200 and len(r.text.split()) == 200_001
        q = held(server.url, SLOW)
        _running(server, "addr:127.0.0.1", 1)
        q.close()
        wait_for(lambda: server.platform.sync_slots.running() == 0, what="slot released")
        assert _sync(anon, TOP1).status_code == 200


def test_caller_keys():
    from taphouse.auth.identity import ANONYMOUS, Identity

    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:ffff::1") == address_key("2001:db8:1:2::9")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert caller_key(ANONYMOUS, "192.0.2.1") == "addr:192.0.2.1"
    assert caller_key(Identity(username="ada", user_id=3), "192.0.2.1") == "user:3"


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(start_server, held):
    server = _server(start_server, sync_max_per_caller=1, sync_timeout=60,
                     trusted_proxies=("127.0.0.1",))
    held(server.url, SLOW, headers={"X-Forwarded-For": "203.0.113.9"})
    _running(server, "addr:203.0.113.9", 1)
    with httpx.Client(base_url=server.url, timeout=30) as proxy, \
            client_from("127.0.0.2", server.url) as untrusted:
        fwd = {"X-Forwarded-For": "203.0.113.9"}
        r = proxy.post("/tap/sync", data={"LANG": "ADQL", "QUERY": TOP1}, headers=fwd)
        _assert_503(r, "already have 1")
        # The client wrote a left-most entry of its own: the proxy's view (right-most
        # untrusted entry) counts.
        r = proxy.post("/tap/sync", data={"LANG": "ADQL", "QUERY": TOP1},
                       headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
        _assert_503(r, "already have 1")
        r = proxy.post("/tap/sync", data={"LANG": "ADQL", "QUERY": TOP1},
                       headers={"X-Forwarded-For": "203.0.113.10"})
        assert r.status_code == 200
        # Forwarded headers from an address that is not a trusted proxy are ignored.
        r = untrusted.post("/tap/sync", data={"LANG": "ADQL", "QUERY": TOP1}, headers=fwd)
        assert r.status_code == 200
        # Plain HTTP from behind the proxy: credentials only with X-Forwarded-Proto: https.
        r = proxy.get("/tap/tables", auth=("alice", PASSWORD), headers=fwd)
        assert r.status_code == 403
        r = proxy.get("/tap/tables", auth=("alice", PASSWORD),
                      headers={**fwd, "X-Forwarded-Proto": "https"})
        assert r.status_code == 200


def test_trusted_proxies_parse_networks_and_walk_the_forwarded_list():
    import pytest

    from taphouse.admission import TrustedProxies

    trusted = TrustedProxies(["10.0.0.0/8", "::1"])
    assert "10.1.2.3" in trusted and "::1" in trusted and "11.0.0.1" not in trusted
    assert trusted.client_of("10.0.0.1", "1.2.3.4, 5.6.7.8, 10.0.0.2") == "5.6.7.8"
    assert trusted.client_of("10.0.0.1", "[2001:db8::1]:443") == "2001:db8::1"
    assert trusted.client_of("10.0.0.1", "5.6.7.8:1234") == "5.6.7.8"
    assert trusted.client_of("10.0.0.1", "not-an-address") == "10.0.0.1"
    assert not TrustedProxies(())
    with pytest.raises(ValueError, match="not an IP address"):
        TrustedProxies(["proxy.example.org"])


def test_the_retired_tls_proxy_setting_stops_start_up():
    import pytest

    from taphouse.settings import Settings

    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        Settings.from_env({"TAPHOUSE_BEHIND_TLS_PROXY": "1"})
    assert Settings.from_env({"TAPHOUSE_TRUSTED_PROXIES": "10.0.0.1, 10.2.0.0/16"}
                             ).trusted_proxies == ("10.0.0.1", "10.2.0.0/16")


def test_a_long_query_over_the_cap_is_refused_without_reading_its_body(start_server, held):
    import socket
    from urllib.parse import urlsplit

    server = _server(start_server, sync_max_per_caller=1, sync_timeout=60)
    held(server.url, SLOW)
    _running(server, "addr:127.0.0.1", 1)
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.settimeout(10)
    try:
        # Headers only: a 200 kB body is announced but never sent; the 503 comes anyway.
        sock.sendall(b"POST /tap/sync HTTP/1.1\r\nHost: x\r\nContent-Type:"
                     b" application/x-www-form-urlencoded\r\nContent-Length: 200000\r\n\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    finally:
        sock.close()


def test_a_heavy_tap_schema_query_cannot_hold_a_metadata_slot_for_long(start_server,
                                                                      monkeypatch):
    import time

    import taphouse.tap.routes as routes

    monkeypatch.setattr(routes, "METADATA_TIMEOUT", 1.0)
    server = _server(start_server, sync_timeout=600)
    joins = " ".join(f"JOIN tap_schema.columns AS c{i} ON 1=1" for i in range(6))
    query = f"SELECT COUNT(*) AS n FROM tap_schema.columns AS c {joins}"
    t0 = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=120) as anon:
        r = _sync(anon, query)
    assert r.status_code == 400 and b"time limit of 1 s" in r.content, r.content[:300]
    assert time.monotonic() - t0 < 60
    assert server.platform.metadata_slots.running() == 0


def test_every_503_carries_retry_after():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from taphouse.admission.limits import RetryAfter

    def answer(status: int, headers: dict[str, str] | None = None):
        return lambda request: PlainTextResponse("x", status_code=status, headers=headers)

    app = Starlette(routes=[Route("/bare", answer(503)),
                            Route("/own", answer(503, {"Retry-After": "30"})),
                            Route("/ok", answer(200)), Route("/bad", answer(500))])
    with TestClient(RetryAfter(app, seconds=7)) as c:
        assert c.get("/bare").headers["retry-after"] == "7"
        r = c.get("/own")
        assert r.headers.get_list("retry-after") == ["30"]
        assert "retry-after" not in c.get("/ok").headers
        assert "retry-after" not in c.get("/bad").headers
