"""Registering remotes through the operator API and the CLI of a real platform server,
and how users see them (/api/remotes): a second real taphouse is the remote."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from remote_helpers import LOOPBACK, PASSWORD, REMOTE_MAXREC_HARD, api, registering_platform

from servers import free_port


@pytest.fixture
def platform(start_server) -> Any:  # noqa: ANN001
    server = registering_platform(start_server)
    server.platform.catalogue.create_database("localdb", "a local database")
    return server


def test_admin_registers_lists_refreshes_and_removes(platform, remote_server) -> None:  # noqa: ANN001
    with api(platform, "root") as admin:
        r = admin.post("/api/admin/remotes", json={"name": "far", "url": remote_server.tap})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["name"] == "far" and body["state"] == "ok" and body["tables"] >= 2
        assert body["capabilities"]["maxrec_hard"] == REMOTE_MAXREC_HARD
        assert "2.1" in body["capabilities"]["adql_versions"]
        assert body["created_by"] == "root" and body["auth"] == "none"

        listed = admin.get("/api/admin/remotes").json()["remotes"]
        assert [r["name"] for r in listed] == ["far"]

        detail = admin.get("/api/admin/remotes/far").json()
        tables = {t["name"]: t for t in detail["tables"]}
        hip = tables["far.hipparcos.hip2"]
        assert hip["schema"] == "far.hipparcos"
        ra = next(c for c in hip["columns"] if c["name"] == "ra")
        assert ra["unit"] == "deg" and ra["ucd"].startswith("pos.eq.ra")
        assert hip["description"]

        before = detail["checked_at"]
        r = admin.post("/api/admin/remotes/far/refresh")
        assert r.status_code == 200 and r.json()["state"] == "ok"
        assert r.json()["checked_at"] >= before

        assert admin.delete("/api/admin/remotes/far").json() == {"removed": "far"}
        assert admin.get("/api/admin/remotes").json()["remotes"] == []
        assert admin.get("/api/admin/remotes/far").status_code == 404
        # The audit log has both changes.
        events = [e["detail"] for e in admin.get("/api/admin/audit",
                                                 params={"event": "admin"}).json()["entries"]]
        assert any("remote far registered" in (d or "") for d in events)
        assert any("remote far removed" in (d or "") for d in events)


@pytest.mark.parametrize(("payload", "status", "message"), [
    ({"name": "tap_schema"}, 400, "reserved"),
    ({"name": "ivoa"}, 400, "reserved"),
    ({"name": "mydb"}, 400, "reserved"),
    ({"name": "user_alice"}, 400, "reserved"),
    ({"name": "localdb"}, 400, "is a local database"),
    ({"name": "Far"}, 400, "bad remote name"),
    ({"name": "inner"}, 400, "ADQL reserved word"),
    ({"name": "far; drop"}, 400, "bad remote name"),
    ({"url": "ftp://127.0.0.1/tap"}, 400, "not an http(s) URL"),
    ({"url": "http://u:p@127.0.0.1/tap"}, 400, "no credentials in the URL"),
    ({"auth": "basic"}, 400, "--auth basic needs a user name"),
    ({"auth": "bearer", "token": "t0ken", "groups": []}, 400, "must name the groups"),
    ({"auth": "none", "password": "pw"}, 400, "credentials were given but --auth is 'none'"),
    ({"auth": "bearer", "token": "abc\r\nX-Evil: 1", "groups": ["g"]}, 400,
     "not a valid bearer token"),
    ({"auth": "kerberos"}, 400, "--auth must be one of"),
    ({"colour": "red"}, 400, "unknown field 'colour'"),
    ({"groups": "survey"}, 400, "field 'groups' has the wrong type"),
    ({"timeout": True}, 400, "field 'timeout' has the wrong type"),
])
def test_bad_registrations_are_clear_errors(platform, remote_server, payload: dict,  # noqa: ANN001
                                            status: int, message: str) -> None:
    with api(platform, "root") as admin:
        r = admin.post("/api/admin/remotes", json={"name": "far", "url": remote_server.tap}
                       | payload)
        assert r.status_code == status and message in r.json()["error"], r.text
        assert admin.get("/api/admin/remotes").json()["remotes"] == []


def test_unreachable_duplicate_and_not_tap(platform, remote_server) -> None:  # noqa: ANN001
    with api(platform, "root") as admin:
        nowhere = f"http://127.0.0.1:{free_port()}/tap"
        r = admin.post("/api/admin/remotes", json={"name": "gone", "url": nowhere})
        assert r.status_code == 400
        assert "cannot register 'gone'" in r.json()["error"]
        assert "Connection refused" in r.json()["error"]
        # The platform's own API is no TAP service.
        r = admin.post("/api/admin/remotes", json={"name": "api",
                                                   "url": remote_server.url + "/api"})
        assert r.status_code == 400 and "GET capabilities answered HTTP" in r.json()["error"]
        assert admin.post("/api/admin/remotes", json={
            "name": "far", "url": remote_server.tap}).status_code == 201
        r = admin.post("/api/admin/remotes", json={"name": "far", "url": remote_server.tap})
        assert r.status_code == 400 and "already registered" in r.json()["error"]


def test_loopback_needs_the_allow_list(start_server, remote_server) -> None:  # noqa: ANN001
    server = start_server()  # no TAPHOUSE_OUTBOUND_ALLOW
    server.platform.authenticator.accounts.add_user("root", PASSWORD, is_admin=True)
    with api(server, "root") as admin:
        r = admin.post("/api/admin/remotes", json={"name": "far", "url": remote_server.tap})
    assert r.status_code == 400
    assert "non-public address" in r.json()["error"]
    assert "TAPHOUSE_OUTBOUND_ALLOW" in r.json()["error"]


def test_operator_api_needs_an_administrator(platform) -> None:  # noqa: ANN001
    assert httpx.get(platform.url + "/api/admin/remotes").status_code == 401
    with api(platform, "alice") as alice:
        r = alice.post("/api/admin/remotes", json={"name": "x", "url": "http://e.org/tap"})
        assert r.status_code == 403


def test_users_see_remotes_by_group_and_their_own(platform, remote_server) -> None:  # noqa: ANN001
    auth = platform.platform.authenticator
    auth.accounts.add_group("survey")
    auth.accounts.add_member("survey", "alice")
    with api(platform, "root") as admin:
        assert admin.post("/api/admin/remotes", json={
            "name": "pub", "url": remote_server.tap}).status_code == 201
        assert admin.post("/api/admin/remotes", json={
            "name": "vault", "url": remote_server.tap, "groups": ["survey"]}
        ).status_code == 201
    anonymous = httpx.get(platform.url + "/api/remotes").json()
    assert [r["name"] for r in anonymous["remotes"]] == ["pub"]
    assert "auth" not in anonymous["remotes"][0] and "groups" not in anonymous["remotes"][0]
    with api(platform, "alice") as alice, api(platform, "bob") as bob:
        assert [r["name"] for r in alice.get("/api/remotes").json()["remotes"]] == [
            "pub", "vault"]
        assert [r["name"] for r in bob.get("/api/remotes").json()["remotes"]] == ["pub"]
        assert bob.get("/api/remotes/vault").status_code == 404
        tables = alice.get("/api/remotes/vault").json()["tables"]
        assert "vault.hipparcos.hip2" in {t["name"] for t in tables}

        # Users register their own (the setting is on): invisible to others.
        r = bob.post("/api/remotes", json={"name": "mine", "url": remote_server.tap})
        assert r.status_code == 201 and r.json()["own"] is True
        assert "mine" in [x["name"] for x in bob.get("/api/remotes").json()["remotes"]]
        assert "mine" not in [x["name"] for x in alice.get("/api/remotes").json()["remotes"]]
        assert alice.get("/api/remotes/mine").status_code == 404
        assert alice.delete("/api/remotes/mine").status_code == 404
        # ... and may not take the operator's names.
        r = alice.post("/api/remotes", json={"name": "pub", "url": remote_server.tap})
        assert r.status_code == 400 and "already registered" in r.json()["error"]
        assert bob.post("/api/remotes/mine/refresh").status_code == 200
        assert bob.delete("/api/remotes/mine").json() == {"removed": "mine"}


def test_user_registration_is_off_by_default(start_server, remote_server) -> None:  # noqa: ANN001
    server = start_server(outbound_allow=LOOPBACK)
    server.platform.authenticator.accounts.add_user("carol", PASSWORD)
    with api(server, "carol") as carol:
        r = carol.post("/api/remotes", json={"name": "mine", "url": remote_server.tap})
    assert r.status_code == 403 and "TAPHOUSE_REMOTE_USER_REGISTRATION" in r.json()["error"]
    assert httpx.get(server.url + "/api/remotes").json()["user_registration"] is False


def test_cli_add_list_show_refresh_remove(tmp_path, remote_server, monkeypatch, capsys  # noqa: ANN001
                                          ) -> None:
    from taphouse.cli import main

    monkeypatch.setenv("TAPHOUSE_OUTBOUND_ALLOW", ",".join(LOOPBACK))
    data = ["--data-dir", str(tmp_path / "data")]
    # the first command makes the store (--init), as an operator would
    assert main([*data, "--init", "remote", "add", "far", remote_server.tap]) == 0
    assert "query them as far.<schema>.<table>" in capsys.readouterr().out
    assert main([*data, "remote", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "far" and listed["state"] == "ok"
    assert main([*data, "remote", "show", "far"]) == 0
    out = capsys.readouterr().out
    assert "far.hipparcos.hip2" in out and f"hard limit {REMOTE_MAXREC_HARD}" in out
    assert main([*data, "remote", "refresh"]) == 0
    assert main([*data, "remote", "add", "far", remote_server.tap]) == 1
    assert "already registered" in capsys.readouterr().err
    assert main([*data, "remote", "add", "hipparcos2", "gopher://x"]) == 1
    assert "not an http(s) URL" in capsys.readouterr().err
    assert main([*data, "remote", "remove", "far"]) == 0
    assert main([*data, "remote", "remove", "far"]) == 1
    assert "no remote named 'far'" in capsys.readouterr().err


def test_the_operator_takes_back_a_name_a_user_holds(platform, remote_server, capsys  # noqa: ANN001
                                                     ) -> None:
    # A user who registered a name first for themselves blocked the operator's remote
    # of that name ("already registered") with no way for the operator to see or free it.
    with api(platform, "root") as admin, api(platform, "bob") as bob:
        for name in ("gaia2", "mirror"):
            assert bob.post("/api/remotes", json={
                "name": name, "url": remote_server.tap}).status_code == 201
        r = admin.post("/api/admin/remotes", json={"name": "gaia2", "url": remote_server.tap})
        assert r.status_code == 400, r.text
        assert "registered by the user 'bob' for themselves" in r.json()["error"]
        assert "taphouse remote remove gaia2 --owner bob" in r.json()["error"]
        assert admin.delete("/api/admin/remotes/gaia2").status_code == 404  # not the operator's
        assert admin.delete("/api/admin/remotes/gaia2?owner=nobody").status_code == 404
        r = admin.delete("/api/admin/remotes/gaia2?owner=bob")
        assert r.json() == {"removed": "gaia2", "owner": "bob"}
        assert admin.post("/api/admin/remotes", json={
            "name": "gaia2", "url": remote_server.tap}).status_code == 201
        mine = [(x["name"], x["own"]) for x in bob.get("/api/remotes").json()["remotes"]]
        assert ("gaia2", False) in mine and ("gaia2", True) not in mine
        events = [e["detail"] for e in admin.get("/api/admin/audit",
                                                 params={"event": "admin"}).json()["entries"]]
        assert "remote gaia2 of user bob removed" in events
    from taphouse.cli import main

    data = ["--data-dir", str(platform.data_dir)]
    assert main([*data, "remote", "remove", "mirror", "--owner", "bob"]) == 0
    assert "remote mirror of user bob removed" in capsys.readouterr().out
    assert main([*data, "remote", "remove", "mirror", "--owner", "bob"]) == 1
    assert "no remote named 'mirror'" in capsys.readouterr().err
