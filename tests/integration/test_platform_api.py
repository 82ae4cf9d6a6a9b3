"""Discovery, user space and workspaces through the client, end to end."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

import taphouse
from taphouse.client import ClientError, Column, NotFoundError, QueryError, UserTable


def test_databases_tables_columns_with_metadata(client):
    dbs = client.databases()
    assert {"gaia", "hipparcos"} <= set(dbs.names())
    assert "hipparcos" in repr(dbs) and "<table>" in dbs._repr_html_()
    tables = client.tables("gaia")
    gaia = tables["dr3_bright"]
    assert gaia.nrows == 482_176 and gaia.qualified_name == "gaia.dr3_bright"
    cols = client.columns("hipparcos.hip2")
    assert isinstance(cols[0], Column)
    ra = cols["ra"]
    assert ra.unit == "deg" and ra.ucd.startswith("pos.eq.ra") and ra.description
    assert cols["pmde"].unit == "mas/yr"
    assert ra.frame == {"system": "ICRS", "epoch": "J1991.25", "equinox": None,
                        "refposition": None} == cols["dec"].frame
    assert cols["hpmag"].frame is None and cols["hpmag"].time_system is None
    assert not ra.bad_unit
    info = client.table("hipparcos.hip2")
    text = repr(info)
    assert text.startswith("<TableInfo hipparcos.hip2 (117,955 rows)>") and "mas/yr" in text
    assert "pos.parallax.trig" in info._repr_html_()
    with pytest.raises(NotFoundError):
        client.columns("gaia.nowhere")


def test_user_space_round_trip(client, tmp_path):
    stars = Table({"id": np.arange(5, dtype=np.int64),
                   "ra": np.linspace(10, 11, 5) * u.deg, "dec": np.linspace(-5, -4, 5) * u.deg})
    made = client.mydb.upload("stars", stars, description="five test stars")
    assert isinstance(made, UserTable) and made.nrows == 5
    assert made.description == "five test stars"
    df = stars.to_pandas()
    assert client.mydb.upload("frame", df).nrows == 5
    csv = tmp_path / "more.csv"
    csv.write_text("a,b\n1,x\n2,y\n")
    assert client.mydb.upload("more", csv).nrows == 2
    with pytest.raises(ClientError) as info:
        client.mydb.upload("stars", stars)  # mode="create" on an existing table
    assert info.value.status == 409
    client.mydb.upload("stars", stars[:2], mode="append")

    listing = client.mydb.list()
    assert {"stars", "frame", "more"} <= set(listing.names())
    assert "stars" in repr(listing)
    described = client.mydb.describe("stars")
    assert described.nrows == 7 and described.columns
    assert [c for c in described.columns if c.name == "ra"][0].unit == "deg"

    back = client.mydb.download("mydb.stars")
    assert len(back) == 7 and back["ra"].unit == u.deg
    path = client.mydb.download("stars", path=tmp_path / "stars.csv", format="csv")
    assert path.read_text().count("\n") >= 8

    q = client.query("SELECT COUNT(*) AS n FROM mydb.stars AS s JOIN mydb.frame AS f"
                     " ON s.id = f.id")
    assert q["n"][0] == 7

    renamed = client.mydb.rename("frame", "frame2")
    assert renamed.name == "frame2"
    with pytest.raises(NotFoundError):
        client.mydb.describe("frame")

    quota = client.quota()  # also counts mydb.job_<id>, the stored result of the query
    assert quota.tables == len(client.mydb.list()) >= 3
    assert quota.rows_used >= 14 and "rows" in repr(quota)

    client.mydb.drop("more")
    assert "more" not in client.mydb.list().names()
    assert client.quota().tables == quota.tables - 1


def test_sharing_lets_another_user_read(demo_server, client, new_user, password):
    client.mydb.upload("shared", Table({"x": [1, 2, 3]}))
    friend_name = new_user("f")
    friend = taphouse.connect(demo_server.url, interactive=False, progress=False)
    friend.login(friend_name, password)
    owner_schema = client.mydb.describe("shared").schema or f"user_{client.username}"
    sql = f"SELECT SUM(x) AS s FROM {owner_schema}.shared"
    with pytest.raises(QueryError):
        friend.query(sql)
    shares = client.mydb.share("shared", users=[friend_name])
    assert friend_name in shares["users"]
    assert client.mydb.shares("shared")["users"] == [friend_name]
    assert friend.query(sql)["s"][0] == 6
    client.mydb.share("shared")
    with pytest.raises(QueryError):
        friend.query(sql)


def test_workspace_narrows_the_scope_and_has_a_tap_url(client):
    ws = client.workspace("hip", databases=["hipparcos"])
    assert ws.databases == ["hipparcos"]
    assert ws.tap_url.endswith(f"/ws/{client.username}/hip/tap")
    t = ws.query("SELECT TOP 3 hip FROM hipparcos.hip2")
    assert len(t) == 3
    with pytest.raises(QueryError, match="gaia"):
        ws.query("SELECT TOP 1 source_id FROM gaia.dr3_bright")
    # pyvo on the same login, as TOPCAT or a script would use tap_url
    assert len(ws.service.run_sync("SELECT TOP 2 hip FROM hipparcos.hip2")) == 2
    assert len(ws.jobs()) == 2

    again = client.workspace("hip")
    assert again.tap_url == ws.tap_url and "hip" in client.workspaces().names()
    widened = client.workspace("hip", databases=["hipparcos", "gaia"])
    assert sorted(widened.databases) == ["gaia", "hipparcos"]
    assert len(widened.query("SELECT TOP 1 source_id FROM gaia.dr3_bright")) == 1
    assert "hipparcos" in repr(widened) and widened.tap_url in widened._repr_html_()
    widened.delete()
    with pytest.raises(NotFoundError, match="pass databases="):
        client.workspace("hip")


def test_user_space_needs_a_login(demo_server):
    anonymous = taphouse.connect(demo_server.url, interactive=False)
    assert "gaia" in anonymous.databases().names()
    with pytest.raises(taphouse.client.AuthError):
        anonymous.mydb.list()
