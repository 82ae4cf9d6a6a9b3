import base64

import pytest
from starlette.requests import Request

from accounts import PASSWORD
from taphouse.auth.authenticator import Authenticator, require_scope
from taphouse.auth.errors import AuthError, Forbidden, InsecureTransport, TooManyAttempts


def request(authorization: str | None = None, *, client: str = "127.0.0.1",
            scheme: str = "http", path: str = "/tap/sync") -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request({"type": "http", "method": "GET", "scheme": scheme, "path": path,
                    "query_string": b"", "headers": headers, "client": (client, 40000),
                    "server": ("127.0.0.1", 8000), "root_path": ""})


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


@pytest.fixture
def alice(auth):
    auth.accounts.add_group("astro")
    return auth.accounts.add_user("alice", PASSWORD, groups=["astro"])


def test_no_credentials_is_anonymous(auth):
    ident = auth.identify(request())
    assert ident.anonymous and ident.method == "anonymous"


def test_anonymous_off_needs_login_except_capabilities(meta, settings, cheap_hashing, clock):
    auth = Authenticator(meta, settings.replace(anonymous_read=False), hashing=cheap_hashing,
                         clock=clock)
    with pytest.raises(AuthError, match="requires a login") as err:
        auth.identify(request())
    assert err.value.status == 401 and err.value.bearer_error is None
    assert auth.identify(request(path="/tap/capabilities")).anonymous


def test_bearer_token_identifies_user_with_groups(auth, alice):
    _, issued = auth.login("alice", PASSWORD)
    ident = auth.identify(request("Bearer " + issued.secret))
    assert ident.username == "alice" and ident.user_id == alice.id
    assert ident.groups == {"astro"} and ident.method == "bearer"
    assert ident.scopes == {"read", "write"} and not ident.is_admin


def test_bad_token_is_401_never_anonymous(auth, alice):
    with pytest.raises(AuthError, match="invalid token") as err:
        auth.identify(request("Bearer th_nonsense"))
    assert err.value.bearer_error == "invalid_token"
    with pytest.raises(AuthError, match="unsupported authorization scheme"):
        auth.identify(request("Digest abc"))


def test_expired_token_message(auth, alice, clock, settings):
    _, issued = auth.login("alice", PASSWORD)
    clock.advance(settings.token_lifetime + 1)
    with pytest.raises(AuthError, match="token expired"):
        auth.identify(request("Bearer " + issued.secret))


def test_basic_is_checked_once_then_cached(auth, alice):
    for _ in range(3):
        ident = auth.identify(request(basic("alice", PASSWORD)))
    assert ident.username == "alice" and ident.method == "basic"
    assert len(auth.basic_cache) == 1
    # Each argon2id check is audited as a login: one for three requests.
    assert len(auth.audit_log.entries(event="login")) == 1


def test_basic_cache_expires(auth, alice, clock, settings):
    auth.identify(request(basic("alice", PASSWORD)))
    clock.advance(settings.basic_cache_seconds + 1)
    assert auth.basic_cache.get(auth.basic_cache.key("alice", PASSWORD)) is None


def test_password_change_drops_cached_basic_and_revokes_tokens(auth, alice):
    auth.identify(request(basic("alice", PASSWORD)))
    _, issued = auth.login("alice", PASSWORD)
    auth.change_password(auth.accounts.user("alice"), PASSWORD, "a new password 2")
    with pytest.raises(AuthError, match="invalid user name or password"):
        auth.identify(request(basic("alice", PASSWORD)))
    with pytest.raises(AuthError, match="revoked"):
        auth.identify(request("Bearer " + issued.secret))
    assert auth.identify(request(basic("alice", "a new password 2"))).username == "alice"


def test_change_from_another_process_ends_cached_basic(auth, alice, meta, settings,
                                                       cheap_hashing, clock):
    auth.identify(request(basic("alice", PASSWORD)))
    other = Authenticator(meta, settings, hashing=cheap_hashing, clock=clock)  # e.g. the CLI
    other.set_disabled("alice", True)
    with pytest.raises(AuthError):
        auth.identify(request(basic("alice", PASSWORD)))


def test_unknown_user_and_wrong_password_get_the_same_answer(auth, alice):
    with pytest.raises(AuthError) as e1:
        auth.identify(request(basic("alice", "wrong password 9")))
    with pytest.raises(AuthError) as e2:
        auth.identify(request(basic("nobody", "wrong password 9")))
    with pytest.raises(AuthError) as e3:
        auth.identify(request(basic("no body!", "wrong password 9")))
    assert e1.value.message == e2.value.message == e3.value.message
    assert e1.value.status == e2.value.status == 401


