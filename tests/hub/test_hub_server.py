"""A user's server and kernel on the real hub: taphouse with no arguments, mydb, and
what neither the kernel nor the Jupyter API may reach. One server and kernel are shared
by this module (``running``)."""

from __future__ import annotations

import json
import textwrap

import pytest
from hub_helpers import PASSWORD, Kernel

import taphouse

pytestmark = pytest.mark.slow


def _client(platform, name: str) -> taphouse.client.Client:
    c = taphouse.connect(platform.server.url, interactive=False, progress=False)
    return c.login(name, PASSWORD)


def test_server_and_kernel_run_as_the_users_own_uid(platform, running):
    name, _browser, _server, kernel = running
    user = platform.server.platform.authenticator.accounts.user(name)
    got = kernel.value("import os, json; print(json.dumps([os.getuid(), os.getcwd(),"
                       " os.environ.get('HOME'), sorted(os.environ)]))")
    uid, cwd, home, keys = got
    assert uid == platform.server.platform.settings.compute_uid_base + user.id
    assert cwd == home == f"/home/{name}"
    # The kernel gets its taphouse token and nothing of its server's secrets.
    assert "TAPHOUSE_TOKEN" in keys
    assert not [k for k in keys if k.startswith("JUPYTERHUB")]


def test_connect_without_arguments_queries_gaia(running):
    _name, _browser, _server, kernel = running
    got = kernel.value(textwrap.dedent("""
        import json, taphouse
        client = taphouse.connect()
        t = client.query("SELECT TOP 5 source_id, ra, dec FROM gaia.dr3_bright ORDER BY source_id")
        print(json.dumps([client.username, len(t), [int(x) for x in t["source_id"]]]))
    """))
    name, rows, ids = got
    assert name == running[0] and rows == 5 and ids == sorted(ids)


def test_result_stored_in_mydb_is_read_back_from_taphouse(platform, running):
    name, _browser, _server, kernel = running
    kernel.value(textwrap.dedent("""
        import json, taphouse
        client = taphouse.connect()
        client.query("SELECT TOP 17 source_id, phot_g_mean_mag FROM gaia.dr3_bright"
                     " ORDER BY phot_g_mean_mag", into="bright17")
        print(json.dumps(True))
    """))
    with _client(platform, name) as client:
        assert client.mydb.describe("bright17").nrows == 17
        t = client.query("SELECT COUNT(*) AS n FROM mydb.bright17")
        assert int(t["n"][0]) == 17


ESCAPES = """
import json, os, socket
found = {}
def probe(name, fn):
    try:
        fn()
        found[name] = "ESCAPED"
    except Exception as exc:
        found[name] = type(exc).__name__
def tcp(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=3); s.close()
probe("tcp_taphouse", lambda: tcp(TAPHOUSE_PORT))
probe("tcp_hub", lambda: tcp(HUB_PORT))
probe("tcp_hub_api", lambda: tcp(HUB_PORT + 1))
probe("tcp_proxy_api", lambda: tcp(HUB_PORT + 2))
probe("dns", lambda: socket.getaddrinfo("pypi.org", 443))
probe("data_dir", lambda: os.listdir(DATA_DIR))
probe("meta_db", lambda: open(DATA_DIR + "/meta.sqlite", "rb").read(16))
probe("hub_secrets", lambda: open(DATA_DIR + "/hub/crypt-key").read())
probe("hub_service_token", lambda: open(DATA_DIR + "/hub/service-token").read())
probe("hub_database", lambda: open(DATA_DIR + "/hub/jupyterhub.sqlite", "rb").read(16))
probe("ipv6_loopback", lambda: socket.create_connection(("::1", TAPHOUSE_PORT), timeout=3))
probe("homes", lambda: os.listdir(DATA_DIR + "/compute/homes"))
def server_process():
    # The server's process (its environment holds its hub API token) is invisible.
    procs = [p for p in os.listdir("/proc") if p.isdigit()]
    seen = [p for p in procs if b"singleuser" in open(f"/proc/{p}/cmdline", "rb").read()]
    if seen or len(procs) > 20:
        return
    raise LookupError(f"only the kernel's own processes: {procs}")
probe("server_process", server_process)
probe("write_usr", lambda: open("/usr/taphouse-probe", "w"))
print(json.dumps(found))
"""


