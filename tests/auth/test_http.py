"""End to end over real HTTP: the real server (uvicorn, real argon2id parameters) on a
free 127.0.0.1 port with a temporary data directory."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import httpx
import pytest

from servers import ServerProcess
from taphouse.auth.database_access import DatabaseAccess
from taphouse.auth.passwords import PasswordHashing
from taphouse.catalogue.ingest import ingest_files

ALICE = ("alice", "alice-secret-pw-1")  # member of "team"
BOB = ("bob", "bob-secret-pw-22")  # no group
ROOT = ("root", "root-secret-pw-333")  # administrator


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make_site(server, tmp_path: Path, *, real_hashing: bool = False):
    """Two catalogue databases (one restricted to group ``team``) and three users.

    Cheaper argon2id parameters unless ``real_hashing``: the machine running the tests
    is small and shared, and the real ones cost ~0.2 s and 64 MiB per check.
    """
    src = tmp_path / "stars.csv"
    src.write_text("ra,dec,mag\n10.0,20.0,5.5\n11.0,-5.0,6.1\n200.0,45.0,9.9\n")
    p = server.platform
    if not real_hashing:
        p.authenticator.hashing = PasswordHashing(time_cost=1, memory_cost=4096, parallelism=1)
    ingest_files(p.catalogue, [src], "pubcat", "stars")
    ingest_files(p.catalogue, [src], "secret_cat", "hidden_stars")
    acc = p.authenticator.accounts
    acc.add_group("team")
    acc.add_user(*ALICE, groups=["team"])
    acc.add_user(*BOB)
    acc.add_user(*ROOT, is_admin=True)
    DatabaseAccess(p.meta, p.catalogue).restrict("secret_cat", ["team"])
    return server


@pytest.fixture
def site(start_server, tmp_path):
    return make_site(start_server(), tmp_path)


#: For requests that run argon2 (login, password change): httpx's default 5 s is not
#: enough on a loaded 2-core machine (a landing failed at load 13).
ARGON2_TIMEOUT = 60


def login(url: str, user: tuple[str, str], **extra) -> dict:
    r = httpx.post(url + "/auth/token", data={"username": user[0], "password": user[1],
                                              "grant_type": "password", **extra},
                   timeout=ARGON2_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sync(url: str, query: str, **kw) -> httpx.Response:
    return httpx.post(url + "/tap/sync", data={"LANG": "ADQL", "QUERY": query,
                                               "RESPONSEFORMAT": "csv"}, **kw)


def rows(r: httpx.Response) -> list[dict]:
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text)))


# --- login, tokens ------------------------------------------------------------------
def test_login_returns_token_and_whoami(site):
    body = login(site.url, ALICE)
    assert body["token_type"] == "bearer" and body["username"] == "alice"
    assert body["expires_in"] == 24 * 3600 and body["kind"] == "session"
    assert body["expires_at"] > body["refresh_before"] > body["issued_at"]
    assert len(body["access_token"]) >= 40

    r = httpx.post(site.url + "/auth/token", json={"username": "alice", "password": ALICE[1]})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"

    me = httpx.get(site.url + "/auth/whoami", headers=bearer(body["access_token"])).json()
    assert me["username"] == "alice" and me["groups"] == ["team"] and me["method"] == "bearer"
    assert me["token"]["kind"] == "session" and "access_token" not in me["token"]
    anon = httpx.get(site.url + "/auth/whoami").json()
    assert anon["anonymous"] is True and anon["username"] is None


def test_bad_login_is_401_with_both_challenges_and_same_message(site):
    wrong = httpx.post(site.url + "/auth/token", data={"username": "alice", "password": "nope"})
    unknown = httpx.post(site.url + "/auth/token",
                         data={"username": "zed", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": "invalid user name or password"}
    challenge = wrong.headers["www-authenticate"]
    assert 'Basic realm="taphouse"' in challenge and 'Bearer realm="taphouse"' in challenge


def test_expiry_with_moved_clock_says_expired(site):
    clock = FakeClock()
    site.platform.authenticator.clock = clock
    token = login(site.url, ALICE)["access_token"]
    assert httpx.get(site.tap + "/tables", headers=bearer(token)).status_code == 200
    clock.now += 24 * 3600 + 1
    r = httpx.get(site.tap + "/tables", headers=bearer(token))
    assert r.status_code == 401
    assert "token expired" in r.text
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert "Basic" in r.headers["www-authenticate"]
    r = httpx.get(site.tap + "/tables", headers=bearer("th_made-up-token"))
    assert r.status_code == 401 and "invalid token" in r.text and "expired" not in r.text
    r = httpx.get(site.url + "/auth/whoami", headers=bearer(token))
    assert r.status_code == 401 and "token expired" in r.json()["error"]


def test_refresh_keeps_a_long_session_alive(site):
    clock = FakeClock()
    site.platform.authenticator.clock = clock
    old = login(site.url, ALICE)["access_token"]
    clock.now += 23 * 3600
    r = httpx.post(site.url + "/auth/refresh", headers=bearer(old))
    assert r.status_code == 200, r.text
    new = r.json()["access_token"]
    assert new != old
    clock.now += 3 * 3600  # past the first token's expiry, within the second's
    assert httpx.get(site.tap + "/tables", headers=bearer(new)).status_code == 200
    r = httpx.get(site.tap + "/tables", headers=bearer(old))
    assert r.status_code == 401
    # Basic and personal tokens have nothing to refresh.
    r = httpx.post(site.url + "/auth/refresh", auth=ALICE, headers={"X-Taphouse": "1"})
    assert r.status_code == 400 and "session token" in r.json()["error"]


def test_logout_revokes_the_presented_token_only(site):
    a = login(site.url, ALICE)["access_token"]
    b = login(site.url, ALICE)["access_token"]
    r = httpx.post(site.url + "/auth/logout", headers=bearer(a))
    assert r.status_code == 204
    r = httpx.get(site.tap + "/tables", headers=bearer(a))
    assert r.status_code == 401 and "revoked" in r.text
    assert httpx.get(site.tap + "/tables", headers=bearer(b)).status_code == 200


def test_password_change_revokes_every_token_and_basic(site):
    a = login(site.url, ALICE)["access_token"]
    b = login(site.url, ALICE)["access_token"]
    assert httpx.get(site.tap + "/tables", auth=ALICE).status_code == 200  # now cached
    new_pw = "alice-new-secret-2"
    r = httpx.post(site.url + "/auth/password", headers=bearer(a),
                   json={"current_password": ALICE[1], "new_password": new_pw})
    assert r.status_code == 200, r.text
    fresh = r.json()["access_token"]
    for tok in (a, b):
        assert httpx.get(site.tap + "/tables", headers=bearer(tok)).status_code == 401
    assert httpx.get(site.tap + "/tables", auth=ALICE).status_code == 401
    assert httpx.get(site.tap + "/tables", auth=("alice", new_pw)).status_code == 200
    assert httpx.get(site.url + "/auth/whoami", headers=bearer(fresh)).json()["username"] == "alice"
    r = httpx.post(site.url + "/auth/password", headers=bearer(fresh),
                   json={"current_password": "wrong-one-xx", "new_password": "whatever-123"})
    assert r.status_code == 401
    r = httpx.post(site.url + "/auth/password", headers=bearer(fresh),
                   json={"current_password": new_pw, "new_password": "short"})
    assert r.status_code == 400 and "too short" in r.json()["error"]


def test_personal_tokens_create_list_use_revoke(site):
    session = login(site.url, BOB)["access_token"]
    r = httpx.post(site.url + "/auth/tokens", headers=bearer(session),
                   json={"name": "nightly", "scopes": ["read"], "expires_in_days": 30})
    assert r.status_code == 200, r.text
    body = r.json()
    personal, pid = body["access_token"], body["token_id"]
    assert body["kind"] == "personal" and body["name"] == "nightly"
    assert body["expires_in"] == 30 * 86400 and "refresh_before" not in body

    listed = httpx.get(site.url + "/auth/tokens", headers=bearer(session)).json()["tokens"]
    assert {t["name"] for t in listed if t["kind"] == "personal"} == {"nightly"}
    assert personal not in str(listed)

    me = httpx.get(site.url + "/auth/whoami", headers=bearer(personal)).json()
    assert me["username"] == "bob" and me["scopes"] == ["read"]
    r = httpx.post(site.url + "/auth/tokens", headers=bearer(personal), json={"name": "x"})
    assert r.status_code == 403  # a leaked script token cannot mint more tokens

    r = httpx.delete(f"{site.url}/auth/tokens/{pid}", headers=bearer(session))
    assert r.status_code == 204
    r = httpx.get(site.tap + "/tables", headers=bearer(personal))
    assert r.status_code == 401 and "revoked" in r.text
    alice = login(site.url, ALICE)["access_token"]
    r = httpx.delete(f"{site.url}/auth/tokens/{pid}", headers=bearer(alice))
    assert r.status_code == 404  # somebody else's token: as if it did not exist


# --- Basic, anonymous, throttling ---------------------------------------------------
def test_basic_fallback_is_cached(start_server, tmp_path):
    site = make_site(start_server(), tmp_path, real_hashing=True)
    stored = site.platform.meta.query_one("SELECT password_hash FROM users WHERE name='bob'")[0]
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    times = []
    for _ in range(4):
        t = time.perf_counter()
        r = httpx.get(site.tap + "/tables", auth=BOB)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200
    assert "secret_cat" not in r.text
    # The first request pays the argon2id check (~0.2 s); cached ones do not.
    assert min(times[1:]) < times[0] / 2
    r = httpx.get(site.tap + "/tables", auth=("bob", "wrong-password-x"))
    assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"]
    assert httpx.get(site.url + "/auth/whoami", auth=BOB).json()["method"] == "basic"


def test_anonymous_read_can_be_turned_off(start_server, tmp_path):
    server = make_site(start_server(anonymous_read=False), tmp_path)
    r = httpx.get(server.tap + "/tables")
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Basic realm="taphouse"') and "Bearer" in challenge
    assert "invalid_token" not in challenge  # nothing was presented
    assert httpx.get(server.tap + "/capabilities").status_code == 200
    assert httpx.get(server.tap + "/tables", auth=BOB).status_code == 200


def test_failed_logins_are_throttled(site):
    codes = [httpx.post(site.url + "/auth/token",
                        data={"username": "bob", "password": f"guess-{i}-xxxx"}).status_code
             for i in range(6)]
    assert codes == [401] * 5 + [429]
    r = httpx.post(site.url + "/auth/token", data={"username": "bob", "password": BOB[1]})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "too many failed logins" in r.json()["error"]
    r = httpx.get(site.tap + "/tables", auth=BOB)  # Basic is throttled too
    assert r.status_code == 429 and "retry-after" in r.headers
    assert httpx.post(site.url + "/auth/token",
                      data={"username": "alice", "password": ALICE[1]}).status_code == 200


# --- what a caller may see ------------------------------------------------------------
def test_restricted_database_hidden_from_outsiders_in_tables(site):
    alice = bearer(login(site.url, ALICE)["access_token"])
    bob = bearer(login(site.url, BOB)["access_token"])
    anon = httpx.get(site.tap + "/tables").text
    outsider = httpx.get(site.tap + "/tables", headers=bob).text
    member = httpx.get(site.tap + "/tables", headers=alice).text
    admin = httpx.get(site.tap + "/tables", auth=ROOT).text
    assert "pubcat.stars" in anon and "pubcat.stars" in outsider
    assert "secret_cat" not in anon and "secret_cat" not in outsider
    assert "secret_cat.hidden_stars" in member and "secret_cat.hidden_stars" in admin

    one = site.tap + "/tables/secret_cat.hidden_stars"
    hidden = httpx.get(one, headers=bob)
    missing = httpx.get(site.tap + "/tables/secret_cat.no_such_table", headers=bob)
    assert hidden.status_code == missing.status_code == 404
    assert httpx.get(one, headers=alice).status_code == 200


def test_restricted_database_hidden_in_tap_schema_and_adql(site):
    alice = bearer(login(site.url, ALICE)["access_token"])
    bob = bearer(login(site.url, BOB)["access_token"])
    q = "SELECT table_name FROM TAP_SCHEMA.tables"
    outsider = {r["table_name"] for r in rows(sync(site.url, q, headers=bob))}
    member = {r["table_name"] for r in rows(sync(site.url, q, headers=alice))}
    assert "pubcat.stars" in outsider and "secret_cat.hidden_stars" not in outsider
    assert "secret_cat.hidden_stars" in member
    schemas = {r["schema_name"] for r in rows(sync(
        site.url, "SELECT schema_name FROM TAP_SCHEMA.schemas", headers=bob))}
    assert "secret_cat" not in schemas and "pubcat" in schemas

    assert len(rows(sync(site.url, "SELECT * FROM secret_cat.hidden_stars", headers=alice))) == 3
    hidden = sync(site.url, "SELECT * FROM secret_cat.hidden_stars", headers=bob)
    missing = sync(site.url, "SELECT * FROM nosuch_cat.hidden_stars", headers=bob)
    assert hidden.status_code == missing.status_code == 400
    assert "403" not in hidden.text and "forbidden" not in hidden.text.lower()
    assert hidden.text.replace("secret_cat", "nosuch_cat") == missing.text


def test_queries_are_audited_for_the_operator(site):
    token = login(site.url, ALICE)["access_token"]
    assert len(rows(sync(site.url, "SELECT ra FROM pubcat.stars", headers=bearer(token)))) == 3
    sync(site.url, "SELECT nope FROM pubcat.stars", headers=bearer(token))
    root = bearer(login(site.url, ROOT)["access_token"])
    r = httpx.get(site.url + "/api/admin/audit", params={"event": "query"}, headers=root)
    assert r.status_code == 200
    entries = r.json()["entries"]
    ok = next(e for e in entries if e["detail"] == "SELECT ra FROM pubcat.stars")
    assert ok["username"] == "alice" and ok["rows"] == 3 and ok["outcome"] == "ok"
    assert ok["duration"] >= 0 and ok["time"].endswith("Z")
    assert token not in r.text and ALICE[1] not in r.text
    assert httpx.get(site.url + "/api/admin/audit", headers=bearer(token)).status_code == 403
    assert httpx.get(site.url + "/api/admin/audit").status_code == 401


# --- operator API -------------------------------------------------------------------------
def test_admin_api_manages_users_groups_and_access(site):
    root = bearer(login(site.url, ROOT)["access_token"])
    r = httpx.post(site.url + "/api/admin/users", headers=root,
                   json={"username": "carol", "password": "carol-secret-pw-4"})
    assert r.status_code == 201, r.text
    assert httpx.post(site.url + "/api/admin/groups/team/members", headers=root,
                      json={"username": "carol"}).json()["members"] == ["alice", "carol"]
    carol = ("carol", "carol-secret-pw-4")
    assert "secret_cat" in httpx.get(site.tap + "/tables", auth=carol).text
    token = login(site.url, carol)["access_token"]

    r = httpx.post(site.url + "/api/admin/users/carol/revoke-tokens", headers=root)
    assert r.json()["revoked"] == 1
    assert httpx.get(site.tap + "/tables", headers=bearer(token)).status_code == 401

    assert httpx.post(site.url + "/api/admin/users/carol/disable", headers=root).status_code == 200
    assert httpx.get(site.tap + "/tables", auth=carol).status_code == 401
    assert httpx.post(site.url + "/api/admin/users/carol/enable", headers=root).status_code == 200
    r = httpx.post(site.url + "/api/admin/users/carol/password", headers=root,
                   json={"password": "carol-new-pw-55"})
    assert r.status_code == 200
    assert httpx.get(site.tap + "/tables", auth=("carol", "carol-new-pw-55")).status_code == 200

    r = httpx.put(site.url + "/api/admin/databases/secret_cat/access", headers=root,
                  json={"public": True})
    assert r.json() == {"database": "secret_cat", "public": True, "groups": []}
    assert "secret_cat.hidden_stars" in httpx.get(site.tap + "/tables").text
    r = httpx.put(site.url + "/api/admin/databases/secret_cat/access", headers=root,
                  json={"public": False, "groups": ["team"]})
    assert r.json()["public"] is False
    assert "secret_cat" not in httpx.get(site.tap + "/tables").text

    users = httpx.get(site.url + "/api/admin/users", headers=root).json()["users"]
    assert [u["username"] for u in users] == ["alice", "bob", "carol", "root"]
    assert "password" not in str(users).replace("password_changed", "")
    assert httpx.delete(site.url + "/api/admin/users/carol", headers=root).status_code == 200
    assert httpx.get(site.url + "/api/admin/users/carol", headers=root).status_code == 404
    assert httpx.get(site.url + "/api/admin/users", auth=BOB).status_code == 401  # Basic


# --- pyvo, unmodified -------------------------------------------------------------------
def test_pyvo_with_basic_credentials(site):
    import pyvo
    from pyvo.auth import AuthSession

    session = AuthSession()
    session.credentials.set_password(*ALICE)
    service = pyvo.dal.TAPService(site.tap, session=session)
    names = set(service.tables.keys())
    assert "secret_cat.hidden_stars" in names
    result = service.search("SELECT mag FROM secret_cat.hidden_stars ORDER BY mag")
    assert list(result["mag"]) == pytest.approx([5.5, 6.1, 9.9])

    outsider = AuthSession()
    outsider.credentials.set_password(*BOB)
    service = pyvo.dal.TAPService(site.tap, session=outsider)
    assert "secret_cat.hidden_stars" not in set(service.tables.keys())
    with pytest.raises(pyvo.dal.DALQueryError):
        service.search("SELECT mag FROM secret_cat.hidden_stars")


def test_pyvo_with_bearer_header(site):
    import pyvo
    import requests

    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + login(site.url, ALICE)["access_token"]
    service = pyvo.dal.TAPService(site.tap, session=session)
    result = service.run_sync("SELECT COUNT(*) AS n FROM secret_cat.hidden_stars")
    assert int(result["n"][0]) == 3

    session.headers["Authorization"] = "Bearer th_not-a-real-token"
    with pytest.raises((pyvo.dal.DALQueryError, pyvo.dal.DALServiceError),
                       match="invalid token"):
        pyvo.dal.TAPService(site.tap, session=session).run_sync("SELECT 1 AS x FROM pubcat.stars")


# --- the real command line: server log and plain HTTP from the network --------------------
def test_no_secret_in_server_log_and_no_credentials_over_plain_http(tmp_path):
    from taphouse.auth.authenticator import Authenticator
    from taphouse.metadata import MetadataDB
    from taphouse.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    meta = MetadataDB(settings.meta_path)
    Authenticator(meta, settings).accounts.add_user(*ALICE)
    meta.close()
    server = ServerProcess(settings.data_dir, log_level="debug").start()
    secrets_seen = [ALICE[1], "alice-changed-pw-9", "wrong-password-77"]
    try:
        url = server.url
        body = login(url, ALICE)
        secrets_seen.append(body["access_token"])
        httpx.post(url + "/auth/token", data={"username": "alice",
                                              "password": "wrong-password-77"},
                   timeout=ARGON2_TIMEOUT)
        httpx.get(url + "/tap/tables", auth=ALICE, timeout=ARGON2_TIMEOUT)
        httpx.get(url + "/tap/tables", auth=("alice", "wrong-password-77"),
                  timeout=ARGON2_TIMEOUT)
        r = httpx.post(url + "/auth/refresh", headers=bearer(body["access_token"]))
        secrets_seen.append(r.json()["access_token"])
        r = httpx.post(url + "/auth/tokens", headers=bearer(r.json()["access_token"]),
                       json={"name": "script"})
        personal = r.json()["access_token"]
        secrets_seen.append(personal)
        sync(url, "SELECT COUNT(*) AS n FROM TAP_SCHEMA.tables", headers=bearer(personal))
        httpx.get(url + "/tap/tables", headers=bearer("th_bogus-token-value-123"))
        secrets_seen.append("th_bogus-token-value-123")
        r = httpx.post(url + "/auth/password", headers=bearer(personal),
                       json={"current_password": ALICE[1], "new_password": secrets_seen[1]},
                       timeout=ARGON2_TIMEOUT)
        assert r.status_code == 200, r.text
        secrets_seen.append(r.json()["access_token"])
        httpx.post(url + "/auth/logout", headers=bearer(r.json()["access_token"]))

        assert httpx.post(url + "/auth/token", data={"username": "alice",
                                                     "password": secrets_seen[1]},
                          timeout=ARGON2_TIMEOUT).status_code == 200
    finally:
        server.stop()
    log = server.log_text()
    assert "taphouse serving" in log and "query user=alice" in log
    for secret in secrets_seen:
        assert secret not in log
    assert "Bearer" not in log and "Basic " not in log


def test_credentials_over_plain_http_from_the_network_are_refused(tmp_path):
    """A client that is not on loopback may not send a password or token in clear text;
    anonymous reading still works. The request is handed to the app in-process with a
    documentation-range client address (192.0.2.10), so nothing goes on a network."""
    from starlette.testclient import TestClient

    from taphouse.server import Platform, create_app
    from taphouse.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    platform = Platform(settings)
    platform.authenticator.accounts.add_user(*ALICE)
    app = create_app(settings, platform)
    with TestClient(app, base_url="http://taphouse.example", client=("192.0.2.10", 50000),
                    raise_server_exceptions=False) as remote:
        r = remote.get("/tap/tables", auth=ALICE)
        assert r.status_code == 403 and "plain HTTP" in r.text
        r = remote.post("/auth/token", data={"username": "alice", "password": ALICE[1]})
        assert r.status_code == 403 and "plain HTTP" in r.json()["error"]
        assert remote.get("/tap/tables").status_code == 200
        # X-Forwarded-Proto from a client that is not a trusted proxy proves nothing.
        r = remote.post("/auth/token", data={"username": "alice", "password": ALICE[1]},
                        headers={"X-Forwarded-Proto": "https"})
        assert r.status_code == 403
    # Behind a trusted TLS-terminating proxy: its X-Forwarded-Proto: https vouches for the
    # client's transport; without it, plain HTTP from the proxy's clients is refused.
    behind_proxy = settings.replace(trusted_proxies=("192.0.2.0/28",))
    app = create_app(behind_proxy, Platform(behind_proxy))
    with TestClient(app, client=("192.0.2.10", 50000)) as proxy:
        r = proxy.post("/auth/token", data={"username": "alice", "password": ALICE[1]},
                       headers={"X-Forwarded-Proto": "https",
                                "X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 200, r.text
        r = proxy.post("/auth/token", data={"username": "alice", "password": ALICE[1]},
                       headers={"X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 403 and "plain HTTP" in r.json()["error"]


def test_maintenance_purges_tokens_dead_for_a_week(site):
    # Logged out (revoked) today, then the same a week and a day ago: the server's
    # maintenance round forgets the old record and keeps the recent one (and live ones).
    live = login(site.url, ALICE)["access_token"]
    old, recent = (login(site.url, ALICE)["access_token"] for _ in range(2))
    for token in (old, recent):
        assert httpx.post(site.url + "/auth/logout", headers=bearer(token)).status_code == 204
    meta = site.platform.meta
    before = meta.query_one("SELECT COUNT(*) FROM tokens")[0]
    newest = meta.query_one("SELECT MAX(revoked) FROM tokens")[0]
    aged = meta.execute("UPDATE tokens SET revoked=revoked - 8 * 86400 WHERE revoked IS NOT"
                        " NULL AND revoked < ?", (newest,)).rowcount
    assert aged >= 1
    site.platform.maintain()
    assert meta.query_one("SELECT COUNT(*) FROM tokens")[0] == before - aged
    r = httpx.get(site.url + "/api/quota", headers=bearer(live))
    assert r.status_code == 200, r.text
