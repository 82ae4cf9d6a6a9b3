"""Cross-site requests: a page on another site makes a browser send requests with the
Basic credentials it cached for this service. None of them may change anything."""

from __future__ import annotations

import re

import httpx
import pytest

from accounts import PASSWORD, new_user

EVIL = "https://evil.example"


@pytest.fixture
def site(demo_server):
    return demo_server, new_user(demo_server, "vic")


@pytest.fixture
def admin_site(start_server, tmp_path):
    from taphouse.catalogue.ingest import ingest_files

    server = start_server()
    src = tmp_path / "stars.csv"
    src.write_text("ra,dec\n10.0,20.0\n")
    ingest_files(server.platform.catalogue, [src], "hipparcos", "stars")
    server.platform.authenticator.accounts.add_user("root", PASSWORD, is_admin=True)
    return server


def browser(server, user: str, **headers: str) -> httpx.Client:
    """What a browser sends on its own: cached Basic credentials, no custom header."""
    return httpx.Client(base_url=server.url, auth=(user, PASSWORD), timeout=60,
                        headers=headers)


def test_admin_api_refuses_basic_and_forms(admin_site):
    server = admin_site
    acc = server.platform.authenticator.accounts
    with browser(server, "root", Origin=EVIL) as c:
        r = c.post("/api/admin/users", data={"username": "mallory", "password": "x" * 20,
                                              "is_admin": "true"})
        assert r.status_code in (401, 403)
        assert acc.user("mallory") is None
    with browser(server, "root") as c:  # no Origin: Basic is still not accepted there
        r = c.post("/api/admin/users", headers={"Content-Type": "text/plain"},
                   content=b'{"username": "mallory", "password": "xxxxxxxxxxxxxxxx",'
                           b' "is_admin": true}')
        assert r.status_code == 403
        r = c.post("/api/admin/users/root/password", headers={"X-Taphouse": "1"},
                   json={"password": "attacker-chosen-1"})
        assert r.status_code == 401 and "Basic" in r.json()["error"]
    assert acc.user("mallory") is None
    server.platform.authenticator.check_password("root", PASSWORD)


def test_api_and_auth_need_json_or_the_client_header(site):
    server, user = site
    with browser(server, user) as c:
        r = c.post("/api/workspaces", headers={"Content-Type": "text/plain"},
                   content=b'{"name": "planted", "databases": []}')
        assert r.status_code == 403 and "X-Taphouse" in r.json()["error"]
        r = c.post("/auth/password", data={"current_password": PASSWORD,
                                           "new_password": "attacker-chosen-1"})
        assert r.status_code == 403
        r = c.post("/auth/tokens", content=b"name=stolen",
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 403
        assert c.get("/api/workspaces").json() == []
        # the same requests from a program: JSON, or the taphouse client's header
        assert c.post("/api/workspaces", json={"name": "mine", "databases": []}
                      ).status_code == 201
        r = c.post("/auth/logout", headers={"X-Taphouse": "client"})
        assert r.status_code == 204
    # the password was not changed by the forged request
    server.platform.authenticator.check_password(user, PASSWORD)


def test_tap_refuses_credentials_from_another_origin(site):
    server, user = site
    q = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 ra FROM gaia.dr3_bright",
         "DEST": "mydb.planted", "DEST_MODE": "replace"}
    with browser(server, user, Origin=EVIL) as c:
        r = c.post("/tap/sync", data=q)
        assert r.status_code == 403 and b"QUERY_STATUS" in r.content
        assert c.post("/tap/async", data={**q, "PHASE": "RUN"}).status_code == 403
    with browser(server, user, **{"Sec-Fetch-Site": "cross-site"}) as c:
        assert c.post("/tap/sync", data=q).status_code == 403
        assert c.get("/tap/tables").status_code == 403
    with browser(server, user, **{"Sec-Fetch-Site": "same-site"}) as c:
        assert c.get("/tap/tables").status_code == 403
    assert server.platform.catalogue.table(f"user_{user}", "planted") is None
    # our own origin, a direct visit, and plain TAP clients (no such headers) are fine
    for headers in ({"Origin": server.url}, {"Sec-Fetch-Site": "same-origin"},
                    {"Sec-Fetch-Site": "none"}, {}):
        with browser(server, user, **headers) as c:
            assert c.get("/tap/tables").status_code == 200, headers
    # without credentials a cross-site request is just anonymous
    with httpx.Client(base_url=server.url, headers={"Origin": EVIL}) as c:
        assert c.get("/tap/tables").status_code == 200


