"""Remotes users register for themselves (TAPHOUSE_REMOTE_USER_REGISTRATION): each
owner's registration and metadata are their own (two users may both call a remote
'mine'), usable in their own workspaces and invisible to everybody else; and a user
cannot fill the metadata store with remotes (a bounded number each)."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from fake_tap import FakeTap
from remote_helpers import api, registering_platform


@pytest.fixture
def platform(start_server) -> Any:  # noqa: ANN001
    return registering_platform(start_server)


def sync(client: httpx.Client, url: str, query: str) -> httpx.Response:
    return client.post(url + "/sync", data={"LANG": "ADQL", "FORMAT": "csv",
                                            "QUERY": query})


def workspace_tables(client: httpx.Client, name: str, databases: list[str]) -> tuple[str,
                                                                                     list[str]]:
    r = client.post("/api/workspaces", json={"name": name, "databases": databases})
    assert r.status_code == 201, r.text
    tap = r.json()["tap_url"]
    root = ElementTree.fromstring(client.get(f"{tap}/tables").content)
    return tap, [t.findtext("name") or "" for t in root.iter("table")]


def test_each_owner_has_their_own_remote_of_a_name(platform, remote_server,  # noqa: ANN001
                                                   fake_tap: FakeTap) -> None:
    with api(platform, "alice") as alice, api(platform, "bob") as bob:
        assert alice.post("/api/remotes", json={"name": "mine", "url": remote_server.tap}
                          ).status_code == 201
        assert bob.post("/api/remotes", json={"name": "mine", "url": fake_tap.url}
                        ).status_code == 201
        # One registration and one cache of metadata per owner, never mixed.
        alices = {t["name"] for t in alice.get("/api/remotes/mine").json()["tables"]}
        bobs = {t["name"] for t in bob.get("/api/remotes/mine").json()["tables"]}
        assert "mine.hipparcos.hip2" in alices and "mine.cat.stars" not in alices
        assert bobs == {"mine.cat.stars"}
        # Each selects their own in a workspace: its schemas, nobody else's.
        tap_a, names_a = workspace_tables(alice, "own", ["mine"])
        tap_b, names_b = workspace_tables(bob, "own", ["mine"])
        assert "mine.hipparcos.hip2" in names_a and "mine.cat.stars" not in names_a
        assert "mine.cat.stars" in names_b and "mine.hipparcos.hip2" not in names_b
        r = sync(alice, tap_a, "SELECT TOP 2 hip FROM mine.hipparcos.hip2 ORDER BY hip")
        assert r.status_code == 200 and len(r.text.splitlines()) == 3, r.text
        assert not any(s.path == "/tap/sync" for s in fake_tap.seen)  # not bob's remote
        r = sync(bob, tap_b, "SELECT TOP 2 hip FROM mine.hipparcos.hip2")
        assert r.status_code == 400 and "remote 'mine' has no table hipparcos.hip2" in r.text
        # Nobody else sees either (not even by name), nor can select them.
        with api(platform, "root") as root:
            assert root.get("/api/remotes/mine").status_code == 404
            r = root.post("/api/workspaces", json={"name": "w", "databases": ["mine"]})
            assert r.status_code == 400 and "unknown database 'mine'" in r.text
            r = root.post("/tap/sync", data={"LANG": "ADQL",
                                             "QUERY": "SELECT TOP 1 * FROM mine.cat.stars"})
            assert r.status_code == 400 and "'mine' is not a remote service you" in r.text
        # Removing one leaves the other.
        assert bob.delete("/api/remotes/mine").status_code == 200
        assert alice.get("/api/remotes/mine").status_code == 200


def test_a_user_registers_a_bounded_number_of_remotes(start_server, remote_server  # noqa: ANN001
                                                      ) -> None:
    # Each remote a user registers keeps up to 20,000 tables of metadata in the one
    # shared store, refreshed every day: without a bound, one account could register
    # remotes until the metadata database filled the disk.
    server = registering_platform(lambda **kw: start_server(remote_user_max=2, **kw))
    with api(server, "alice") as alice, api(server, "root") as root:
        for name in ("one", "two"):
            assert alice.post("/api/remotes", json={
                "name": name, "url": remote_server.tap}).status_code == 201
        r = alice.post("/api/remotes", json={"name": "three", "url": remote_server.tap})
        assert r.status_code == 400, r.text
        assert "at most 2 remotes" in r.json()["error"]
        assert "three" not in {x["name"] for x in alice.get("/api/remotes").json()["remotes"]}
        # Removing one makes room; the operator's own remotes are not counted.
        assert alice.delete("/api/remotes/one").status_code == 200
        assert alice.post("/api/remotes", json={
            "name": "three", "url": remote_server.tap}).status_code == 201
        for name in ("op1", "op2", "op3"):
            assert root.post("/api/admin/remotes", json={
                "name": name, "url": remote_server.tap}).status_code == 201