def test_failed_basic_logins_are_throttled(auth, alice):
    for _ in range(auth.throttle.per_pair):
        with pytest.raises(AuthError):
            auth.identify(request(basic("alice", "wrong password 9")))
    with pytest.raises(TooManyAttempts) as err:
        auth.identify(request(basic("alice", PASSWORD)))
    assert err.value.status == 429 and err.value.retry_after > 0


def test_disabled_account_cannot_log_in(auth, alice):
    auth.set_disabled("alice", True)
    with pytest.raises(AuthError, match="disabled"):
        auth.login("alice", PASSWORD)
    with pytest.raises(AuthError, match="invalid user name"):
        auth.login("alice", "wrong password 9")


def test_credentials_over_plain_http_refused_unless_loopback_or_proxy(
        auth, alice, meta, settings, cheap_hashing, clock):
    _, issued = auth.login("alice", PASSWORD)
    with pytest.raises(InsecureTransport, match="plain HTTP") as err:
        auth.identify(request("Bearer " + issued.secret, client="192.0.2.7"))
    assert err.value.status == 403
    with pytest.raises(InsecureTransport):
        auth.identify(request(basic("alice", PASSWORD), client="192.0.2.7"))
    assert auth.identify(request("Bearer " + issued.secret, client="192.0.2.7",
                                 scheme="https")).username == "alice"
    assert auth.identify(request("Bearer " + issued.secret, client="::1")).username == "alice"
    # Through a trusted proxy (taphouse.admission.ForwardedHeaders marks the request):
    # loopback proves nothing, only X-Forwarded-Proto: https (the scheme) counts.
    proxied = request("Bearer " + issued.secret, client="127.0.0.1")
    proxied.scope["taphouse.via_proxy"] = True
    with pytest.raises(InsecureTransport):
        auth.identify(proxied)
    proxied = request("Bearer " + issued.secret, client="192.0.2.7", scheme="https")
    proxied.scope["taphouse.via_proxy"] = True
    assert auth.identify(proxied).username == "alice"
    assert auth.identify(request(client="192.0.2.7")).anonymous  # no credentials: fine


def test_basic_can_be_refused_where_not_allowed(auth, alice):
    with pytest.raises(AuthError, match="Basic is not accepted"):
        auth.identify(request(basic("alice", PASSWORD)), allow_basic=False)


def test_admin_scope_only_for_admins(auth, alice):
    auth.accounts.add_user("root", "an admin password 1", is_admin=True)
    _, tok = auth.login("root", "an admin password 1")
    ident = auth.identify(request("Bearer " + tok.secret))
    assert ident.is_admin and "admin" in ident.scopes
    _, tok = auth.login("root", "an admin password 1", scopes=["read"])
    ident = auth.identify(request("Bearer " + tok.secret))
    assert not ident.is_admin
    with pytest.raises(Forbidden):
        auth.login("alice", PASSWORD, scopes=["admin"])
    with pytest.raises(Forbidden, match="write"):
        require_scope(ident, "write")


def test_identity_for_job_owner_has_current_groups(auth, alice):
    auth.accounts.add_group("gaia_team")
    auth.accounts.add_member("gaia_team", "alice")
    ident = auth.identity_for(alice.id)
    assert ident.groups == {"astro", "gaia_team"} and ident.method == "job"
    assert auth.identity_for(None).anonymous
    auth.set_disabled("alice", True)
    with pytest.raises(AuthError, match="disabled"):
        auth.identity_for(alice.id)
    # by id: a later account with the name is not the job's owner
    auth.delete_user("alice")
    auth.accounts.add_user("alice", PASSWORD)
    with pytest.raises(AuthError, match="deleted"):
        auth.identity_for(alice.id)


def test_audit_records_logins_without_secrets(auth, alice, meta):
    auth.login("alice", PASSWORD)
    with pytest.raises(AuthError):
        auth.login("alice", "wrong password 9")
    with pytest.raises(AuthError):
        auth.login("ghost", "wrong password 9")
    events = auth.audit_log.entries()
    assert [e["event"] for e in events[:3]] == ["login_failed", "login_failed", "login"]
    assert events[0]["username"] is None and events[1]["username"] == "alice"
    dump = " ".join(str(tuple(r)) for r in meta.query("SELECT * FROM audit_log"))
    assert PASSWORD not in dump and "wrong password" not in dump and "ghost" not in dump
