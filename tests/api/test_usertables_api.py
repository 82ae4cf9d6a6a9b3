"""The /api user-space endpoints over HTTP: upload in four formats, describe, download,
rename, describe, drop, discovery, quota, and the 401 challenge."""

from __future__ import annotations

import io
import itertools

import httpx
import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

from accounts import PASSWORD

_n = itertools.count()


@pytest.fixture
def api(start_server):
    server = start_server()
    name = f"api{next(_n)}"
    server.platform.authenticator.accounts.add_user(name, PASSWORD)
    with httpx.Client(base_url=server.url, auth=(name, PASSWORD), timeout=60,
                      headers={"X-Taphouse": "tests"}) as c:
        yield server, name, c


def _table(n: int = 25) -> Table:
    t = Table()
    t["id"] = np.arange(n, dtype=np.int64)
    t["ra"] = np.linspace(10, 20, n) * u.deg
    t["dec"] = np.linspace(-5, 5, n) * u.deg
    t["flux"] = np.linspace(1, 2, n).astype(np.float32) * u.mJy
    t["ra"].meta = {}
    return t


def _encode(t: Table, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "votable":
        t["ra"].meta["ucd"] = "pos.eq.ra"
        t.write(buf, format="votable")
    elif fmt == "fits":
        t.write(buf, format="fits")
    elif fmt == "parquet":
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "t.parquet"
            t.write(path, format="parquet")  # astropy keeps units in the metadata
            return path.read_bytes()
    else:
        text = io.StringIO()
        t.write(text, format="ascii.csv")
        return text.getvalue().encode()
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["votable", "fits", "parquet", "csv"])
def test_upload_describe_download(api, fmt):
    server, user, c = api
    r = c.put(f"/api/usertables/stars_{fmt}?format={fmt}", content=_encode(_table(), fmt))
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["schema"] == f"user_{user}" and d["nrows"] == 25
    assert d["qualified_name"] == f"user_{user}.stars_{fmt}"
    cols = {col["name"]: col for col in d["columns"]}
    assert d["ra_column"] and d["dec_column"]      # positions found: index built ...
    assert "_healpix_29" not in cols and "healpix_index" not in cols  # ... internal
    if fmt in ("votable", "fits"):
        assert cols["flux"]["unit"] == "mJy"       # metadata kept from the file
    assert d["provenance"]["uploaded"]["bytes"] > 0
    # Download in another format and compare values.
    got = c.get(f"/api/usertables/stars_{fmt}/data", params={"format": "votable"})
    assert got.status_code == 200, got.text
    from astropy.io.votable import parse_single_table

    back = parse_single_table(io.BytesIO(got.content)).to_table()
    assert sorted(back["id"]) == list(range(25))
    csv = c.get(f"/api/usertables/stars_{fmt}/data", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith("id,ra,dec")
    assert c.get(f"/api/usertables/stars_{fmt}/data", params={"format": "nope"}
                 ).status_code == 400


def test_manage_tables(api):
    server, user, c = api
    body = _encode(_table(), "csv")
    assert c.put("/api/usertables/one?format=csv", content=body).status_code == 201
    assert c.put("/api/usertables/one?format=csv", content=body).status_code == 409
    assert c.put("/api/usertables/select?format=csv", content=body).status_code == 400
    assert c.put("/api/usertables/Bad-Name?format=csv", content=body).status_code == 400
    r = c.patch("/api/usertables/one", json={"name": "two", "description": "kept rows"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "two" and r.json()["description"] == "kept rows"
    assert c.get("/api/usertables/one").status_code == 404
    listed = c.get("/api/usertables").json()
    assert [t["name"] for t in listed] == ["two"]
    assert listed[0]["shared_with"] == {"users": [], "groups": []}
    assert listed[0]["job_id"] is None
    # Discovery shows the own schema, with mydb accepted as its alias.
    dbs = {d["name"]: d for d in c.get("/api/databases").json()}
    assert dbs[f"user_{user}"]["kind"] == "user" and dbs[f"user_{user}"]["tables"] == 1
    assert c.get(f"/api/tables/user_{user}/two").json()["nrows"] == 25
    assert c.get("/api/databases/mydb/tables").json()[0]["name"] == "two"
    q = c.get("/api/quota").json()
    assert q["rows_used"] == 25 and q["tables"] == 1 and q["bytes_used"] > 0
    # A name that matches no account is listed, grants nothing, and is not told apart
    # from an existing one (400 "unknown user" told who has an account).
    r = c.put("/api/usertables/two/shares", json={"users": ["nobody_here"]})
    assert r.status_code == 200 and r.json()["users"] == ["nobody_here"]
    assert c.put("/api/usertables/two/shares", json={"users": ["Not A Name"]}
                 ).status_code == 400
    assert c.delete("/api/usertables/two").status_code == 204
    assert c.delete("/api/usertables/two").status_code == 404
    assert c.get("/api/quota").json()["rows_used"] == 0


def test_login_required(api):
    server, _, _ = api
    with httpx.Client(base_url=server.url) as anon:
        for method, path in [("GET", "/api/usertables"), ("GET", "/api/quota"),
                             ("PUT", "/api/usertables/t"), ("GET", "/api/workspaces"),
                             ("POST", "/api/workspaces")]:
            r = anon.request(method, path)
            assert r.status_code == 401, (method, path)
            assert r.headers["www-authenticate"].startswith('Basic realm="taphouse"')
            assert "Bearer" in r.headers["www-authenticate"]
            assert "error" in r.json()
        assert anon.get("/api/databases").status_code == 200
