"""Deleting an account takes what it owns along; a new account with the old name starts
with nothing (before: a re-created eve inherited the old eve's tables, jobs and
workspace, and a re-created bob read a table shared with the old bob)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from accounts import PASSWORD
from taphouse.catalogue.ingest import ingest_files

Q = "SELECT ra, dec FROM pubcat.stars"


@pytest.fixture
def site(start_server, tmp_path):
    server = start_server()
    src = tmp_path / "stars.csv"
    src.write_text("ra,dec\n10.0,20.0\n11.0,-5.0\n")
    ingest_files(server.platform.catalogue, [src], "pubcat", "stars")
    acc = server.platform.authenticator.accounts
    for name in ("eve", "bob", "alice"):
        acc.add_user(name, PASSWORD)
    acc.add_user("root", PASSWORD, is_admin=True)
    return server


def client(server, user: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(user, PASSWORD), timeout=60,
                        headers={"X-Taphouse": "tests"})


def admin(server) -> httpx.Client:
    token = httpx.post(server.url + "/auth/token",
                       data={"username": "root", "password": PASSWORD}).json()["access_token"]
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                        timeout=60)


def populate(server, user: str) -> str:
    """A table, a finished async job (and its job_ table), a workspace; the job id."""
    with client(server, user) as c:
        assert c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": Q, "DEST": "mydb.mine"}
                      ).status_code == 200
        r = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": Q, "PHASE": "RUN"})
        job = r.headers["location"].rsplit("/", 1)[1]
        # (UWS WAIT returns at once unless the job is in the phase named: a job still
        # QUEUED on a loaded machine needs another round.)
        for _ in range(20):
            phase = c.get(f"/tap/async/{job}/phase").text
            if phase not in ("PENDING", "QUEUED", "EXECUTING"):
                break
            c.get(f"/tap/async/{job}", params={"WAIT": "30", "PHASE": phase})
        assert c.get(f"/tap/async/{job}/phase").text == "COMPLETED"
        assert c.post("/api/workspaces", json={"name": "w", "databases": ["pubcat"]}
                      ).status_code == 201
    return job


def assert_starts_empty(server, user: str, old_job: str) -> None:
    with client(server, user) as c:
        assert c.get("/api/usertables").json() == []
        assert c.get("/api/workspaces").json() == []
        assert c.get(f"/tap/async/{old_job}").status_code == 404
        assert "<uws:jobref" not in c.get("/tap/async").text
        assert c.get(f"/ws/{user}/w/tap/tables").status_code == 404
        r = c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM mydb.mine"})
        assert r.status_code == 400 and b"unknown table" in r.content
        assert f"user_{user}.mine".encode() not in c.get("/tap/tables").content


def test_recreated_account_inherits_nothing(site):
    job = populate(site, "eve")
    with client(site, "eve") as c:
        assert c.put("/api/usertables/mine/shares", json={"users": ["bob"]}
                     ).status_code == 200
    with client(site, "alice") as c:
        assert c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": Q, "DEST": "mydb.forbob"}
                      ).status_code == 200
        assert c.put("/api/usertables/forbob/shares", json={"users": ["bob"]}
                     ).status_code == 200
    with client(site, "bob") as c:
        assert b"user_alice.forbob" in c.get("/tap/tables").content
    with admin(site) as a:
        r = a.delete("/api/admin/users/eve")
        assert r.status_code == 200, r.text
        assert r.json()["jobs"] == 1 and r.json()["workspaces"] == 1
        assert a.delete("/api/admin/users/bob").status_code == 200
    acc = site.platform.authenticator.accounts
    acc.add_user("eve", PASSWORD)
    acc.add_user("bob", PASSWORD)
    assert_starts_empty(site, "eve", job)
    with client(site, "bob") as c:  # the share was made to the old bob
        assert b"forbob" not in c.get("/tap/tables").content
        r = c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM user_alice.forbob"})
        assert r.status_code == 400
    with client(site, "alice") as c:
        assert c.get("/api/usertables/forbob/shares").json()["users"] == []
    assert site.platform.catalogue.database("user_eve") is None  # dropped, not archived
    # the new eve starts her own user space
    populate(site, "eve")


def test_delete_with_archive_on_the_command_line(site):
    job = populate(site, "eve")
    old_id = site.platform.authenticator.accounts.user("eve").id
    proc = subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir",
                           str(site.data_dir), "user", "delete", "eve", "--archive"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    archive = f"archived_eve_{old_id}"
    assert archive in proc.stdout
    site.platform.authenticator.accounts.add_user("eve", PASSWORD)
    assert_starts_empty(site, "eve", job)
    # the operator (and only the operator) reads the archive, job results included
    query = {"LANG": "ADQL", "QUERY": f"SELECT COUNT(*) AS n FROM {archive}.mine",
             "RESPONSEFORMAT": "csv"}
    with admin(site) as a:
        r = a.post("/tap/sync", data=query)
        assert r.status_code == 200 and r.text.splitlines()[1] == "2"
        assert f"{archive}.job_{job}".encode() in a.get("/tap/tables").content
    for user in ("eve", "alice"):
        with client(site, user) as c:
            assert c.post("/tap/sync", data=query).status_code == 400
            assert archive.encode() not in c.get("/tap/tables").content


def test_schema_left_by_a_deleted_owner_is_archived_not_inherited(site):
    # A job still running when its owner was deleted may write the owner's schema
    # again; the next account of that name must not get it.
    cat = site.platform.catalogue
    old = site.platform.authenticator.accounts.user("eve")
    with client(site, "eve") as c:
        assert c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": Q, "DEST": "mydb.mine"}
                      ).status_code == 200
    site.platform.authenticator.delete_user("eve")  # only the account, as before
    site.platform.authenticator.accounts.add_user("eve", PASSWORD)
    with client(site, "eve") as c:
        assert c.get("/api/usertables").json() == []
        assert c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM mydb.mine"}
                      ).status_code == 400
        assert c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": Q, "DEST": "mydb.new"}
                      ).status_code == 200
        assert [t["name"] for t in c.get("/api/usertables").json()] == ["new"]
    assert cat.database(f"archived_eve_{old.id}").kind == "archived"


def test_admin_delete_needs_a_clear_archive_flag(site):
    with admin(site) as a:
        r = a.delete("/api/admin/users/eve", params={"archive": "yes"})
        assert r.status_code == 400 and "archive" in r.json()["error"]
        assert site.platform.authenticator.accounts.user("eve") is not None
