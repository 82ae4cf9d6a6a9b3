"""Another user's private data answers exactly like data that does not exist, over every
route; nobody writes outside their own schema; names cannot reach file paths."""

from __future__ import annotations

import time

import pytest
from sec_helpers import client_for, error_of, sync

from accounts import new_user

T = "gaia.dr3_bright"


@pytest.fixture(scope="module")
def owner_and_other(demo_server):
    """An owner with a private table ``secret`` and a finished async job; another user."""
    owner, other = new_user(demo_server, "own"), new_user(demo_server, "oth")
    with client_for(demo_server, owner) as c:
        resp = sync(c, f"SELECT TOP 3 source_id, ra, dec FROM {T}", DEST="mydb.secret")
        assert resp.status_code == 200, resp.text[:300]
        resp = c.post("/tap/async", data={"LANG": "ADQL", "PHASE": "RUN",
                                          "QUERY": f"SELECT TOP 2 ra FROM {T}"})
        job = resp.headers["location"].rstrip("/").split("/")[-1]
        for _ in range(200):
            if c.get(f"/tap/async/{job}/phase").text == "COMPLETED":
                break
            time.sleep(0.1)
        resp = c.post("/api/workspaces", json={"name": "wsx", "databases": ["gaia"]})
        assert resp.status_code == 201
    return owner, other, job


def _unknown_table_message(client, query: str) -> str:
    resp = sync(client, query)
    assert resp.status_code == 400, resp.text[:300]
    return error_of(resp)


def test_private_table_is_unknown_in_every_spelling(demo_server, owner_and_other):
    owner, other, _ = owner_and_other
    schema = f"user_{owner}"
    spellings = [f"{schema}.secret", f'"{schema}"."secret"', f"{schema.upper()}.SECRET",
                 "secret", "mydb.secret", '"MyDB".secret', "mydb..secret",
                 f'"{schema}.secret"']
    for who in (other, None):
        with client_for(demo_server, who) as c:
            for name in spellings:
                msg = _unknown_table_message(c, f"SELECT * FROM {name}")
                assert "unknown table" in msg, (name, msg)
                # exactly like a table that does not exist
                missing = _unknown_table_message(
                    c, f"SELECT * FROM {name.replace('secret', 'nosuch').replace('SECRET', 'NOSUCH')}")
                assert msg.replace("secret", "nosuch") == missing, (name, msg, missing)


def test_private_table_is_absent_from_metadata(demo_server, owner_and_other):
    owner, other, _ = owner_and_other
    for who in (other, None):
        with client_for(demo_server, who) as c:
            for q in ("SELECT * FROM tap_schema.schemas", "SELECT * FROM tap_schema.tables",
                      "SELECT * FROM tap_schema.columns"):
                resp = sync(c, q, FORMAT="csv")
                assert resp.status_code == 200 and owner not in resp.text
            assert owner not in c.get("/tap/tables").text
            assert owner not in c.get("/api/databases").text
            for path, missing in [
                    (f"/tap/tables/user_{owner}.secret", f"/tap/tables/user_{owner}.nosuch"),
                    (f"/api/tables/user_{owner}/secret", f"/api/tables/user_{owner}/nosuch"),
                    (f"/api/databases/user_{owner}/tables", "/api/databases/user_nosuch/tables")]:
                a, b = c.get(path), c.get(missing)
                assert a.status_code == b.status_code == 404, path


def test_jobs_of_others_do_not_exist(demo_server, owner_and_other):
    owner, other, job = owner_and_other
    for who in (other, None):
        with client_for(demo_server, who) as c:
            for sub in ("", "/phase", "/results", "/results/result", "/error", "/parameters",
                        "/quote", "/executionduration", "/destruction", "/owner"):
                assert c.get(f"/tap/async/{job}{sub}").status_code == 404, sub
                assert c.get(f"/tap/async/jnosuchjob0000000{sub}").status_code == 404
            assert job not in c.get("/tap/async").text
            assert c.delete(f"/tap/async/{job}").status_code == 404
            assert c.post(f"/tap/async/{job}", data={"ACTION": "DELETE"}).status_code == 404
            assert c.post(f"/tap/async/{job}/phase", data={"PHASE": "ABORT"}).status_code == 404
            assert c.post(f"/tap/async/{job}/parameters",
                          data={"QUERY": "SELECT 1"}).status_code == 404
            msg = _unknown_table_message(c, f"SELECT * FROM user_{owner}.job_{job}")
            assert "unknown table" in msg
    with client_for(demo_server, owner) as c:
        assert c.get(f"/tap/async/{job}/phase").text == "COMPLETED"


