"""Logging in to the real hub with taphouse accounts (through its login form and proxy),
and the rules of the hub's privileges on the taphouse side."""

from __future__ import annotations

import httpx
from hub_helpers import PASSWORD, add_user, browser, login_form

from taphouse.hub.link import service_token_path


def _audit_clients(platform, name: str) -> list[tuple[str, str]]:
    entries = platform.server.platform.authenticator.audit_log.entries(username=name,
                                                                        limit=50)
    return [(e["event"], e.get("client") or "") for e in entries
            if e["event"] in ("login", "login_failed")]


def test_login_through_the_form_with_a_taphouse_user(platform):
    name = add_user(platform.server)
    with browser(platform.hub_url) as client:
        r = login_form(client, name)
        assert r.status_code == 302, r.text[:500]
        home = client.get("/hub/home")
        assert home.status_code == 200 and name in home.text
        cookies = {c.name: c for c in client.cookies.jar}
        login_cookie = cookies["jupyterhub-hub-login"]
        # The hub's login cookie is for the hub's pages only, and never for scripts.
        assert login_cookie.path == "/hub/"
        assert login_cookie.has_nonstandard_attr("HttpOnly")


def test_wrong_password_is_refused(platform):
    name = add_user(platform.server)
    with browser(platform.hub_url) as client:
        r = login_form(client, name, "not the password")
        assert r.status_code == 403
        assert "jupyterhub-hub-login" not in {c.name for c in client.cookies.jar}
        assert client.get("/hub/home").status_code == 302  # to the login page


def test_disabled_user_is_refused(platform):
    name = add_user(platform.server)
    platform.server.platform.authenticator.set_disabled(name, True)
    with browser(platform.hub_url) as client:
        assert login_form(client, name).status_code == 403


def test_unknown_user_is_refused(platform):
    with browser(platform.hub_url) as client:
        assert login_form(client, "nosuchuser0", PASSWORD).status_code == 403


def test_taphouse_sees_the_browser_address_not_a_spoofed_one(platform):
    name = add_user(platform.server)
    spoof = {"X-Forwarded-For": "127.0.0.99", "X-Real-Ip": "127.0.0.98"}
    with browser(platform.hub_url, source="127.0.0.4") as client:
        assert login_form(client, name, headers=spoof).status_code == 302
    assert ("login", "127.0.0.4") in _audit_clients(platform, name)
    assert not any(c.startswith("127.0.0.9") for _e, c in _audit_clients(platform, name))


def test_throttling_counts_per_browser_address_through_the_hub(platform):
    """Five wrong passwords from one browser address stop that address for this
    account; the owner logs in from another address (no lock-out of every hub user)."""
    name = add_user(platform.server)
    with browser(platform.hub_url, source="127.0.0.2") as attacker:
        for _ in range(5):
            assert login_form(attacker, name, "wrong password!").status_code == 403
        # Even the right password is refused from the attacker's address now.
        assert login_form(attacker, name).status_code == 403
    with browser(platform.hub_url, source="127.0.0.3") as owner:
        assert login_form(owner, name).status_code == 302
    clients = _audit_clients(platform, name)
    assert ("login", "127.0.0.3") in clients
    assert all(c == "127.0.0.2" for e, c in clients if e == "login_failed")


def test_forwarded_address_needs_the_hubs_service_token(platform):
    """Any loopback caller may log in, but only the hub's service token makes taphouse
    believe a forwarded address; a wrong service token is refused outright."""
    server = platform.server
    name = add_user(server)
    form = {"username": name, "password": PASSWORD}
    r = httpx.post(server.url + "/auth/token", data=form,
                   headers={"X-Taphouse-Client": "127.0.0.77"})
    assert r.status_code == 200
    assert ("login", "127.0.0.1") in _audit_clients(platform, name)
    assert not any(c == "127.0.0.77" for _e, c in _audit_clients(platform, name))
    r = httpx.post(server.url + "/auth/token", data=form,
                   headers={"X-Taphouse-Hub": "guessed", "X-Taphouse-Client": "127.0.0.77"})
    assert r.status_code == 403
    secret = service_token_path(server.data_dir).read_text().strip()
    r = httpx.post(server.url + "/auth/token", data=form,
                   headers={"X-Taphouse-Hub": secret, "X-Taphouse-Client": "127.0.0.78"})
    assert r.status_code == 200
    assert ("login", "127.0.0.78") in _audit_clients(platform, name)