def test_kernel_reaches_neither_network_nor_data_dir(platform, running):
    _name, _browser, _server, kernel = running
    settings = platform.server.platform.settings
    code = (ESCAPES.replace("TAPHOUSE_PORT", str(settings.port))
            .replace("HUB_PORT", str(settings.hub_port))
            .replace("DATA_DIR", json.dumps(str(settings.data_dir.resolve()))))
    found = kernel.value(code)
    escaped = {k: v for k, v in found.items() if v == "ESCAPED"}
    assert not escaped, found


def test_no_terminals(platform, running):
    _name, _browser, server, _kernel = running
    assert server.http.post(f"{server.prefix}/api/terminals").status_code == 404
    assert server.http.get(f"{server.prefix}/api/terminals").status_code == 404
    assert server.http.get(f"{server.prefix}/terminals/1").status_code in (404, 302)


def test_contents_api_stays_in_the_home(platform, running):
    _name, _browser, server, kernel = running
    kernel.value(textwrap.dedent("""
        import json, os
        for link, target in [("passwd_link", "/etc/passwd"), ("root_link", "/"),
                             ("env_link", "/proc/self/environ"), ("up_link", "..")]:
            if not os.path.lexists(link):
                os.symlink(target, link)
        open("mine.txt", "w").write("mine")
        print(json.dumps(True))
    """))
    api = f"{server.prefix}/api/contents"
    assert server.http.get(f"{api}/mine.txt").json()["content"] == "mine"
    for path in ("passwd_link", "root_link/etc/passwd", "env_link", "up_link",
                 "../../etc/passwd", "%2E%2E/%2E%2E/etc/passwd", "root_link"):
        r = server.http.get(f"{api}/{path}")
        assert r.status_code in (400, 404), (path, r.status_code, r.text[:200])
        assert "root:x:" not in r.text
        r = server.http.get(f"{server.prefix}/files/{path}")
        # "../.." is resolved by the client: the hub then sends it to another user's URL.
        elsewhere = (r.status_code == 302
                     and not r.headers["location"].startswith(server.prefix + "/"))
        assert r.status_code in (400, 403, 404) or elsewhere, (path, r.status_code,
                                                               r.text[:200])
        assert "root:x:" not in r.text
    # Copying from outside (the copy_from of the contents API) is refused too.
    for source in ("root_link/etc/passwd", "../../etc/passwd", "/etc/passwd", "passwd_link"):
        r = server.http.post(api, json={"copy_from": source})
        assert r.status_code in (400, 404), (source, r.status_code, r.text[:200])
    # Writing through a link is refused as well; the listing works and hides the links.
    r = server.http.put(f"{api}/root_link/tmp/x.txt",
                        json={"type": "file", "format": "text", "content": "x"})
    assert r.status_code in (400, 404)
    listing = server.http.get(api)
    assert listing.status_code == 200
    names = {e["name"] for e in listing.json()["content"]}
    assert "mine.txt" in names and not names & {"passwd_link", "root_link", "env_link"}
    # The example notebooks were copied into the new home.
    assert "hipparcos_gaia_crossmatch.ipynb" in names


def test_another_users_server_is_not_reachable(platform, running, hub_user):
    owner, _browser, server, _kernel = running
    _other, other_browser, other = hub_user
    # With the other user's API token, and with their browser cookies.
    for http in (other.http, other_browser):
        for url in (f"/user/{owner}/api/contents", f"/user/{owner}/api/kernels",
                    f"/hub/api/users/{owner}"):
            r = http.get(url)
            assert r.status_code in (302, 403, 404), (url, r.status_code)
            assert r.status_code == 302 or "hipparcos" not in r.text
        r = http.post(f"/hub/api/users/{owner}/server")
        assert r.status_code in (403, 404)
        r = http.delete(f"/hub/api/users/{owner}/server")
        assert r.status_code in (403, 404)
    # The owner's server works all along.
    assert server.http.get(f"{server.prefix}/api/contents").status_code == 200


def test_the_server_runs_nothing_for_the_user(running):
    """The server shares the host's network: JupyterLab must not pip-install or build
    extensions for the user (pip and npm would fetch and run code with that network)."""
    _name, _browser, server, _kernel = running
    lab = f"{server.prefix}/lab/api"
    r = server.http.post(f"{lab}/extensions",
                         json={"cmd": "install", "extension_name": "jupyterlab-spellchecker"})
    assert r.status_code >= 400 and "blocked" in r.text, (r.status_code, r.text[:300])
    page = server.http.get(f"{server.prefix}/lab")
    assert page.status_code == 200
    assert '"can_install": false' in page.text
    assert server.http.post(f"{lab}/build", json={}).status_code >= 400


