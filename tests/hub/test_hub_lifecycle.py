"""Servers that stop: the notebook token ends with them; a disabled or deleted account is
logged out and its server stopped; what a kernel planted in the home never runs in the
server."""

from __future__ import annotations

import textwrap
import time

import httpx
import pytest
from hub_helpers import CHECK_INTERVAL, login_form
from hub_helpers import browser as new_browser

pytestmark = pytest.mark.slow


def _socket_whoami(platform, token: str) -> int:
    """The API socket (the kernels' only way out) asked with ``token``, as a kernel would."""
    transport = httpx.HTTPTransport(uds=str(platform.server.platform.compute.socket_path))
    with httpx.Client(transport=transport, base_url="http://taphouse") as http:
        return http.get("/auth/whoami", headers={"Authorization": f"Bearer {token}"}).status_code


def _notebook_token(kernel) -> str:
    return kernel.value("import os, json; print(json.dumps(os.environ['TAPHOUSE_TOKEN']))")


def test_stopping_the_server_revokes_its_notebook_token(platform, hub_user):
    _name, _browser, server = hub_user
    server.start()
    kernel = server.new_kernel()
    token = _notebook_token(kernel)
    kernel.close()
    assert _socket_whoami(platform, token) == 200
    server.stop()
    assert _socket_whoami(platform, token) == 401
    with pytest.raises(Exception, match="ended"):
        platform.server.platform.authenticator.tokens.validate(token)
    # A new server gets a new token; the old one stays dead.
    server.start()
    kernel = server.new_kernel()
    fresh = _notebook_token(kernel)
    kernel.close()
    assert fresh != token and _socket_whoami(platform, fresh) == 200
    assert _socket_whoami(platform, token) == 401
    server.stop()


def _wait(condition, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if condition():
            return time.monotonic() - t0
        time.sleep(0.5)
    raise TimeoutError("condition not met")


@pytest.mark.parametrize("how", ["disable", "delete"])
def test_disabled_or_deleted_account_is_logged_out_and_its_server_stopped(platform,
                                                                         hub_user, how):
    name, browser, server = hub_user
    server.start()
    kernel = server.new_kernel()
    token = _notebook_token(kernel)
    kernel.close()
    auth = platform.server.platform.authenticator
    if how == "disable":
        auth.set_disabled(name, True)
    else:
        platform.server.platform.delete_account(name, False, "test")
    # Taphouse refuses the kernel's token at once ...
    assert _socket_whoami(platform, token) == 401
    # ... and within the check interval (60 s by default; 10 in this hub) the hub stops
    # the server and logs the user out.
    hub_api = httpx.Client(base_url=platform.hub_url, timeout=30,
                           headers={"Authorization": f"token {server.token}"})

    def stopped() -> bool:
        r = hub_api.get(f"/hub/api/users/{name}")
        return r.status_code != 200 or not r.json().get("servers")

    _wait(stopped, 3 * CHECK_INTERVAL + 15)
    _wait(lambda: browser.get("/hub/home").status_code == 302, CHECK_INTERVAL + 15)
    assert server.http.get(f"{server.prefix}/api/contents").status_code != 200


PLANTED = textwrap.dedent("""
    import json, os, pathlib
    home = pathlib.Path.home()
    marker = "/home/" + os.environ["USER"] + "/PWNED"
    code = f"open({marker!r}, 'w').write('server ran home code')\\n"
    for rel in [".jupyter/jupyter_server_config.py", ".jupyter/jupyter_notebook_config.py",
                ".local/lib/python3.11/site-packages/usercustomize.py",
                ".local/lib/python3.11/site-packages/evil.pth",
                "jupyterhub.py", "taphouse.py", "sitecustomize.py"]:
        p = home / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(("import os; " + code) if rel.endswith(".pth") else code)
    spec = home / ".local/share/jupyter/kernels/evil"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["/bin/sh", "-c", "echo escaped > " + marker], "display_name": "evil",
        "language": "python"}))
    print(json.dumps(True))
""")


def test_files_planted_in_the_home_never_run_in_the_server(platform, hub_user):
    _name, _browser, server = hub_user
    server.start()
    kernel = server.new_kernel()
    kernel.value(PLANTED)
    kernel.close()
    server.stop()
    server.start()
    specs = server.http.get(f"{server.prefix}/api/kernelspecs").json()
    assert set(specs["kernelspecs"]) == {"python3"}
    r = server.http.post(f"{server.prefix}/api/kernels", json={"name": "evil"})
    assert r.status_code != 201
    kernel = server.new_kernel()
    assert kernel.value("import os, json; print(json.dumps(os.path.exists("
                        "os.path.expanduser('~/PWNED'))))") is False
    kernel.close()
    server.stop()


def test_logout_stops_the_server_and_ends_every_taphouse_token(platform, hub_user):
    """A notebook token stolen from a kernel, or the taphouse login behind the hub,
    must not outlive the hub's logout; a second login's token replaces the first."""
    name, browser, server = hub_user
    auth = platform.server.platform.authenticator
    user_id = auth.accounts.user(name).id
    with new_browser(platform.hub_url) as second:  # the same user in another browser
        assert login_form(second, name).status_code == 302
    server.start()
    kernel = server.new_kernel()
    token = _notebook_token(kernel)
    kernel.close()
    assert _socket_whoami(platform, token) == 200
    assert len(auth.tokens.list(user_id, kind="session")) == 1  # the first login's ended
    r = browser.get("/hub/logout")
    assert r.status_code == 302
    assert _socket_whoami(platform, token) == 401
    assert auth.tokens.list(user_id) == []  # no live token of any kind
    assert not server.http.get(f"/hub/api/users/{name}").json().get("servers")
    assert browser.get("/hub/home").status_code == 302  # to the login page
