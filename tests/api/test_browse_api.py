"""Discovery for the table browser over HTTP: database counts, paged table lists,
search by name and description (tables' and columns'), one table's columns, and that
none of them shows another user's unshared tables."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from astropy.table import Table

from accounts import PASSWORD
from servers import publish_tiny_tables


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A server with 'many' (1,200 generated tables), 'few' (3) and two users: alice
    with a private and a shared table, bob."""
    from servers import start_live

    data = tmp_path_factory.mktemp("browse")
    server = start_live(data / "data")
    store = server.platform.catalogue
    publish_tiny_tables(store, "many", 1200, data)
    publish_tiny_tables(store, "few", 3, data, prefix="x", description="A few tables")
    for name in ("alice", "bob"):
        server.platform.authenticator.accounts.add_user(name, PASSWORD)
    t = Table({"zeta_flux": np.arange(3.0), "k": np.arange(3)})
    t["zeta_flux"].description = "flux of the hidden galaxy 100% sure"
    buf = io.BytesIO()
    t.write(buf, format="votable")
    with _client(server, "alice") as c:
        for table in ("secret_gal", "open_gal"):
            r = c.put(f"/api/usertables/{table}", params={"format": "votable"},
                      content=buf.getvalue())
            assert r.status_code == 201, r.text
        assert c.put("/api/usertables/open_gal/shares",
                     json={"users": ["bob"]}).status_code == 200
    yield server
    server.stop()


def _client(server, user=None):
    return httpx.Client(base_url=server.url, timeout=60, headers={"X-Taphouse": "tests"},
                        auth=(user, PASSWORD) if user else None)


def test_databases_count_tables(site):
    with _client(site) as c:
        dbs = {d["name"]: d for d in c.get("/api/databases").json()}
    assert dbs["many"]["tables"] == 1200
    assert dbs["few"] == {"name": "few", "description": "A few tables", "kind": "catalogue",
                          "tables": 3}
    assert not any(n.startswith("user_") for n in dbs)
    with _client(site, "bob") as c:
        dbs = {d["name"]: d for d in c.get("/api/databases").json()}
    assert dbs["user_alice"]["tables"] == 1  # only the shared one
    assert dbs["user_alice"]["kind"] == "user"


def test_table_list_pages(site):
    with _client(site) as c:
        every = c.get("/api/databases/many/tables").json()
        assert [t["name"] for t in every] == [f"t{i:05d}" for i in range(1200)]
        first = every[0]
        assert first == {"name": "t00000", "database": "many", "qualified_name": "many.t00000",
                         "description": "Field 0 of many", "nrows": 1, "ra_column": "ra",
                         "dec_column": "dec", "epoch": 2000.0, "ncolumns": 4}
        page = c.get("/api/databases/many/tables", params={"offset": 1000, "limit": 150}).json()
        assert [t["name"] for t in page] == [f"t{i:05d}" for i in range(1000, 1150)]
        tail = c.get("/api/databases/many/tables", params={"offset": 1190}).json()
        assert len(tail) == 10
        for bad in ({"offset": "-1"}, {"limit": "x"}, {"limit": "1e3"}, {"offset": "9" * 30}):
            r = c.get("/api/databases/many/tables", params=bad)
            assert r.status_code == 400 and "whole number" in r.json()["error"], bad
        assert c.get("/api/databases/nosuch/tables").status_code == 404


def test_one_table_with_columns(site):
    with _client(site) as c:
        t = c.get("/api/tables/many/t00042").json()
    assert [(col["name"], col["unit"], col["ucd"]) for col in t["columns"]] == [
        ("id", None, "meta.id;meta.main"), ("ra", "deg", "pos.eq.ra;meta.main"),
        ("dec", "deg", "pos.eq.dec;meta.main"), ("mag", "mag", "phot.mag;em.opt.V")]
    assert t["columns"][1]["description"] == "Right ascension (ICRS)"


def test_search_by_name_description_and_columns(site):
    with _client(site) as c:
        def search(q, **params):
            r = c.get("/api/tables", params={"q": q, **params})
            assert r.status_code == 200, r.text
            return r.json()

        # By name: the exact name first, then names holding the text.
        found = search("t00042")
        assert [t["qualified_name"] for t in found] == ["many.t00042"]
        found = search("T0004")  # case does not matter
        assert [t["name"] for t in found] == [f"t{i:05d}" for i in range(40, 50)]
        # By description, limited, and within one database.
        found = search("field 11", limit=5)
        assert [t["name"] for t in found] == ["t00011", "t00110", "t00111", "t00112", "t00113"]
        assert {t["database"] for t in search("field 1", database="few")} == {"few"}
        # By a column's name or description: the columns that matched are named.
        found = search("right asc", database="few")
        assert [(t["name"], t["matched_columns"]) for t in found] == [
            ("x00000", ["ra"]), ("x00001", ["ra"]), ("x00002", ["ra"])]
        assert len(search("magnitude")) == 200  # the most one search answers
        assert len(search("magnitude", limit=1000)) == 200
        assert search("magnitude", offset=1200, database="many") == []
        # Wildcards are text: '_' and '%' match only themselves.
        assert search("t_0042") == []
        assert search("%") == []
        for bad in ({"q": ""}, {"q": "x" * 201}, {}):
            r = c.get("/api/tables", params=bad)
            assert r.status_code == 400 and r.json()["error"], bad


def test_others_private_tables_are_absent(site):
    """Search, lists and one-table reads show another user's table only once shared."""
    for who in (None, "bob"):
        with _client(site, who) as c:
            for q in ("secret_gal", "hidden galaxy", "zeta_flux", "gal"):
                names = [t["name"] for t in c.get("/api/tables", params={"q": q}).json()]
                assert "secret_gal" not in names, (who, q)
                if q != "secret_gal":
                    assert ("open_gal" in names) == (who == "bob"), (who, q)
            assert c.get("/api/tables/user_alice/secret_gal").status_code == 404
            r = c.get("/api/databases/user_alice/tables")
            if who is None:
                assert r.status_code == 404
                assert c.get("/api/tables/user_alice/open_gal").status_code == 404
            else:
                assert [t["name"] for t in r.json()] == ["open_gal"]
                t = c.get("/api/tables/user_alice/open_gal").json()
                assert t["columns"][0]["description"] == "flux of the hidden galaxy 100% sure"
    with _client(site, "alice") as c:
        found = c.get("/api/tables", params={"q": "100%"}).json()
        assert sorted(t["qualified_name"] for t in found) == [
            "user_alice.open_gal", "user_alice.secret_gal"]
        assert [t["name"] for t in c.get("/api/databases/mydb/tables").json()] == [
            "open_gal", "secret_gal"]
        assert [t["name"] for t in c.get("/api/tables", params={
            "q": "gal", "database": "mydb"}).json()] == ["open_gal", "secret_gal"]
