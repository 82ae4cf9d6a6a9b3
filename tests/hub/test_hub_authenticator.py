"""The hub's Authenticator against a real taphouse server, without a hub process:
group restriction, token refresh and the account re-check (the hub tests drive the
same code through the real hub)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from tornado.httputil import HTTPHeaders

from accounts import PASSWORD
from servers import start_live
from taphouse.hub.authenticator import TaphouseAuthenticator, browser_address
from taphouse.hub.link import service_token_path, write_secret


def _request(peer: str = "127.0.0.1", **headers: str) -> SimpleNamespace:
    h = HTTPHeaders()
    for k, v in headers.items():
        h.add(k.replace("_", "-"), v)
    return SimpleNamespace(headers=h, remote_ip=headers.get("X_Real_Ip", peer),
                           connection=SimpleNamespace(
                               context=SimpleNamespace(_orig_remote_ip=peer)))


class _User:
    def __init__(self, name: str, state: dict) -> None:
        self.name = name
        self.state = state

    async def get_auth_state(self) -> dict:
        return self.state


@pytest.fixture(scope="module")
def hub_side(tmp_path_factory):
    server = start_live(tmp_path_factory.mktemp("hubauth"))
    write_secret(service_token_path(server.data_dir))
    auth = server.platform.authenticator

    def make(**kwargs):
        return TaphouseAuthenticator(taphouse_url=server.url,
                                     service_token_file=str(service_token_path(
                                         server.data_dir)), **kwargs)
    yield server, auth, make
    server.stop()


def _login(authenticator, name, password=PASSWORD, peer="127.0.0.5"):
    handler = SimpleNamespace(request=_request(peer))
    return asyncio.run(authenticator.authenticate(handler, {"username": name,
                                                            "password": password}))


def test_browser_address_ignores_what_the_client_wrote():
    trusted = {"127.0.0.1"}
    # The proxy appended the address it saw; the client's own entries are left of it.
    r = _request("127.0.0.1", X_Forwarded_For="6.6.6.6, 203.0.113.7", X_Real_Ip="6.6.6.7")
    assert browser_address(r, trusted) == "203.0.113.7"
    # A TLS proxy the operator trusts: the entry left of it is the browser.
    r = _request("127.0.0.1", X_Forwarded_For="6.6.6.6, 198.51.100.4, 10.0.0.2")
    assert browser_address(r, trusted | {"10.0.0.2"}) == "198.51.100.4"
    # No proxy at all: the peer.
    assert browser_address(_request("192.0.2.1"), trusted) == "192.0.2.1"


def test_login_keeps_the_taphouse_token_in_auth_state(hub_side):
    server, auth, make = hub_side
    auth.accounts.add_user("ada", PASSWORD)
    result = _login(make(), "ada")
    assert result["name"] == "ada"
    token = result["auth_state"]["token"]
    assert auth.tokens.validate(token).kind == "session"
    assert _login(make(), "ada", "wrong password") is None
    # The login counted against the browser's address the hub forwarded.
    clients = [e["client"] for e in auth.audit_log.entries(username="ada", event="login")]
    assert clients[0] == "127.0.0.5"


def test_only_members_of_the_hubs_groups(hub_side):
    server, auth, make = hub_side
    auth.accounts.add_group("astro")
    auth.accounts.add_user("bea", PASSWORD, groups=["astro"])
    auth.accounts.add_user("cid", PASSWORD)
    restricted = make(taphouse_groups=["astro"])
    assert _login(restricted, "bea")["name"] == "bea"
    assert _login(restricted, "cid") is None
    # A member removed from the group is logged out at the next check.
    state = _login(restricted, "bea")["auth_state"]
    assert asyncio.run(restricted.refresh_user(_User("bea", state)))
    auth.accounts.remove_member("astro", "bea")
    assert asyncio.run(restricted.refresh_user(_User("bea", state))) is False


def test_refresh_swaps_the_token_and_a_disabled_account_is_logged_out(hub_side):
    server, auth, make = hub_side
    auth.accounts.add_user("dan", PASSWORD)
    hub = make()
    state = _login(hub, "dan")["auth_state"]
    fresh = asyncio.run(hub.refresh_user(_User("dan", state)))
    assert fresh["auth_state"]["token"] == state["token"]  # not due yet
    due = dict(state, refresh_before="2000-01-01T00:00:00Z")
    fresh = asyncio.run(hub.refresh_user(_User("dan", due)))
    assert fresh["auth_state"]["token"] != state["token"]
    assert auth.tokens.validate(fresh["auth_state"]["token"]).kind == "session"
    auth.set_disabled("dan", True)
    assert asyncio.run(hub.refresh_user(_User("dan", fresh["auth_state"]))) is False


def test_the_hubs_process_needs_only_the_hub_extra():
    """`pip install taphouse[hub]` has JupyterHub but no Jupyter server or kernel
    packages: the hub's process must import its classes without them."""
    import subprocess
    import sys

    blocked = ("jupyter_client", "jupyter_server", "ipykernel", "jupyterlab")
    code = ("import sys\n"
            f"for m in {blocked!r}: sys.modules[m] = None\n"
            "import taphouse.hub.spawner, taphouse.hub.authenticator, taphouse.hub.config\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_sandbox_paths_are_absolute_with_the_default_relative_data_dir(tmp_path, monkeypatch):
    """bubblewrap binds paths from "/": the default data directory ("taphouse-data",
    relative) once gave it "taphouse-data/hub/env" and no server could start."""
    from taphouse.compute.service import ComputeSettings
    from taphouse.hub.config import HubFiles, hub_env_dir, render_config
    from taphouse.settings import Settings

    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert not settings.data_dir.is_absolute()
    assert hub_env_dir(settings) == tmp_path / "taphouse-data" / "hub" / "env"
    assert ComputeSettings.from_settings(settings).env_dir.is_absolute()
    config = render_config(settings, HubFiles.of(settings.data_dir), "/usr/bin/chp")
    paths = [line.split(" = ", 1)[1].strip("'") for line in config.splitlines()
             if line.startswith(("c.SandboxSpawner.hub", "c.SandboxSpawner.jupyter",
                                 "c.SandboxSpawner.run_dir"))]
    assert len(paths) == 4 and all(p.startswith(str(tmp_path)) for p in paths), paths
