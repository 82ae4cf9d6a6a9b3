"""Remote services in workspaces: a user selects a remote among a workspace's databases;
its /tables and TAP_SCHEMA then list the remote's schemas as NAME.schema (read from the
one shared cache, nothing copied), queries there reach only the remotes it selects, and
taplint finds the workspace clean. Hostile remote metadata cannot pose as local schemas
nor break the documents."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
from fake_tap import XML, FakeTap
from remote_helpers import LOOPBACK, PASSWORD, api

from servers import LiveServer, start_live
from taplint import run_taplint

HOSTILE_TABLES = b"""<?xml version="1.0"?>
<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0"
  xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<schema><name>hipparcos</name>
<table><name>hipparcos.hip2</name><description>not the local one</description>
<column><name>hip</name><dataType xsi:type="vs:VOTableType">long</dataType></column>
</table></schema>
<schema><name>TAP_SCHEMA</name>
<table><name>TAP_SCHEMA.tables</name>
<column><name>table_name</name><dataType xsi:type="vs:VOTableType">char</dataType></column>
</table></schema>
<schema><name>x"y</name>
<table><name>x"y.t&lt;b&gt;</name><description>&lt;/description&gt;&lt;script&gt;</description>
<column><name>Col "1"</name>
<dataType xsi:type="vs:VOTableType">&lt;/dataType&gt;&lt;evil/&gt;</dataType></column>
</table></schema>
</vosi:tableset>"""


@pytest.fixture(scope="module")
def platform(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
             remote_server: LiveServer) -> Iterator[LiveServer]:
    """The platform (demo data, loopback allowed) with remote 'far' (the second
    taphouse), 'vault' (group-restricted) and 'evil' (hostile metadata) registered."""
    data = tmp_path_factory.mktemp("wsplatform") / "data"
    shutil.copytree(demo_data_dir, data, symlinks=True)
    server = start_live(data, outbound_allow=LOOPBACK)
    accounts = server.platform.authenticator.accounts
    for user in ("alice", "bob"):
        accounts.add_user(user, PASSWORD)
    accounts.add_group("survey")
    accounts.add_member("survey", "alice")
    registry = server.platform.remotes
    registry.add("far", remote_server.tap)
    registry.add("vault", remote_server.tap, groups=("survey",))
    fake = FakeTap()
    fake.routes["/tap/tables"] = lambda s: (200, XML, HOSTILE_TABLES)
    fake.start()
    registry.add("evil", fake.url)
    yield server
    fake.stop()
    server.stop()


def sync(client: httpx.Client, url: str, query: str) -> httpx.Response:
    return client.post(url + "/sync", data={"REQUEST": "doQuery", "LANG": "ADQL",
                                            "FORMAT": "csv", "QUERY": query})


def workspace(client: httpx.Client, name: str, databases: list[str]) -> str:
    client.delete(f"/api/workspaces/{name}")
    r = client.post("/api/workspaces", json={"name": name, "databases": databases})
    assert r.status_code == 201, r.text
    assert r.json()["databases"] == databases
    return r.json()["tap_url"]


def test_a_workspace_lists_its_remotes_schemas(platform) -> None:  # noqa: ANN001
    with api(platform, "alice") as alice:
        tap = workspace(alice, "mix", ["gaia", "far"])
        tables = alice.get(f"{tap}/tables")
        assert tables.status_code == 200
        root = ElementTree.fromstring(tables.content)
        schemas = [s.findtext("name") for s in root.iter("schema")]
        names = [t.findtext("name") for t in root.iter("table")]
        assert "far.hipparcos" in schemas and "far.gaia" in schemas and "gaia" in schemas
        assert "far.hipparcos.hip2" in names and "gaia.dr3_bright" in names
        assert "hipparcos" not in schemas and "hipparcos.hip2" not in names  # not selected
        assert not any(s.lower().startswith("far.tap_schema") for s in schemas)
        hip2 = alice.get(f"{tap}/tables/far.hipparcos.hip2")
        assert hip2.status_code == 200 and "<name>ra</name>" in hip2.text
        assert "<unit>deg</unit>" in hip2.text
        assert alice.get(f"{tap}/tables/far.hipparcos.nosuch").status_code == 404
        assert alice.get(f"{tap}/tables/vault.hipparcos.hip2").status_code == 404

        # TAP_SCHEMA says the same, built for this workspace when asked.
        r = sync(alice, tap, "SELECT schema_name, table_name FROM TAP_SCHEMA.tables"
                             " WHERE schema_name LIKE 'far.%' ORDER BY table_name")
        assert r.status_code == 200, r.text
        assert "far.hipparcos,far.hipparcos.hip2" in r.text.splitlines()
        r = sync(alice, tap, "SELECT column_name, unit FROM TAP_SCHEMA.columns"
                             " WHERE table_name = 'far.hipparcos.hip2' AND column_name = 'ra'")
        assert r.text.splitlines()[1:] == ["ra,deg"]
        # ... and a query on the remote runs from the workspace.
        r = sync(alice, tap, "SELECT TOP 3 hip FROM far.hipparcos.hip2 ORDER BY hip")
        assert r.status_code == 200 and len(r.text.splitlines()) == 4, r.text

        # The main endpoint does not list remotes (its TAP_SCHEMA stays the catalogue's).
        assert "far.hipparcos" not in alice.get("/tap/tables").text


def test_a_workspace_reaches_only_the_remotes_it_selects(platform) -> None:  # noqa: ANN001
    with api(platform, "alice") as alice, api(platform, "bob") as bob:
        tap = workspace(alice, "gaiaonly", ["gaia"])
        r = sync(alice, tap, "SELECT TOP 1 hip FROM far.hipparcos.hip2")
        assert r.status_code == 400 and "'far' is not in this workspace" in r.text
        assert "far." not in alice.get(f"{tap}/tables").text
        # Remotes are chosen like databases: only those the user may query.
        r = bob.post("/api/workspaces", json={"name": "w", "databases": ["vault"]})
        assert r.status_code == 400 and "unknown database 'vault'" in r.text
        r = bob.post("/api/workspaces", json={"name": "w", "databases": ["nosuchremote"]})
        assert r.status_code == 400
        tap = workspace(alice, "vaulted", ["vault"])
        assert "vault.hipparcos.hip2" in alice.get(f"{tap}/tables").text
        # Leaving the group takes the remote out of the workspace's metadata and scope.
        platform.platform.authenticator.accounts.remove_member("survey", "alice")
        try:
            assert "vault.hipparcos" not in alice.get(f"{tap}/tables").text
            r = sync(alice, tap, "SELECT TOP 1 hip FROM vault.hipparcos.hip2")
            assert r.status_code == 400
        finally:
            platform.platform.authenticator.accounts.add_member("survey", "alice")


def test_hostile_remote_metadata_stays_in_its_place(platform) -> None:  # noqa: ANN001
    with api(platform, "alice") as alice:
        tap = workspace(alice, "odd", ["hipparcos", "evil"])
        tables = alice.get(f"{tap}/tables")
        root = ElementTree.fromstring(tables.content)  # well-formed: nothing injected
        assert root.find(".//evil") is None and b"<script>" not in tables.content
        schemas = [s.findtext("name") for s in root.iter("schema")]
        names = [t.findtext("name") for t in root.iter("table")]
        # The remote's "hipparcos" is evil.hipparcos; the local one keeps its name.
        assert schemas.count("hipparcos") == 1 and "evil.hipparcos" in schemas
        assert "evil.hipparcos.hip2" in names and "hipparcos.hip2" in names
        assert 'evil."x""y"' in schemas and 'evil."x""y"."t<b>"' in names
        assert not any("tap_schema" in s.lower() for s in schemas if s.startswith("evil"))
        datatypes = {d.text for d in root.iter("dataType")}
        assert datatypes <= {"boolean", "short", "int", "long", "float", "double", "char",
                             "unicodeChar", "unsignedByte"}
        r = sync(alice, tap, "SELECT schema_name FROM TAP_SCHEMA.schemas"
                             " WHERE schema_name LIKE 'evil%' ORDER BY schema_name")
        assert [row[0] for row in csv.reader(r.text.splitlines()[1:])] == [
            'evil."x""y"', "evil.hipparcos"]
        r = sync(alice, tap, "SELECT description FROM TAP_SCHEMA.tables"
                             " WHERE schema_name = 'hipparcos'")
        assert "not the local one" not in r.text


@pytest.mark.slow
def test_taplint_on_a_workspace_with_a_remote(platform) -> None:  # noqa: ANN001
    with api(platform, "alice") as alice:
        tap = workspace(alice, "lint", ["gaia", "far"])
    bad, out = run_taplint(tap, "-Dstar.basicauth.user=alice",
                           f"-Dstar.basicauth.password={PASSWORD}")
    assert "Totals:" in out, out[-3000:]
    assert "far.hipparcos.hip2" in out or "QGE" in out
    assert not bad, "taplint errors:\n" + "\n".join(bad)


def test_async_remote_query_of_a_logged_in_user(platform) -> None:  # noqa: ANN001
    # A logged-in user's async result is kept as mydb.job_<id> for local queries; a
    # remote query has no local SQL to store from, and used to fail ("cannot store").
    import time

    with api(platform, "alice") as alice:
        r = alice.post("/tap/async", data={
            "REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv", "PHASE": "RUN",
            "QUERY": "SELECT TOP 4 hip FROM far.hipparcos.hip2 ORDER BY hip"})
        assert r.status_code == 303, r.text
        job = r.headers["location"]
        for _ in range(300):
            phase = alice.get(job + "/phase").text.strip()
            if phase in ("COMPLETED", "ERROR", "ABORTED"):
                break
            time.sleep(0.2)
        assert phase == "COMPLETED", alice.get(job).text
        result = alice.get(job + "/results/result")
        assert result.status_code == 200 and len(result.text.splitlines()) == 5
