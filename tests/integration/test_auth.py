"""Login, logout, wrong passwords, token refresh and expiry, token store, environment."""

from __future__ import annotations

import os
import stat
import time

import pytest

import taphouse
from accounts import PASSWORD
from taphouse.client import AuthError, Client, ClientError


def test_login_whoami_logout_revokes_the_token(demo_server, new_user):
    name = new_user()
    c = taphouse.connect(demo_server.url, interactive=False, progress=False).login(name, PASSWORD)
    assert c.username == name and c.logged_in
    assert c.whoami()["username"] == name
    token = c.auth.token
    c.logout()
    assert not c.logged_in
    other = Client(demo_server.url, token=token, interactive=False)
    with pytest.raises(AuthError, match="refused"):
        other.whoami()


def test_wrong_password_is_an_auth_error_with_the_server_message(demo_server, new_user):
    c = taphouse.connect(demo_server.url, interactive=False)
    with pytest.raises(AuthError) as info:
        c.login(new_user(), "not the password at all")
    assert info.value.status == 401
    assert "password" in info.value.message.lower() or "invalid" in info.value.message.lower()
    assert not c.logged_in


def test_no_password_and_no_terminal_is_a_clear_auth_error(demo_server, new_user):
    c = taphouse.connect(demo_server.url, interactive=False)
    with pytest.raises(AuthError, match="no password given .* TAPHOUSE_TOKEN"):
        c.login(new_user())


def test_login_prompts_for_the_password_when_interactive(demo_server, new_user):
    asked: list[str] = []
    c = taphouse.connect(demo_server.url, interactive=True,
                         prompt=lambda text: asked.append(text) or PASSWORD)
    name = new_user()
    c.login(name)
    assert len(asked) == 1 and name in asked[0] and demo_server.url in asked[0]
    assert c.whoami()["username"] == name


def test_token_is_refreshed_before_it_expires(start_server, make_user):
    server = start_server(token_lifetime=600.0)
    name = make_user(server)
    c = taphouse.connect(server.url, interactive=False).login(name, PASSWORD)
    first = c.auth.token
    # 95 % of the lifetime later, on both clocks: the client refreshes before sending.
    offset = 570.0
    server.platform.authenticator.clock = lambda: time.time() + offset
    c.auth.clock = lambda: time.time() + offset
    assert c.whoami()["username"] == name
    assert c.auth.token != first
    assert c.auth.expires > time.time() + offset + 500


def test_expired_token_non_interactive_raises_auth_error(start_server, make_user):
    server = start_server(token_lifetime=60.0)
    name = make_user(server)
    c = taphouse.connect(server.url, interactive=False).login(name, PASSWORD)
    server.platform.authenticator.clock = lambda: time.time() + 3600
    with pytest.raises(AuthError, match=f"log in again with client.login\\('{name}'\\)"):
        c.whoami()
    assert not c.logged_in


def test_expired_token_interactive_asks_again_and_carries_on(start_server, make_user):
    server = start_server(token_lifetime=60.0)
    name = make_user(server)
    asked: list[str] = []
    c = taphouse.connect(server.url, interactive=True,
                         prompt=lambda text: asked.append(text) or PASSWORD)
    c.login(name, PASSWORD)
    server.platform.authenticator.clock = lambda: time.time() + 3600
    assert c.whoami()["username"] == name  # the 401 led to a new login, then a re-send
    assert len(asked) == 1


def test_token_store_reuses_a_valid_token_and_logout_forgets_it(demo_server, new_user):
    name = new_user()
    c = taphouse.connect(demo_server.url, remember=True, interactive=False).login(name, PASSWORD)
    path = os.path.join(os.environ["XDG_CONFIG_HOME"], "taphouse", "tokens.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    later = taphouse.connect(demo_server.url, remember=True, interactive=False)
    assert later.logged_in and later.whoami()["username"] == name
    later.logout()
    again = taphouse.connect(demo_server.url, remember=True, interactive=False)
    assert not again.logged_in
    with pytest.raises(AuthError):
        c.whoami()  # the same token, revoked by the other session's logout


def test_url_and_token_from_the_environment(demo_server, new_user, monkeypatch):
    name = new_user()
    token = taphouse.connect(demo_server.url).login(name, PASSWORD).auth.token
    monkeypatch.setenv("TAPHOUSE_URL", demo_server.url)
    monkeypatch.setenv("TAPHOUSE_TOKEN", token)
    c = taphouse.connect(progress=False)
    assert c.url == demo_server.url and c.username == name
    monkeypatch.setenv("TAPHOUSE_TOKEN", "not-a-token")
    with pytest.raises(AuthError, match="TAPHOUSE_TOKEN was refused"):
        taphouse.connect().whoami()


def test_no_url_anywhere_is_a_clear_error():
    with pytest.raises(ClientError, match="set TAPHOUSE_URL"):
        taphouse.connect()