def test_nbconvert_ignores_templates_planted_in_the_home(running):
    """nbconvert reads Jinja templates (code, for Jinja) from the working directory: a
    kernel's file in the home must never be rendered by the server."""
    _name, _browser, server, kernel = running
    kernel.value(textwrap.dedent("""
        import json, os
        for d in ("lab", "classic", "basic"):
            os.makedirs(d, exist_ok=True)
            open(f"{d}/index.html.j2", "w").write("PLANTED-TEMPLATE {{ 6 * 7 }}")
            open(f"{d}/conf.json", "w").write('{"base_template": "planted"}')
        print(json.dumps(True))
    """))
    r = server.http.get(f"{server.prefix}/nbconvert/html/compute_job.ipynb",
                        params={"download": "false"})
    assert r.status_code == 200, r.text[:300]
    assert "compute_job" in r.text and "PLANTED" not in r.text


@pytest.mark.parametrize("notebook", ["hipparcos_gaia_crossmatch.ipynb", "compute_job.ipynb"])
def test_example_notebooks_run_in_the_hub(platform, running, notebook):
    """The example notebooks, as copied into the home, run cell by cell in the sandboxed
    kernel: the crossmatch keeps its result in mydb; the compute job runs beside it."""
    name, _browser, server, kernel = running
    r = server.http.get(f"{server.prefix}/api/contents/{notebook}")
    assert r.status_code == 200, r.text[:300]
    cells = [c for c in r.json()["content"]["cells"] if c["cell_type"] == "code"]
    assert cells
    for cell in cells:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        _out, error = kernel.run(source, timeout=600)
        assert error is None, (source[:200], error["ename"], error["evalue"],
                               "\n".join(error.get("traceback", []))[-2000:])
    table = "hip_gaia" if notebook.startswith("hipparcos") else "red_stars"
    with _client(platform, name) as client:
        assert client.mydb.describe(table).nrows > 0


NOTEBOOK_TOKEN_LIMITS = """
import http.client, json, os, socket

class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(os.environ["TAPHOUSE_SOCKET"])

def call(method, path, body=None, **headers):
    conn = Unix("taphouse", timeout=30)
    headers = {"Authorization": "Bearer " + os.environ["TAPHOUSE_TOKEN"],
               "Content-Type": "application/json", **headers}
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers=headers)
    r = conn.getresponse()
    r.read()
    return r.status

name = os.environ["USER"]
print(json.dumps({
    "whoami": call("GET", "/auth/whoami"),
    "mint": call("POST", "/api/hub/notebook-tokens", {}),
    "mint_guessed_hub": call("POST", "/api/hub/notebook-tokens", {},
                             **{"X-Taphouse-Hub": "guessed"}),
    "account": call("GET", "/api/hub/accounts/" + name),
    "revoke_all": call("POST", "/api/hub/notebook-tokens/revoke-all", {}),
    "personal_token": call("POST", "/auth/tokens", {"name": "stolen"}),
    "password": call("POST", "/auth/password", {"old_password": "x", "new_password": "y" * 16}),
    "admin_users": call("GET", "/api/admin/users"),
    "admin_disable": call("POST", "/api/admin/users/" + name + "/disable", {}),
}))
"""


def test_the_notebook_token_reaches_only_the_users_own_api(running):
    """A notebook token (the kernel's, or one stolen from it) works for the user's data
    through the socket, but never for the hub's API, new tokens, the password or the
    operator API."""
    _name, _browser, _server, kernel = running
    got = kernel.value(NOTEBOOK_TOKEN_LIMITS)
    assert got.pop("whoami") == 200
    assert all(status in (401, 403) for status in got.values()), got


def test_a_kernel_restarts_in_a_fresh_sandbox(running):
    """Restarting reuses the kernel's directory (the kernel's own, so nothing in it is
    trusted): the new kernel starts, in a new sandbox with an empty /tmp."""
    _name, _browser, server, _kernel = running
    kernel = server.new_kernel()
    try:
        assert kernel.value("import json; open('/tmp/mark', 'w').write('x');"
                            " print(json.dumps(1))") == 1
        r = server.http.post(f"{server.prefix}/api/kernels/{kernel.id}/restart")
        assert r.status_code == 200, r.text[:300]
        kernel.close()
        kernel = Kernel(server, kernel.id)
        assert kernel.value("import json, os; print(json.dumps(os.path.exists('/tmp/mark')))"
                            ) is False
    finally:
        kernel.close()
        server.http.delete(f"{server.prefix}/api/kernels/{kernel.id}")
