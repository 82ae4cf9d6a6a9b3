"""The client as a new user meets it: a lost login never turns into silent anonymous
access, what upload/rename return prints, personal tokens (client and ``taphouse token``),
the job listing (newest first, with the ADQL text) and shared tables by their full name."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from astropy.table import Table

import taphouse
from accounts import PASSWORD
from taphouse.client import AuthError, ClientError
from taphouse.client.models import PersonalToken


def _expire_everything(server) -> None:
    server.platform.authenticator.clock = lambda: time.time() + 10 * 24 * 3600


def test_a_lost_login_keeps_raising_until_login_or_explicit_anonymous(start_server, make_user):
    server = start_server(token_lifetime=60.0, demo=False)
    name = make_user(server)
    c = taphouse.connect(server.url, interactive=False, progress=False).login(name, PASSWORD)
    assert c.databases() is not None
    _expire_everything(server)
    with pytest.raises(AuthError, match="log in again"):
        c.whoami()
    assert not c.logged_in
    # Before the fix, from here on every call ran silently as anonymous.
    for call in (c.whoami, c.databases, lambda: c.query("SELECT TOP 1 * FROM TAP_SCHEMA.schemas")):
        with pytest.raises(AuthError, match="use_anonymous"):
            call()
    assert "login lost" in repr(c)
    server.platform.authenticator.clock = time.time
    c.login(name, PASSWORD)
    assert c.whoami()["username"] == name
    _expire_everything(server)
    with pytest.raises(AuthError):
        c.databases()
    c.use_anonymous()  # the user's explicit choice
    assert not c.logged_in
    assert isinstance(c.databases(), list)
    assert c.jobs() == []


def test_a_lost_login_asks_again_when_a_person_can_answer(start_server, make_user):
    server = start_server(token_lifetime=60.0)
    name = make_user(server)
    asked: list[str] = []
    c = taphouse.connect(server.url, interactive=False, progress=False).login(name, PASSWORD)
    _expire_everything(server)
    with pytest.raises(AuthError):
        c.whoami()
    server.platform.authenticator.clock = time.time
    c.auth.interactive = True
    c.auth.prompt = lambda text: asked.append(text) or PASSWORD
    assert c.whoami()["username"] == name
    assert len(asked) == 1 and c.logged_in


def test_upload_and_rename_results_print(client):
    made = client.mydb.upload("printable", Table({"x": [1, 2], "y": [0.5, 1.5]}))
    text = repr(made)
    assert "printable" in text and "x" in text and "y" in text
    assert "printable" in made._repr_html_()
    assert all(type(c).__name__ == "Column" for c in made.columns)
    renamed = client.mydb.rename("printable", "printed")
    assert "printed" in repr(renamed) and "printed" in renamed._repr_html_()
    assert "printed" in repr(client.table("mydb.printed"))


def test_personal_tokens_from_the_client(demo_server, client):
    made = client.create_token("nightly", ["read"], expires=7)
    assert isinstance(made, PersonalToken) and made.token and made.scopes == ["read"]
    assert made.token not in repr(made) and made.token not in made._repr_html_()
    listed = client.tokens()
    assert "nightly" in [t.name for t in listed]
    assert made.token not in repr(listed)
    script = taphouse.connect(demo_server.url, token=made.token, progress=False)
    assert script.whoami()["username"] == client.username
    assert len(script.query("SELECT TOP 2 hip FROM hipparcos.hip2")) == 2
    with pytest.raises(ClientError):  # read scope only: no writes
        script.mydb.upload("nope", Table({"x": [1]}))
    with pytest.raises(AuthError):  # a personal token cannot make tokens
        script.create_token("more")
    client.revoke_token(made)
    with pytest.raises(AuthError):
        script.whoami()
    forever = client.create_token("forever", "read write", expires=None)
    assert forever.expires_at is None
    client.revoke_token(forever.id)


def _cli(*args: str, stdin: str = "", env: dict | None = None,
         cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "taphouse.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, **(env or {})})


def test_taphouse_token_talks_http_and_opens_no_data_directory(demo_server, new_user, tmp_path):
    name = new_user()
    made = _cli("token", "--url", demo_server.url, "--user", name, "--password-stdin",
                "create", "ci-job", "--scopes", "read", "--expires-days", "2",
                stdin=PASSWORD + "\n", cwd=str(tmp_path))
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret and "TAPHOUSE_TOKEN" in made.stderr
    assert not (tmp_path / "taphouse-data").exists()  # no data directory was made
    c = taphouse.connect(demo_server.url, token=secret, progress=False)
    assert c.whoami()["username"] == name
    listed = _cli("token", "--url", demo_server.url, "--user", name, "--password-stdin",
                  "list", stdin=PASSWORD + "\n", cwd=str(tmp_path))
    assert listed.returncode == 0 and "ci-job" in listed.stdout and secret not in listed.stdout
    token_id = next(t.id for t in c.tokens() if t.name == "ci-job")
    revoked = _cli("token", "--url", demo_server.url, "--user", name, "--password-stdin",
                   "revoke", str(token_id), stdin=PASSWORD + "\n", cwd=str(tmp_path))
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(AuthError):
        c.whoami()
    wrong = _cli("token", "--url", demo_server.url, "--user", name, "--password-stdin",
                 "list", stdin="wrong password\n", cwd=str(tmp_path))
    assert wrong.returncode == 2 and "taphouse: error:" in wrong.stderr
    nourl = _cli("token", "list", env={"TAPHOUSE_URL": ""}, cwd=str(tmp_path))
    assert nourl.returncode == 2 and "--url" in nourl.stderr


def test_jobs_newest_first_with_the_query_text(client):
    queries = [f"SELECT TOP {n} hip FROM hipparcos.hip2" for n in (1, 2, 3)]
    ids = [client.query(q).meta["job_id"] for q in queries]
    listed = client.jobs()
    assert listed.names()[:3] == ids[::-1]
    assert [j.query for j in listed][:3] == queries[::-1]
    assert [j.rows for j in listed][:3] == [3, 2, 1]
    assert listed.names()[:2] == client.jobs(last=2).names()
    assert queries[2] in repr(listed)
    # The text came with the listing: no job document was fetched for it.
    assert all(not hasattr(j._summary, "parameters") for j in listed)
    assert [j.id for j in client.jobs(phase="COMPLETED")][:1] == [ids[2]]


def test_download_a_table_shared_with_you_by_its_full_name(demo_server, client, new_user):
    client.mydb.upload("t", Table({"x": [1, 2, 3]}))
    owner_schema = f"user_{client.username}"
    bob_name = new_user("b")
    bob = taphouse.connect(demo_server.url, interactive=False, progress=False)
    bob.login(bob_name, PASSWORD)
    bob.mydb.upload("t", Table({"x": [9]}))  # bob's own t must not answer instead
    with pytest.raises(ClientError, match="not yours and not shared"):
        bob.mydb.download(f"{owner_schema}.t")
    client.mydb.share("t", users=[bob_name])
    got = bob.mydb.download(f"{owner_schema}.t")
    assert sorted(got["x"]) == [1, 2, 3]
    assert bob.mydb.describe(f"{owner_schema}.t").nrows == 3
    assert bob.table(f"{owner_schema}.t").nrows == 3
    assert list(bob.mydb.download("t")["x"]) == [9]
    assert list(bob.mydb.download("mydb.t")["x"]) == [9]
    client.mydb.share("t")
    with pytest.raises(ClientError):
        bob.mydb.download(f"{owner_schema}.t")