def test_workspaces_of_others(demo_server, owner_and_other):
    owner, other, _ = owner_and_other
    paths = [f"/ws/{owner}/wsx/tap/tables", f"/ws/{owner}/wsx/tap/async",
             f"/ws/{owner}/nosuch/tap/tables", f"/ws/{owner.upper()}/wsx/tap/tables"]
    with client_for(demo_server, other) as c:
        for p in paths:
            assert c.get(p).status_code == 404, p
        assert c.post(f"/ws/{owner}/wsx/tap/sync",
                      data={"LANG": "ADQL", "QUERY": "SELECT 1"}).status_code == 404
    with client_for(demo_server) as c:
        for p in paths:
            resp = c.get(p)
            assert resp.status_code == 401 and "Basic" in resp.headers["www-authenticate"]
    # capabilities are public and the same for any workspace path (VOSI; nothing told)
    for who in (None, other):
        with client_for(demo_server, who) as c:
            a = c.get(f"/ws/{owner}/wsx/tap/capabilities")
            b = c.get("/ws/nobodyx/nothing/tap/capabilities")
            assert a.status_code == b.status_code == 200
            assert a.text.replace(f"{owner}/wsx", "X") == b.text.replace("nobodyx/nothing", "X")


def test_dest_only_into_the_own_schema(demo_server, owner_and_other):
    owner, other, _ = owner_and_other
    query = f"SELECT TOP 1 ra FROM {T}"
    with client_for(demo_server, other) as c:
        for dest, status in [("gaia.x", 403), ("hipparcos.hip2", 403),
                             (f"user_{owner}.x", 400), (f"user_{owner}.secret", 400),
                             ("tap_upload.x", 400), ("../../etc.x", 400),
                             ("mydb.a/b", 400), ("mydb.x;drop", 400), ("mydb.'x'", 400),
                             ("mydb.a\x00b", 400), ("mydb.select", 400), ("mydb.ａ", 400),
                             ("mydb.x.y", 400)]:
            resp = sync(c, query, DEST=dest)
            assert resp.status_code == status, (dest, resp.text[-300:])
        # another user's private schema is refused like one that does not exist
        a = error_of(sync(c, query, DEST=f"user_{owner}.x"))
        b = error_of(sync(c, query, DEST="user_nosuchuser.x"))
        assert a.replace(f"user_{owner}", "S") == b.replace("user_nosuchuser", "S")
    with client_for(demo_server, owner) as c:
        resp = sync(c, "SELECT * FROM mydb.secret", FORMAT="csv")
        assert resp.status_code == 200 and len(resp.text.splitlines()) == 4


def test_overlong_names_are_a_clean_400(demo_server, owner_and_other):
    # A 300-character table name was a directory name in the data directory: 500
    # "File name too long".
    _, other, _ = owner_and_other
    long = "a" * 300
    with client_for(demo_server, other) as c:
        resp = sync(c, f"SELECT TOP 1 ra FROM {T}", DEST=f"mydb.{long}")
        assert resp.status_code == 400 and "at most" in error_of(resp)
        resp = c.put(f"/api/usertables/{long}", content=b"a,b\n1,2\n",
                     headers={"content-type": "text/csv"})
        assert resp.status_code == 400 and "at most" in resp.json()["error"]
        resp = c.post("/api/workspaces", json={"name": long, "databases": []})
        assert resp.status_code == 400
        ok = "b" * 63
        assert sync(c, f"SELECT TOP 1 ra FROM {T}", DEST=f"mydb.{ok}").status_code == 200
