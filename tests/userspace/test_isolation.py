"""Isolation: a private table of someone else answers exactly like a missing one; read
shares (per user and per group) make it readable; nobody writes into catalogues."""

from __future__ import annotations

import re

from userspace_helpers import client_for, sync, table_of

from accounts import new_user

Q = "SELECT TOP 5 source_id, ra, dec FROM gaia.dr3_bright ORDER BY source_id"


def _error(resp) -> str:
    m = re.search(r'<INFO name="QUERY_STATUS" value="ERROR">(.*?)</INFO>', resp.text, re.S)
    assert m, resp.text
    return m.group(1)


def test_private_table_is_unknown_until_shared(demo_server):
    alice, bob = new_user(demo_server, "al"), new_user(demo_server, "bo")
    a, b = client_for(demo_server, alice), client_for(demo_server, bob)
    assert sync(a, Q, DEST="mydb.secret").status_code == 200
    private = sync(b, f"SELECT * FROM user_{alice}.secret")
    missing = sync(b, f"SELECT * FROM user_{alice}.nosuchtable")
    assert private.status_code == missing.status_code == 400
    # Same message shape: only the table name differs.
    assert _error(private).replace("secret", "X") == _error(missing).replace("nosuchtable", "X")
    assert f"user_{alice}" not in b.get("/tap/tables").text
    assert b.get(f"/api/tables/user_{alice}/secret").status_code == 404
    # Share with bob: he reads it under its real name; alice's other tables stay hidden.
    assert sync(a, Q, DEST="mydb.other").status_code == 200
    r = a.put("/api/usertables/secret/shares", json={"users": [bob], "groups": []})
    assert r.status_code == 200, r.text
    assert r.json() == {"users": [bob], "groups": []}
    got = sync(b, f"SELECT source_id FROM user_{alice}.secret")
    assert got.status_code == 200, got.text
    assert len(table_of(got)) == 5
    tables = b.get("/tap/tables").text
    assert f"user_{alice}.secret" in tables and f"user_{alice}.other" not in tables
    assert sync(b, f"SELECT * FROM user_{alice}.other").status_code == 400
    # Shared is read-only: bob cannot write into alice's schema, and mydb is his own.
    w = sync(b, Q, DEST=f"user_{alice}.secret", DEST_MODE="replace")
    assert w.status_code == 403, w.text
    # Unshare: unknown again.
    assert a.put("/api/usertables/secret/shares", json={"users": []}).status_code == 200
    assert sync(b, f"SELECT * FROM user_{alice}.secret").status_code == 400


def test_group_share(demo_server):
    accounts = demo_server.platform.authenticator.accounts
    alice, carol = new_user(demo_server, "al"), new_user(demo_server, "ca")
    group = f"team{alice}"
    accounts.add_group(group)
    accounts.add_member(group, carol)
    a, c = client_for(demo_server, alice), client_for(demo_server, carol)
    assert sync(a, Q, DEST="mydb.forteam").status_code == 200
    assert sync(c, f"SELECT * FROM user_{alice}.forteam").status_code == 400
    r = a.put("/api/usertables/forteam/shares", json={"groups": [group]})
    assert r.status_code == 200, r.text
    got = sync(c, f"SELECT COUNT(*) AS n FROM user_{alice}.forteam")
    assert got.status_code == 200, got.text
    assert int(table_of(got)["n"][0]) == 5


def test_no_writes_into_catalogues_or_foreign_schemas(demo_server):
    alice = new_user(demo_server, "al")
    a = client_for(demo_server, alice)
    r = sync(a, Q, DEST="gaia.mine")
    assert r.status_code == 403 and "read-only" in _error(r)
    r = sync(a, Q, DEST="user_nobodyhere.t")
    assert r.status_code == 400 and "unknown schema" in _error(r)
    r = sync(a, Q, DEST="mydb.select")
    assert r.status_code == 400 and "reserved word" in _error(r)
    r = sync(a, Q, DEST="mydb.Bad-Name")
    assert r.status_code == 400 and "invalid table name" in _error(r)
    anon = client_for(demo_server, None)
    r = sync(anon, Q, DEST="mydb.t")
    assert r.status_code == 401
    assert "Basic" in r.headers["www-authenticate"] and "Bearer" in r.headers["www-authenticate"]


def test_create_conflict_replace_append(demo_server):
    alice = new_user(demo_server, "al")
    a = client_for(demo_server, alice)
    assert sync(a, Q, DEST="mydb.t").status_code == 200
    again = sync(a, Q, DEST="mydb.t")
    assert again.status_code == 409 and "already exists" in _error(again)
    assert sync(a, Q, DEST="mydb.t", DEST_MODE="append").status_code == 200
    n = sync(a, "SELECT COUNT(*) AS n FROM mydb.t")
    assert int(table_of(n)["n"][0]) == 10
    q3 = "SELECT TOP 3 source_id, ra, dec FROM gaia.dr3_bright ORDER BY source_id DESC"
    r = sync(a, q3, DEST="mydb.t", DEST_MODE="append")
    assert r.status_code == 200
    # The response holds the appended rows only, in the query's order.
    ids = list(table_of(r)["source_id"])
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)
    assert sync(a, Q, DEST="mydb.t", DEST_MODE="replace").status_code == 200
    n = sync(a, "SELECT COUNT(*) AS n FROM mydb.t")
    assert int(table_of(n)["n"][0]) == 5
    bad = sync(a, "SELECT TOP 2 source_id FROM gaia.dr3_bright", DEST="mydb.t",
               DEST_MODE="append")
    assert bad.status_code == 400 and "cannot append" in _error(bad)
