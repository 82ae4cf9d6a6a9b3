"""Token families: one successor per refreshed token, and logout ends the login."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from accounts import PASSWORD, new_user


def _token(server, user: str) -> str:
    r = httpx.post(server.url + "/auth/token", data={"username": user, "password": PASSWORD})
    return r.json()["access_token"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_concurrent_refreshes_give_one_successor(demo_server):
    # Before: several refreshes within the grace period gave several live tokens.
    user = new_user(demo_server, "ref")
    token = _token(demo_server, user)

    def refresh(_: int) -> httpx.Response:
        return httpx.post(demo_server.url + "/auth/refresh", headers=_bearer(token))

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(refresh, range(12)))
    ok = [r for r in answers if r.status_code == 200]
    assert len(ok) == 1, [r.status_code for r in answers]
    assert {r.status_code for r in answers} == {200, 401}
    assert "already refreshed" in next(r for r in answers if r.status_code == 401).json()["error"]
    live = httpx.get(demo_server.url + "/auth/tokens", headers=_bearer(ok[0].json()["access_token"]))
    sessions = [t for t in live.json()["tokens"] if t["kind"] == "session"]
    assert len(sessions) == 2  # the successor, and the old one within its grace period


def test_logout_ends_the_whole_login(demo_server):
    user = new_user(demo_server, "out")
    first = _token(demo_server, user)
    second = httpx.post(demo_server.url + "/auth/refresh", headers=_bearer(first)
                        ).json()["access_token"]
    third = httpx.post(demo_server.url + "/auth/refresh", headers=_bearer(second)
                       ).json()["access_token"]
    other_login = _token(demo_server, user)
    # logging out with a token still in its grace period ends its successors too
    assert httpx.post(demo_server.url + "/auth/logout", headers=_bearer(second)
                      ).status_code == 204
    for token in (first, second, third):
        assert httpx.get(demo_server.url + "/auth/whoami", headers=_bearer(token)
                         ).status_code == 401
    # another login of the same user goes on
    assert httpx.get(demo_server.url + "/auth/whoami", headers=_bearer(other_login)
                     ).json()["username"] == user
