"""Workspaces: their own TAP endpoint, scope = listed databases + the user's schema."""

from __future__ import annotations

import pytest
import requests
from userspace_helpers import client_for, sync, table_of

from accounts import PASSWORD, new_user
from taplint import run_taplint


@pytest.fixture
def workspace(demo_server):
    user = new_user(demo_server, "ws")
    c = client_for(demo_server, user)
    assert sync(c, "SELECT TOP 20 source_id, ra, dec FROM gaia.dr3_bright",
                DEST="mydb.picked").status_code == 200
    r = c.post("/api/workspaces", json={"name": "gaiaonly", "databases": ["gaia"]})
    assert r.status_code == 201, r.text
    assert r.json()["tap_url"] == f"{demo_server.url}/ws/{user}/gaiaonly/tap"
    yield user, c, r.json()["tap_url"]
    c.close()


def test_challenge_and_not_found(demo_server, workspace):
    user, c, tap = workspace
    anon = client_for(demo_server, None)
    for url in (f"{tap}/tables", f"/ws/{user}/nosuch/tap/tables", "/ws/nobody/x/tap/sync",
                "/ws/anything"):
        r = anon.get(url)
        assert r.status_code == 401, url
        challenge = r.headers["www-authenticate"]
        assert "Basic" in challenge and "Bearer" in challenge
    other = client_for(demo_server, new_user(demo_server, "ot"))
    assert other.get(f"{tap}/tables").status_code == 404
    assert other.get(f"/ws/{user}/nosuch/tap/tables").status_code == 404
    assert c.get(f"/ws/{user}/nosuch/tap/tables").status_code == 404


def test_scope_and_unqualified_names(demo_server, workspace):
    user, c, tap = workspace
    tables = c.get(f"{tap}/tables").text
    assert "gaia.dr3_bright" in tables and f"user_{user}.picked" in tables
    assert "<name>hipparcos" not in tables and "hipparcos.hip2</name>" not in tables
    # One table's VOSI document: only what the workspace holds (looked up alone).
    for name, status in (("gaia.dr3_bright", 200), (f"user_{user}.picked", 200),
                         ("mydb.picked", 404), ("tap_schema.tables", 200),
                         ("hipparcos.hip2", 404), ("dr3_bright", 404),
                         ("gaia.nosuch", 404)):
        r = c.get(f"{tap}/tables/{name}")
        assert r.status_code == status, (name, r.text[:200])
        if status == 200:
            assert f"<name>{name}</name>" in r.text
    assert c.get("/tap/tables/hipparcos.hip2").status_code == 200
    other = client_for(demo_server, new_user(demo_server, "ou"))
    assert other.get(f"/tap/tables/user_{user}.picked").status_code == 404
    # Unqualified names resolve inside the workspace.
    r = sync(c, "SELECT COUNT(*) AS n FROM picked AS p JOIN dr3_bright AS g"
                " ON p.source_id = g.source_id", prefix=tap)
    assert r.status_code == 200, r.text
    assert int(table_of(r)["n"][0]) == 20
    assert sync(c, "SELECT TOP 1 * FROM hipparcos.hip2", prefix=tap).status_code == 400
    schemas = table_of(sync(c, "SELECT schema_name FROM TAP_SCHEMA.schemas", prefix=tap))
    assert {str(s) for s in schemas["schema_name"]} == {"gaia", f"user_{user}", "tap_schema"}
    # The main endpoint is unaffected.
    assert sync(c, "SELECT TOP 1 * FROM hipparcos.hip2").status_code == 200
    # Edit, list, delete.
    r = c.patch("/api/workspaces/gaiaonly", json={"databases": ["gaia", "hipparcos"]})
    assert r.status_code == 200 and r.json()["databases"] == ["gaia", "hipparcos"]
    assert sync(c, "SELECT TOP 1 * FROM hip2", prefix=tap).status_code == 200
    assert [w["name"] for w in c.get("/api/workspaces").json()] == ["gaiaonly"]
    assert c.post("/api/workspaces", json={"name": "gaiaonly", "databases": []}
                  ).status_code == 409
    assert c.post("/api/workspaces", json={"name": "x", "databases": ["nosuchdb"]}
                  ).status_code == 400
    assert c.delete("/api/workspaces/gaiaonly").status_code == 204
    assert c.get(f"{tap}/tables").status_code == 404


def test_pyvo_sync_and_async(demo_server, workspace):
    import pyvo

    user, _, tap = workspace
    session = requests.Session()
    session.auth = (user, PASSWORD)
    service = pyvo.dal.TAPService(tap, session=session)
    got = service.run_sync("SELECT TOP 5 source_id FROM picked ORDER BY source_id")
    assert len(got) == 5
    job = service.run_async("SELECT COUNT(*) AS n FROM dr3_bright")
    assert int(job.to_table()["n"][0]) > 0
    # keys(), not iteration: pyvo 1.x fetches each table's details without the
    # session (so without credentials).
    names = set(service.tables.keys())
    assert "gaia.dr3_bright" in names and f"user_{user}.picked" in names
    assert not any(n.startswith("hipparcos") for n in names)


def test_taplint_on_workspace(demo_server, workspace):
    user, _, tap = workspace
    bad, out = run_taplint(tap, f"-Dstar.basicauth.user={user}",
                           f"-Dstar.basicauth.password={PASSWORD}")
    assert "Totals:" in out, out[-3000:]
    assert "QGE" in out and "UPL" in out
    assert not bad, "taplint errors:\n" + "\n".join(bad)
