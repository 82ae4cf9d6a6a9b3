"""Remotes that need credentials: a second real taphouse that refuses anonymous callers,
registered with --auth basic|bearer. The credentials are stored sealed, sent only to the
remote, and never shown back: not by the APIs, the CLI, the logs, the metadata file, nor
in error messages (even when the remote echoes them)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_tap import VOT, FakeTap, error_document
from remote_helpers import LOOPBACK, api, registering_platform

from servers import LiveServer, start_live
from taphouse.auth.identity import Identity
from taphouse.remotes.credentials import authorization
from taphouse.remotes.errors import RemoteError
from taphouse.secrets import SecretBox, SecretStore, generate_key

SVC_PASSWORD = "svc-Pa55-w0rd-on-the-remote"  # the remote's account for the platform


@pytest.fixture(scope="module")
def locked(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[LiveServer]:
    """A taphouse that answers nobody without credentials (account 'svc')."""
    data = tmp_path_factory.mktemp("locked") / "data"
    shutil.copytree(demo_data_dir, data, symlinks=True)
    server = start_live(data, anonymous_read=False)
    server.platform.authenticator.accounts.add_user("svc", SVC_PASSWORD)
    yield server
    server.stop()


def bearer_of(server: LiveServer) -> str:
    r = httpx.post(server.url + "/auth/token", timeout=60,
                   data={"username": "svc", "password": SVC_PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def last_caller(server: LiveServer) -> tuple[str, str]:
    entry = server.platform.authenticator.audit_log.entries(event="query", limit=1)[0]
    return entry["username"], entry["detail"]



@pytest.fixture
def platform(start_server) -> Any:  # noqa: ANN001
    server = registering_platform(start_server)
    accounts = server.platform.authenticator.accounts
    accounts.add_group("survey")
    accounts.add_member("survey", "alice")
    return server


def everything_readable(data_dir: Path) -> str:
    """Every file of a data directory except the key file, as text."""
    out = []
    for f in data_dir.rglob("*"):
        if f.is_file() and f.name != "secret-keys":
            out.append(f.read_bytes().decode("latin-1"))
    return "\n".join(out)


def test_basic_credentials_end_to_end_through_the_platform(platform, locked,  # noqa: ANN001
                                                            caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    with api(platform, "root") as admin:
        # Without credentials the locked remote refuses to describe its tables.
        r = admin.post("/api/admin/remotes", json={"name": "sec", "url": locked.tap})
        assert r.status_code == 400 and "cannot register 'sec'" in r.json()["error"]
        assert "401" in r.json()["error"], r.text
        # A wrong password: a clear error, nothing stored.
        r = admin.post("/api/admin/remotes", json={
            "name": "sec", "url": locked.tap, "auth": "basic", "username": "svc",
            "password": "wrong-password", "groups": ["survey"]})
        assert r.status_code == 400 and "401" in r.json()["error"], r.text
        assert "wrong-password" not in r.text
        assert admin.get("/api/admin/remotes").json()["remotes"] == []

        r = admin.post("/api/admin/remotes", json={
            "name": "sec", "url": locked.tap, "auth": "basic", "username": "svc",
            "password": SVC_PASSWORD, "groups": ["survey"]})
        assert r.status_code == 201, r.text
        assert r.json()["auth"] == "basic" and r.json()["tables"] >= 2
        shown = [r.text, admin.get("/api/admin/remotes").text,
                 admin.get("/api/admin/remotes/sec").text]
    with api(platform, "alice") as alice, api(platform, "bob") as bob:
        shown += [alice.get("/api/remotes").text, alice.get("/api/remotes/sec").text]
        q = {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv",
             "QUERY": "SELECT TOP 3 hip FROM sec.hipparcos.hip2 ORDER BY hip"}
        r = alice.post("/tap/sync", data=q)
        assert r.status_code == 200, r.text
        assert len(r.text.strip().splitlines()) == 4
        # The remote saw the platform's account, and the pushed-down ADQL.
        user, adql = last_caller(locked)
        assert user == "svc" and "TOP 3" in adql
        # Not in the group: the remote does not exist for bob.
        r = bob.post("/tap/sync", data=q)
        assert r.status_code == 400 and "sec" in r.text
        shown.append(r.text)
        explain = alice.post("/api/explain", json={"query": q["QUERY"]})
        assert explain.status_code == 200, explain.text
        shown.append(explain.text)
    for text in shown:
        assert SVC_PASSWORD not in text and "c3Zj" not in text  # base64 of "svc"
    assert SVC_PASSWORD not in caplog.text
    assert SVC_PASSWORD not in everything_readable(platform.data_dir)


def test_credentials_are_replaced_only_when_they_work(platform, locked) -> None:  # noqa: ANN001
    with api(platform, "root") as admin:
        assert admin.post("/api/admin/remotes", json={
            "name": "sec", "url": locked.tap, "auth": "bearer", "token": bearer_of(locked),
            "groups": ["survey"]}).status_code == 201
        r = admin.post("/api/admin/remotes/sec/credentials",
                       json={"auth": "bearer", "token": "thp_not-a-valid-token"})
        assert r.status_code == 400 and "do not work" in r.json()["error"], r.text
        assert "thp_not-a-valid-token" not in r.text
        assert admin.post("/api/admin/remotes/sec/refresh").status_code == 200  # old kept
        r = admin.post("/api/admin/remotes/sec/credentials", json={
            "auth": "basic", "username": "svc", "password": SVC_PASSWORD})
        assert r.status_code == 200 and r.json()["auth"] == "basic", r.text
        r = admin.post("/api/admin/remotes/sec/credentials", json={"password": 12345678})
        assert r.status_code == 400 and "12345678" not in r.text
        assert admin.delete("/api/admin/remotes/sec").status_code == 200
    # The sealed credential went with the remote.
    assert platform.platform.secrets.names() == []


def test_users_own_remote_with_a_token_is_theirs_alone(platform, locked) -> None:  # noqa: ANN001
    secret = bearer_of(locked)
    with api(platform, "bob") as bob, api(platform, "alice") as alice:
        r = bob.post("/api/remotes", json={"name": "mine", "url": locked.tap,
                                           "auth": "bearer", "token": secret})
        assert r.status_code == 201, r.text
        q = {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv",
             "QUERY": "SELECT COUNT(*) AS n FROM mine.hipparcos.hip2"}
        r = bob.post("/tap/sync", data=q)
        assert r.status_code == 200 and last_caller(locked)[0] == "svc", r.text
        assert alice.post("/tap/sync", data=q).status_code == 400
        assert secret not in bob.get("/api/remotes/mine").text


@pytest.mark.slow
def test_cli_bearer_from_stdin_rotation_and_nothing_printed(tmp_path, locked) -> None:  # noqa: ANN001
    import os

    secret = bearer_of(locked)
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPHOUSE_")}
    env["TAPHOUSE_OUTBOUND_ALLOW"] = ",".join(LOOPBACK)

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data),
                               *args], input=stdin, env=env, capture_output=True, text=True,
                              timeout=180)

    p = cli("--init", "remote", "add", "sec", locked.tap, "--auth", "bearer")
    assert p.returncode == 1 and "--auth bearer needs a token" in p.stderr
    p = cli("remote", "add", "sec", locked.tap, "--auth", "bearer", stdin=secret + "\n")
    assert p.returncode == 1 and "must name the groups" in p.stderr
    p = cli("remote", "add", "sec", locked.tap, "--auth", "bearer", "--groups",
            "survey", stdin=secret + "\n")
    assert p.returncode == 0, p.stderr
    outputs = [p.stdout, p.stderr]
    for args in (("remote", "list", "--json"), ("remote", "show", "sec"),
                 ("remote", "refresh", "sec"), ("secrets", "rotate", "--retire")):
        p = cli(*args)
        assert p.returncode == 0, (args, p.stderr)
        outputs += [p.stdout, p.stderr]
    assert "1 stored secrets re-encrypted" in "".join(outputs)
    assert json.loads(outputs[2])[0]["auth"] == "bearer"
    for out in outputs:
        assert secret not in out
    assert secret not in everything_readable(data)
    # After the rotation (old key retired) the remote still answers with its credentials.
    from taphouse.adql.translator import parse
    from taphouse.metadata import MetadataDB
    from taphouse.remotes import RemoteConfig, RemoteRegistry
    from taphouse.remotes.pushdown import plan_remote, run_remote
    from taphouse.settings import Settings

    settings = Settings(data_dir=data)
    meta = MetadataDB(settings.meta_path)
    registry = RemoteRegistry(meta, RemoteConfig(allow=LOOPBACK),
                              secrets=SecretStore.from_settings(meta, settings))
    plan = plan_remote(parse("SELECT TOP 2 hip FROM sec.hipparcos.hip2"),
                       Identity(is_admin=True), registry, maxrec=10)
    assert run_remote(plan, registry).rows == 2
    # A lost key file: a clear error for users, the detail only in the operator's log.
    (data / "secret-keys").write_text(generate_key() + "\n")
    registry.secrets = SecretStore.from_settings(meta, settings)
    with pytest.raises(RemoteError, match="stored credentials cannot be read on this"
                       " server") as err:
        run_remote(plan, registry)
    assert "secret-keys" not in err.value.message
    meta.close()


def _echoing(fake: FakeTap) -> None:
    """The fake remote quotes the Authorization header it received in its errors."""
    def sync(seen: Any) -> tuple[int, dict[str, str], bytes]:
        header = seen.headers.get("authorization", "")
        import base64

        decoded = ""
        if header.startswith("Basic "):
            decoded = base64.b64decode(header[6:]).decode()
        return 200, VOT, error_document(f"bad credentials {header} ({decoded})")

    fake.routes["/tap/sync"] = sync


@pytest.mark.parametrize("kind", ["basic", "bearer"])
def test_a_remote_echoing_the_credentials_does_not_show_them(
        registry, fake_tap, tmp_path, kind, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    from taphouse.adql.translator import parse
    from taphouse.metadata import MetadataDB
    from taphouse.remotes.pushdown import plan_remote, run_remote

    registry.secrets = SecretStore(MetadataDB(tmp_path / "meta.sqlite"),
                                   SecretBox([generate_key()]))
    credential = authorization("basic", username="svc", password=SVC_PASSWORD) \
        if kind == "basic" else authorization("bearer", token="Tok3n-value.abc")
    secret = SVC_PASSWORD if kind == "basic" else "Tok3n-value.abc"
    registry.add("echo", fake_tap.url, auth=kind, credential=credential, groups=("g",))
    assert fake_tap.seen[-1].headers["authorization"] == credential.reveal()
    _echoing(fake_tap)
    plan = plan_remote(parse("SELECT TOP 2 id FROM echo.cat.stars"), Identity(is_admin=True),
                       registry, maxrec=10)
    with pytest.raises(RemoteError, match="bad credentials") as err:
        run_remote(plan, registry)
    assert "********" in err.value.message
    assert secret not in err.value.message and credential.reveal() not in err.value.message
    assert secret not in str(err.value) and secret not in repr(err.value.args)
    assert secret not in caplog.text


def test_credentials_are_not_sent_over_plain_http(platform, fake_tap: FakeTap) -> None:  # noqa: ANN001
    # --auth basic|bearer with an http:// URL sent the password or token unencrypted with
    # every request. Over http only to a host the operator allows by name or address
    # (here 127.0.0.0/8; 'localhost' is a name the allow-list does not hold).
    plain = f"http://localhost:{fake_tap.port}/tap"
    token = {"auth": "bearer", "token": "t0ken-never-in-clear", "groups": ["survey"]}
    with api(platform, "root") as admin, api(platform, "alice") as alice:
        r = admin.post("/api/admin/remotes", json={"name": "plain", "url": plain} | token)
        assert r.status_code == 400 and "over plain http" in r.json()["error"], r.text
        assert "TAPHOUSE_OUTBOUND_ALLOW" in r.json()["error"]
        r = alice.post("/api/remotes", json={"name": "mine", "url": plain,
                                             "auth": "bearer", "token": "t0ken-never-in-clear"})
        assert r.status_code == 400 and "over plain http" in r.json()["error"], r.text
        assert fake_tap.seen == []  # refused before any request
        assert admin.post("/api/admin/remotes", json={"name": "plain", "url": plain,
                                                      "groups": ["survey"]}).status_code == 201
        r = admin.post("/api/admin/remotes/plain/credentials",
                       json={"auth": "bearer", "token": "t0ken-never-in-clear"})
        assert r.status_code == 400 and "over plain http" in r.json()["error"], r.text
        assert not any("authorization" in s.headers for s in fake_tap.seen)
        # An https URL passes this check (and fails here only because nothing answers).
        r = admin.post("/api/admin/remotes", json={"name": "sealed",
                                                   "url": "https://tap.invalid/tap"} | token)
        assert r.status_code == 400 and "over plain http" not in r.json()["error"], r.text
