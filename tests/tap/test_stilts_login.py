"""TOPCAT's way in, tested with the real ``stilts`` (Debian 3.4.x): Java sends
credentials (``-Dstar.basicauth.user/password``) only after a 401 challenge, and cannot
resend a streamed upload after one.

- the main service never challenges while anonymous reading is on, so its login endpoint
  ``/tap/auth`` (advertised in the capabilities) always does;
- uploads: with ``interface=cap`` STILTS first reads ``<base>/auth/capabilities``, which
  is challenged, and Java then sends the credentials with every request below
  ``<base>/auth/`` before the streamed body;
- capabilities and availability of every endpoint are public and the same for any
  workspace path, existing or not.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from accounts import PASSWORD
from servers import start_live
from taphouse.auth.database_access import DatabaseAccess
from taphouse.catalogue.ingest import ingest_files


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stilts-login")
    server = start_live(tmp / "data")
    src = tmp / "stars.csv"
    src.write_text("ra,dec,mag\n10.0,20.0,5.5\n11.0,-5.0,6.1\n")
    p = server.platform
    ingest_files(p.catalogue, [src], "pubcat", "stars")
    ingest_files(p.catalogue, [src], "secret_cat", "hidden_stars")
    p.authenticator.accounts.add_group("team")
    p.authenticator.accounts.add_user("astro", PASSWORD, groups=["team"])
    p.authenticator.accounts.add_user("other", PASSWORD)
    DatabaseAccess(p.meta, p.catalogue).restrict("secret_cat", ["team"])
    with httpx.Client(base_url=server.url, auth=("astro", PASSWORD),
                      headers={"X-Taphouse": "tests"}) as c:
        r = c.post("/tap/sync", data={"LANG": "ADQL", "DEST": "mydb.mine",
                                      "QUERY": "SELECT ra, dec, mag FROM pubcat.stars"})
        assert r.status_code == 200, r.text
        assert c.post("/api/workspaces", json={"name": "w1", "databases": ["pubcat"]}
                      ).status_code == 201
    upload = tmp / "up.csv"
    upload.write_text("id,ra,dec\n1,10.0,20.0\n2,11.0,-5.0\n3,50.0,50.0\n")
    yield server, upload
    server.stop()


def stilts(*args: str, user: str | None = "astro") -> subprocess.CompletedProcess:
    exe = shutil.which("stilts")
    assert exe, "stilts is not installed (Debian package 'stilts'); scripts/test.sh does it"
    creds = [f"-Dstar.basicauth.user={user}", f"-Dstar.basicauth.password={PASSWORD}"]
    cmd = [exe, *(creds if user else []), "tapquery", *args, "ofmt=csv", "out=-"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def upload_args(path: Path) -> list[str]:
    return ["nupload=1", f"upload1={path}", "ufmt1=csv", "upname1=up"]


def test_anonymous_unknown_table_says_how_to_log_in(site):
    server, _ = site
    proc = stilts(f"tapurl={server.tap}", "adql=SELECT * FROM mydb.mine", user=None)
    assert proc.returncode != 0
    assert "unknown table mydb.mine" in proc.stderr
    assert f"{server.url}/tap/auth" in proc.stderr


@pytest.mark.slow
def test_login_endpoint_reaches_mydb_and_restricted_databases(site):
    server, _ = site
    proc = stilts(f"tapurl={server.tap}/auth", "sync=true",
                  "adql=SELECT m.mag, s.mag AS secret FROM mydb.mine AS m"
                  " JOIN secret_cat.hidden_stars AS s ON s.ra = m.ra ORDER BY m.mag")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["mag,secret", "5.5,5.5", "6.1,6.1"]
    # the same user through the anonymous endpoint: no challenge, so no login
    proc = stilts(f"tapurl={server.tap}", "adql=SELECT * FROM secret_cat.hidden_stars")
    assert proc.returncode != 0 and "/tap/auth" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sync", ["true", "false"])
def test_uploads_through_the_login_endpoint(site, sync):
    server, upload = site
    proc = stilts(f"tapurl={server.tap}/auth", "interface=cap", f"sync={sync}",
                  *upload_args(upload),
                  "adql=SELECT u.id, m.mag FROM TAP_UPLOAD.up AS u"
                  " JOIN mydb.mine AS m ON m.ra = u.ra ORDER BY u.id")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["id,mag", "1,5.5", "2,6.1"]


@pytest.mark.slow
@pytest.mark.parametrize("sync", ["true", "false"])
def test_uploads_to_a_workspace(site, sync):
    server, upload = site
    ws = f"{server.url}/ws/astro/w1/tap"
    proc = stilts(f"tapurl={ws}/auth", "interface=cap", f"sync={sync}",
                  *upload_args(upload),
                  "adql=SELECT u.id, s.mag FROM TAP_UPLOAD.up AS u"
                  " JOIN stars AS s ON s.ra = u.ra ORDER BY u.id")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["id,mag", "1,5.5", "2,6.1"]
    # another user's credentials: the workspace does not exist for them
    proc = stilts(f"tapurl={ws}/auth", "interface=cap", f"sync={sync}",
                  *upload_args(upload), "adql=SELECT * FROM TAP_UPLOAD.up", user="other")
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0 and ("no workspace" in out or "404" in out), out


def _same_document(a: httpx.Response, b: httpx.Response, url_a: str, url_b: str) -> None:
    assert a.status_code == b.status_code == 200
    assert a.text.replace(url_a, "U") == b.text.replace(url_b, "U")
    assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate")


def test_capabilities_and_availability_are_public_everywhere(site):
    server, _ = site
    real = f"{server.url}/ws/astro/w1/tap"
    fake = f"{server.url}/ws/nobody/nothing/tap"
    for auth in (None, ("other", PASSWORD), ("astro", PASSWORD)):
        with httpx.Client(auth=auth) as c:
            for doc in ("capabilities", "availability"):
                a, b = c.get(f"{real}/{doc}"), c.get(f"{fake}/{doc}")
                _same_document(a, b, real, fake)
                assert c.head(f"{real}/{doc}").status_code == 200
    caps = httpx.get(f"{real}/capabilities")
    assert "Basic" in caps.headers["www-authenticate"]  # login possible (AuthVO)
    assert f"<accessURL use=\"base\">{real}/auth</accessURL>" in caps.text
    assert "ivo://ivoa.net/sso#BasicAA" in caps.text
    main = httpx.get(server.tap + "/capabilities")
    assert main.status_code == 200 and "Basic" in main.headers["www-authenticate"]
    assert f"<accessURL use=\"base\">{server.tap}/auth</accessURL>" in main.text
    # the login endpoints always challenge, their capabilities included
    for url in (f"{server.tap}/auth/capabilities", f"{real}/auth/capabilities",
                f"{fake}/auth/capabilities", f"{server.tap}/auth/tables"):
        r = httpx.get(url)
        assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"], url
    r = httpx.get(f"{server.tap}/auth/capabilities", auth=("astro", PASSWORD))
    assert r.status_code == 200 and r.headers["x-vo-authenticated"] == "astro"
    # bad credentials are refused everywhere
    assert httpx.get(f"{real}/capabilities", auth=("astro", "wrong-password-1")
                     ).status_code == 401


def test_pyvo_auth_session_on_a_workspace(site):
    import pyvo
    from pyvo.auth import AuthSession

    server, _ = site
    session = AuthSession()
    session.credentials.set_password("astro", PASSWORD)
    ws = f"{server.url}/ws/astro/w1/tap"
    service = pyvo.dal.TAPService(ws, session=session)
    session.update_from_capabilities(service.capabilities)
    rows = service.search("SELECT mag FROM mydb.mine ORDER BY mag").to_table()
    assert list(rows["mag"]) == [5.5, 6.1]
