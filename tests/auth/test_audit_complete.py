"""The audit log is complete: group and membership changes (API and command line), shares
and unshares, the rows a DEST query writes; an unknown event is an error listing the
events; sharing a table that holds restricted rows with someone outside the database's
groups is refused (and audited) unless an administrator allows it."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from accounts import PASSWORD
from taphouse.auth.database_access import DatabaseAccess
from taphouse.auth.passwords import PasswordHashing
from taphouse.catalogue.ingest import ingest_files

H = {"X-Taphouse": "test"}


def login(url: str, name: str) -> dict[str, str]:
    r = httpx.post(url + "/auth/token", data={"username": name, "password": PASSWORD}, timeout=60)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}", **H}


@pytest.fixture
def site(start_server, tmp_path):
    server = start_server()
    p = server.platform
    p.authenticator.hashing = PasswordHashing(time_cost=1, memory_cost=4096, parallelism=1)
    rng = np.random.default_rng(1)
    path = tmp_path / "secret.parquet"
    pq.write_table(pa.table({"ra": rng.uniform(0, 360, 50_000),
                             "dec": rng.uniform(-90, 90, 50_000),
                             "flux": rng.normal(size=50_000)}), path)
    ingest_files(p.catalogue, [path], "secret_cat", "stars")
    acc = p.authenticator.accounts
    acc.add_group("team")
    acc.add_user("alice", PASSWORD, groups=["team"])
    acc.add_user("carol", PASSWORD, groups=["team"])
    acc.add_user("bob", PASSWORD)
    acc.add_user("root", PASSWORD, is_admin=True)
    DatabaseAccess(p.meta, p.catalogue).restrict("secret_cat", ["team"])
    return server


def events(server, event: str) -> list[dict]:
    return server.platform.authenticator.audit_log.entries(event=event, limit=1000)


def test_group_changes_through_the_api_are_audited(site):
    root = login(site.url, "root")
    url = site.url + "/api/admin/groups"
    assert httpx.post(url, json={"name": "observers"}, headers=root).status_code == 201
    assert httpx.post(url + "/observers/members", json={"username": "bob"},
                      headers=root).status_code == 200
    assert httpx.delete(url + "/observers/members/bob", headers=root).status_code == 200
    assert httpx.delete(url + "/observers", headers=root).status_code == 200
    details = [e["detail"] for e in reversed(events(site, "group"))]
    assert details == ["group observers created", "bob added to group observers",
                       "bob removed from group observers", "group observers deleted"]
    assert all(e["username"] == "root" and e["client"] == "127.0.0.1"
               for e in events(site, "group"))
    bad = httpx.get(site.url + "/api/admin/audit", params={"event": "nosuch"}, headers=root)
    assert bad.status_code == 400 and "group" in bad.json()["error"]
    assert "share" in bad.json()["error"] and "catalogue" in bad.json()["error"]


def _cli(data, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data),
                           "--init", *args], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("TAPHOUSE_")})


def test_group_changes_on_the_command_line_are_audited_and_events_checked(tmp_path):
    data = tmp_path / "data"
    for args in (("group", "add", "g1"), ("user", "add", "dave", "--password-stdin"),
                 ("group", "add-member", "g1", "dave"), ("group", "remove-member", "g1", "dave"),
                 ("group", "delete", "g1")):
        proc = subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data),
                               "--init", *args], input=PASSWORD + "\n", capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    out = _cli(data, "audit", "--event", "group").stdout
    for text in ("group g1 created", "dave added to group g1", "dave removed from group g1",
                 "group g1 deleted"):
        assert text in out
    assert "cli:" in out
    bad = _cli(data, "audit", "--event", "logins")
    assert bad.returncode != 0 and "unknown audit event 'logins'" in bad.stderr
    assert "login_failed" in bad.stderr and "group" in bad.stderr


def test_dest_from_a_restricted_database_logs_the_rows_written(site):
    alice = login(site.url, "alice")
    r = httpx.post(site.url + "/tap/sync", headers=alice, timeout=300, data={
        "LANG": "ADQL", "QUERY": "SELECT * FROM secret_cat.stars", "MAXREC": "11",
        "DEST": "mydb.copy", "RESPONSEFORMAT": "csv"})
    assert r.status_code == 200, r.text
    query = next(e for e in events(site, "query") if "secret_cat.stars" in (e["detail"] or ""))
    assert query["rows"] == 50_000, query
    assert "DEST: 50000 rows written to user_alice.copy" in query["outcome"]


def test_sharing_restricted_rows_outside_the_groups_is_refused(site):
    alice = login(site.url, "alice")
    r = httpx.post(site.url + "/tap/sync", headers=alice, timeout=300, data={
        "LANG": "ADQL", "QUERY": "SELECT TOP 100 * FROM secret_cat.stars",
        "DEST": "mydb.few", "RESPONSEFORMAT": "csv"})
    assert r.status_code == 200, r.text
    # a table made from that table holds the same rows
    r = httpx.post(site.url + "/tap/sync", headers=alice, timeout=300, data={
        "LANG": "ADQL", "QUERY": "SELECT ra, dec FROM mydb.few", "DEST": "mydb.derived",
        "RESPONSEFORMAT": "csv"})
    assert r.status_code == 200, r.text
    shares = site.url + "/api/usertables/{}/shares"
    for table in ("few", "derived"):
        refused = httpx.put(shares.format(table), json={"users": ["bob"]}, headers=alice)
        assert refused.status_code == 403, refused.text
        assert "secret_cat" in refused.json()["error"] and "user bob" in refused.json()["error"]
        refused = httpx.put(shares.format(table), json={"groups": ["everyone"]}, headers=alice)
        assert refused.status_code == 403
    not_admin = httpx.put(shares.format("few"), json={"users": ["bob"],
                                                      "allow_restricted": True}, headers=alice)
    assert not_admin.status_code == 403
    bob = login(site.url, "bob")
    assert httpx.get(site.url + "/api/usertables/user_alice.few", headers=bob).status_code == 404

    ok = httpx.put(shares.format("few"), json={"users": ["carol"], "groups": ["team"]},
                   headers=alice)
    assert ok.status_code == 200, ok.text
    gone = httpx.put(shares.format("few"), json={}, headers=alice)
    assert gone.status_code == 200
    log = [(e["outcome"], e["detail"]) for e in reversed(events(site, "share"))]
    assert log[0][0] == "refused" and "user_alice.few" in log[0][1]
    assert ("ok", "user_alice.few shared with users ['carol'] groups ['team'];"
            " holds rows of restricted secret_cat") in log
    assert log[-1] == ("ok", "user_alice.few unshared; holds rows of restricted secret_cat")

    # an administrator's own table: allowed on purpose, and audited with the name
    root = login(site.url, "root")
    r = httpx.post(site.url + "/tap/sync", headers=root, timeout=300, data={
        "LANG": "ADQL", "QUERY": "SELECT TOP 5 * FROM secret_cat.stars",
        "DEST": "mydb.sample", "RESPONSEFORMAT": "csv"})
    assert r.status_code == 200, r.text
    assert httpx.put(site.url + "/api/usertables/sample/shares", json={"users": ["bob"]},
                     headers=root).status_code == 403
    allowed = httpx.put(site.url + "/api/usertables/sample/shares",
                        json={"users": ["bob"], "allow_restricted": True}, headers=root)
    assert allowed.status_code == 200, allowed.text
    assert "allowed by administrator root" in events(site, "share")[0]["detail"]

    # tables of public data share freely
    r = httpx.put(site.url + "/api/usertables/plain?format=csv", content=b"x\n1\n",
                  headers={**alice, "Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    assert httpx.put(shares.format("plain"), json={"users": ["bob"]},
                     headers=alice).status_code == 200
