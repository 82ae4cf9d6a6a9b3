"""Credentials: scopes hold for every write, throttling cannot be sidestepped by
spelling a name differently, malformed credentials are 401 (never 500)."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from sec_helpers import client_for, error_of, sync

from accounts import PASSWORD, new_user

T = "gaia.dr3_bright"


def _bearer(server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60,
                        headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def tokens(demo_server):
    """A user with a read-only session token, a read-only personal token and a full one."""
    user = new_user(demo_server, "tok")
    with httpx.Client(base_url=demo_server.url, timeout=60) as c:
        full = c.post("/auth/token", data={"username": user, "password": PASSWORD}).json()
        read = c.post("/auth/token", data={"username": user, "password": PASSWORD,
                                           "scope": "read"}).json()
        assert read["scope"] == "read"
        personal = c.post("/auth/tokens", json={"name": "ro", "scopes": ["read"]},
                          headers={"Authorization": f"Bearer {full['access_token']}"}).json()
    return user, full["access_token"], read["access_token"], personal["access_token"]


def test_read_only_tokens_cannot_write_with_dest(demo_server, tokens):
    # DEST wrote (and with DEST_MODE=replace overwrote) tables with a read-only token.
    user, full, read, personal = tokens
    for token in (read, personal):
        with _bearer(demo_server, token) as c:
            for mode in ("create", "replace", "append"):
                resp = sync(c, f"SELECT TOP 1 ra FROM {T}", DEST="mydb.ro", DEST_MODE=mode)
                assert resp.status_code == 403, resp.text[-300:]
                assert "write" in error_of(resp)
            resp = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": f"SELECT TOP 1 ra FROM {T}",
                                              "DEST": "mydb.ro", "PHASE": "RUN"})
            assert resp.status_code == 403
            # a pending job of the user cannot be given a DEST either
            resp = c.post("/tap/async", data={"LANG": "ADQL",
                                              "QUERY": f"SELECT TOP 1 ra FROM {T}"},
                          follow_redirects=False)
            assert resp.status_code == 303
            job = resp.headers["location"].rstrip("/").split("/")[-1]
            assert c.post(f"/tap/async/{job}/parameters",
                          data={"DEST": "mydb.ro"}).status_code == 403
            assert c.post(f"/tap/async/{job}", data={"DEST": "mydb.ro"}).status_code == 403
            # reading stays allowed
            assert sync(c, f"SELECT TOP 1 ra FROM {T}").status_code == 200
    with client_for(demo_server, user) as c:
        assert all(t["name"] != "ro" for t in c.get("/api/usertables").json())
    with _bearer(demo_server, full) as c:
        assert sync(c, f"SELECT TOP 1 ra FROM {T}", DEST="mydb.rw").status_code == 200


def test_token_rules(demo_server, tokens):
    user, full, read, personal = tokens
    with _bearer(demo_server, personal) as c:
        assert c.post("/auth/tokens", json={"name": "x"}).status_code == 403
        assert c.post("/auth/refresh").status_code == 400
        assert c.get("/api/admin/users").status_code in (401, 403)
    with _bearer(demo_server, read) as c:
        assert c.post("/auth/tokens", json={"name": "x"}).status_code == 403
        assert c.put("/api/usertables/x", content=b"a\n1\n").status_code == 403
        assert c.post("/api/workspaces", json={"name": "w", "databases": []}).status_code == 403
    with client_for(demo_server, user) as c:  # Basic: never accepted on /api/admin
        assert c.get("/api/admin/users").status_code == 401
        assert c.post("/api/admin/users", json={"name": "evil", "password": "x" * 20}
                      ).status_code == 401
        assert c.get("/api/admin/audit").status_code == 401
    with _bearer(demo_server, full) as c:
        assert c.get("/api/admin/users").status_code == 403
        assert c.get("/api/admin/audit").status_code == 403
    # token in a query string is not a credential
    with httpx.Client(base_url=demo_server.url) as c:
        body = c.get("/auth/whoami", params={"access_token": full}).json()
        assert body["anonymous"] is True


def test_refresh_and_use_after_logout_fail(demo_server):
    user = new_user(demo_server, "lo")
    with httpx.Client(base_url=demo_server.url, timeout=60) as c:
        token = c.post("/auth/token", data={"username": user, "password": PASSWORD}
                       ).json()["access_token"]
    with _bearer(demo_server, token) as c:
        assert c.post("/auth/logout").status_code == 204
        assert c.post("/auth/refresh").status_code == 401
        assert c.get("/auth/whoami").status_code == 401
        assert sync(c, f"SELECT TOP 1 ra FROM {T}").status_code == 401


MALFORMED = {
    "bad_base64": "Basic !!!!",
    "no_colon": "Basic " + base64.b64encode(b"alice").decode(),
    "latin1": "Basic " + base64.b64encode("alicé:x".encode("latin-1")).decode(),
    "nul": "Basic " + base64.b64encode(b"ali\x00ce:x").decode(),
    "only_scheme": "Basic",
    "huge_basic": "Basic " + base64.b64encode(b"alice:" + b"x" * 30000).decode(),
    "huge_bearer": "Bearer " + "a" * 30000,
    "junk_bearer": "Bearer abc",
    "digest": "Digest username=x",
}


@pytest.mark.parametrize("header", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_credentials_are_401(demo_server, header):
    with httpx.Client(base_url=demo_server.url, timeout=60) as c:
        for path in ("/auth/whoami", "/tap/tables", "/api/usertables"):
            resp = c.get(path, headers={"Authorization": header})
            assert resp.status_code == 401, (path, resp.text[:200])
            assert "Basic" in resp.headers["www-authenticate"]


def test_raw_non_ascii_authorization_bytes_are_401(demo_server):
    for value in (b"Basic \xff\xfe", b"Bearer \xff\xfe"):
        resp = httpx.get(demo_server.url + "/tap/tables", headers=[(b"Authorization", value)])
        assert resp.status_code == 401


def test_throttle_counts_every_spelling_of_a_name_as_one_account(start_server):
    # " alice", "ALICE " and "alice" are one account for the password check, but had a
    # failure count each: 5 tries per spelling instead of 5 per account.
    server = start_server()
    server.platform.authenticator.accounts.add_user("victim", PASSWORD)
    spellings = ["victim", " victim", "VICTIM", "victim ", "\tVictim", "Victim"]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        statuses = []
        for name in spellings:
            resp = c.post("/auth/token", data={"username": name, "password": "wrong-password-1"})
            statuses.append(resp.status_code)
        assert statuses[:5] == [401] * 5
        assert statuses[5] == 429, statuses
        # the right password is throttled too, whatever the spelling
        resp = c.post("/auth/token", data={"username": " VICTIM", "password": PASSWORD})
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) > 0


def test_unknown_and_known_names_get_the_same_answer(start_server):
    server = start_server()
    server.platform.authenticator.accounts.add_user("known", PASSWORD)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        a = c.post("/auth/token", data={"username": "known", "password": "wrong-password-1"})
        b = c.post("/auth/token", data={"username": "unknownx", "password": "wrong-password-1"})
        assert a.status_code == b.status_code == 401
        assert a.json() == b.json()
        started = time.monotonic()
        c.get("/tap/tables", auth=("unknowny", "wrong-password-1"))
        unknown = time.monotonic() - started
        assert unknown > 0.01  # an unknown name costs a password check too
