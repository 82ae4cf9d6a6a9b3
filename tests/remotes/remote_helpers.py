"""Constants and helpers shared by the remotes tests (a module with a unique name:
several test folders have helpers)."""

from __future__ import annotations

from typing import Any

import httpx

from accounts import PASSWORD  # the password of the platform accounts the tests make

#: The remote's limits (its capabilities advertise them).
REMOTE_MAXREC_DEFAULT = 50
REMOTE_MAXREC_HARD = 200
#: The outbound allow-list that lets the platform reach servers on this machine.
LOOPBACK = ("127.0.0.0/8", "::1")


def token(server: Any, user: str) -> str:
    """A bearer token of ``user`` on ``server`` (logged in with :data:`PASSWORD`)."""
    r = httpx.post(server.url + "/auth/token", timeout=60,
                   data={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def api(server: Any, user: str) -> httpx.Client:
    """An HTTP client of ``server`` logged in as ``user``."""
    return httpx.Client(base_url=server.url, timeout=120, headers={
        "Authorization": f"Bearer {token(server, user)}", "X-Taphouse": "tests"})


def registering_platform(start_server: Any) -> Any:
    """A platform (the ``start_server`` fixture's) that reaches servers on this machine
    and lets users register remotes, with the accounts ``root`` (administrator),
    ``alice`` and ``bob``."""
    server = start_server(outbound_allow=LOOPBACK, remote_user_registration=True)
    accounts = server.platform.authenticator.accounts
    accounts.add_user("root", PASSWORD, is_admin=True)
    for user in ("alice", "bob"):
        accounts.add_user(user, PASSWORD)
    return server