def test_notebook_tokens_need_the_hubs_service_token(platform):
    server = platform.server
    name = add_user(server)
    session = httpx.post(server.url + "/auth/token",
                         data={"username": name, "password": PASSWORD}).json()["access_token"]
    bearer = {"Authorization": f"Bearer {session}"}
    url = server.url + "/api/hub/notebook-tokens"
    assert httpx.post(url, json={}, headers=bearer).status_code == 403
    assert httpx.post(url, json={}, headers={**bearer, "X-Taphouse-Hub": "x"}).status_code == 403
    secret = service_token_path(server.data_dir).read_text().strip()
    hub = {"X-Taphouse-Hub": secret}
    # The service token alone mints for nobody: the user's own session token is needed.
    assert httpx.post(url, json={}, headers=hub).status_code == 401
    r = httpx.post(url, json={}, headers={**bearer, **hub})
    assert r.status_code == 200, r.text
    grant = r.json()
    assert grant["username"] == name and grant["token"].startswith("thj_")
    # A notebook token is refused on the TCP listener (it works on the socket only).
    who = httpx.get(server.url + "/auth/whoami",
                    headers={"Authorization": f"Bearer {grant['token']}"})
    assert who.status_code == 401
    # ... and it cannot mint more notebook tokens, even with the service token.
    r = httpx.post(url, json={}, headers={"Authorization": f"Bearer {grant['token']}", **hub})
    assert r.status_code == 401
    r = httpx.delete(f"{url}/{grant['token_id']}", headers=hub)
    assert r.status_code == 204
    assert httpx.get(server.url + "/api/hub/accounts/" + name).status_code == 403
    account = httpx.get(server.url + "/api/hub/accounts/" + name, headers=hub).json()
    assert account["username"] == name and account["disabled"] is False


def test_hub_secrets_are_private_and_every_port_is_on_loopback(platform):
    import stat

    import psutil

    root = platform.server.data_dir / "hub"
    assert stat.S_IMODE(root.stat().st_mode) == 0o710
    secrets = {}
    for name in ("service-token", "crypt-key", "cookie-secret", "proxy-token",
                 "jupyterhub.sqlite", "jupyterhub_config.py"):
        st = (root / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, name
        if name not in ("jupyterhub.sqlite", "jupyterhub_config.py"):
            secrets[name] = (root / name).read_text().strip()
            assert len(secrets[name]) >= 32, name
    config = (root / "jupyterhub_config.py").read_text()
    assert not [n for n, v in secrets.items() if v in config]
    port = platform.server.platform.settings.hub_port
    listening = {c.laddr.port: c.laddr.ip for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and port <= c.laddr.port <= port + 2}
    assert listening == {port: "127.0.0.1", port + 1: "127.0.0.1", port + 2: "127.0.0.1"}


def test_a_server_restart_leaves_the_hubs_files_readable_by_the_sandboxes(platform):
    """The server makes its data directory private at each start; the hub's library,
    configuration and environment must stay readable by the sandbox group (a restarted
    server once made them 0700 and no user's server could start again)."""
    import stat

    from taphouse.storage import datadir

    root = platform.server.data_dir / "hub"
    before = {p: stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")
              if not p.is_symlink()}
    changed = datadir.enforce_permissions(platform.server.data_dir)
    assert not [c for c in changed if c.startswith(str(root))]
    assert stat.S_IMODE((root / "lib").stat().st_mode) == 0o750
    assert {p: stat.S_IMODE(p.stat().st_mode) for p in before} == before