def test_get_never_writes(site):
    server, user = site
    with browser(server, user) as c:
        r = c.get("/tap/sync", params={"LANG": "ADQL", "DEST": "mydb.viaget",
                                       "QUERY": "SELECT TOP 1 ra FROM gaia.dr3_bright"})
        assert r.status_code == 400 and b"POST" in r.content
    assert server.platform.catalogue.table(f"user_{user}", "viaget") is None


def test_security_headers_on_every_response(site):
    server, user = site
    with httpx.Client(base_url=server.url) as c:
        responses = [c.get("/"), c.get("/tap/capabilities"), c.get("/api/docs"),
                     c.get("/no/such/page"), c.get("/api/usertables"),
                     c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT"}),
                     c.get("/tap/tables", auth=(user, PASSWORD), headers={"Origin": EVIL})]
    for r in responses:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], r.url


def test_frame_ancestors_can_be_configured(start_server):
    server = start_server(frame_ancestors="'self' https://portal.example.org")
    r = httpx.get(server.url + "/tap/capabilities")
    assert r.headers["content-security-policy"] == (
        "frame-ancestors 'self' https://portal.example.org")
    assert "x-frame-options" not in r.headers


def test_api_docs_work_offline(site):
    server, _ = site
    r = httpx.get(server.url + "/api/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<script" not in r.text.lower()
    external = [u for u in re.findall(r'(?:src|href)="([^"]+)"', r.text)
                if u.startswith(("http:", "https:", "//")) and not u.startswith(server.url)]
    assert external == []
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "/api/usertables" in r.text and "/auth/token" in r.text
    assert httpx.get(server.url + "/api/openapi.json").status_code == 200


def test_admin_input_is_strict(admin_site):
    server = admin_site
    # (argon2 behind its concurrency cap takes seconds on a loaded machine)
    token = httpx.post(server.url + "/auth/token", timeout=60,
                       data={"username": "root", "password": PASSWORD}).json()["access_token"]
    acc = server.platform.authenticator.accounts
    cat = server.platform.catalogue
    from taphouse.auth.database_access import DatabaseAccess

    acc.add_group("team")
    DatabaseAccess(server.platform.meta, cat).restrict("hipparcos", ["team"])
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
        r = c.post("/api/admin/users", json={"username": "mallory", "password": "x1y" * 5,
                                             "is_admin": "false"})
        assert r.status_code == 400 and "is_admin" in r.json()["error"]
        assert acc.user("mallory") is None
        r = c.put("/api/admin/databases/hipparcos/access", json={"public": "false"})
        assert r.status_code == 400 and "public" in r.json()["error"]
        assert cat.database("hipparcos").public is False
        r = c.put("/api/admin/databases/hipparcos/access", json={"public": 0})
        assert r.status_code == 400 and cat.database("hipparcos").public is False
        for body, field in [({"is_admin": 1}, "is_admin"), ({"is_admin": "yes"}, "is_admin"),
                            ({"admin": True}, "admin")]:
            r = c.post("/api/admin/users/root/admin", json=body)
            assert r.status_code == 400 and field in r.json()["error"], body
        r = c.post("/api/admin/users", json={"username": "m2", "password": "x1y" * 5,
                                             "groups": "team"})
        assert r.status_code == 400 and "groups" in r.json()["error"]
        r = c.post("/api/admin/users", data={"username": "m3", "password": "x1y" * 5})
        assert r.status_code == 400 and "JSON" in r.json()["error"]
        r = c.post("/api/admin/users", json={"username": "carol", "password": "x1y" * 5,
                                             "is_admin": False, "groups": ["team"]})
        assert r.status_code == 201 and r.json()["is_admin"] is False
        r = c.put("/api/admin/databases/hipparcos/access", json={"public": True})
        assert r.status_code == 200 and cat.database("hipparcos").public is True


def test_bearer_requests_are_not_origin_checked(site):
    # A browser never sends a bearer token by itself: the web page, reached under
    # another name than base_url (localhost), keeps working.
    server, user = site
    token = httpx.post(server.url + "/auth/token",
                       data={"username": user, "password": PASSWORD}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Origin": "http://localhost:1",
               "Sec-Fetch-Site": "cross-site"}
    assert httpx.get(server.url + "/api/usertables", headers=headers).status_code == 200
    assert httpx.get(server.tap + "/tables", headers=headers).status_code == 200
