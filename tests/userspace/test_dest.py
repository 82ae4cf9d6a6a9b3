"""DEST: query -> stored table -> queried again, joined with a catalogue table."""

from __future__ import annotations

from userspace_helpers import client_for, infos, sync, table_of

from accounts import new_user


def test_dest_then_join_with_catalogue(demo_server):
    user = new_user(demo_server)
    c = client_for(demo_server, user)
    q = "SELECT source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright WHERE phot_g_mean_mag < 7"
    full = sync(c, q, MAXREC="100000")
    assert full.status_code == 200, full.text
    nfull = len(table_of(full))
    assert nfull > 5
    r = sync(c, q, DEST="mydb.bright", MAXREC="3")
    assert r.status_code == 200, r.text
    info = infos(r)
    assert info["DEST_TABLE"] == f"user_{user}.bright"
    assert info["DEST_ROWS"] == str(nfull)          # every row stored ...
    assert len(table_of(r)) == 3                     # ... MAXREC limits the response
    assert info.get("QUERY_STATUS") == "OVERFLOW"
    j = sync(c, "SELECT COUNT(*) AS n FROM mydb.bright AS b JOIN gaia.dr3_bright AS g"
                " ON b.source_id = g.source_id")
    assert j.status_code == 200, j.text
    assert int(table_of(j)["n"][0]) == nfull
    # The owner's schema is queryable by its real name too, with unit metadata kept.
    t = sync(c, f'SELECT TOP 1 ra, "_healpix_29" FROM user_{user}.bright')
    assert t.status_code == 200, t.text
    assert str(table_of(t)["ra"].unit) == "deg"
    c.close()


def test_dest_is_listed_in_capabilities_and_examples(demo_server):
    caps = client_for(demo_server, None).get("/tap/capabilities").text
    assert "DEST=mydb.&lt;table&gt;" in caps
    examples = client_for(demo_server, None).get("/tap/examples").text
    assert "DEST=mydb." in examples


def test_stored_table_in_spatial_crossmatch(demo_server):
    user = new_user(demo_server)
    c = client_for(demo_server, user)
    r = sync(c, "SELECT source_id, ra, dec FROM gaia.dr3_bright WHERE phot_g_mean_mag < 6",
             DEST="mydb.cands")
    assert r.status_code == 200, r.text
    described = c.get("/api/usertables/cands").json()
    assert described["ra_column"] == "ra" and described["dec_column"] == "dec"
    assert not any("healpix" in col["name"] for col in described["columns"])  # internal
    assert described["provenance"]["source_tables"] == ["gaia.dr3_bright"]
    assert "phot_g_mean_mag < 6" in described["provenance"]["adql"]
    xm = sync(c, "SELECT COUNT(*) AS n FROM mydb.cands AS m JOIN hipparcos.hip2 AS h"
                 " ON 1 = CONTAINS(POINT('ICRS', m.ra, m.dec),"
                 " CIRCLE('ICRS', h.ra, h.dec, 1.0 / 60))")
    assert xm.status_code == 200, xm.text
    # Bright Gaia stars are (almost) all Hipparcos stars.
    assert int(table_of(xm)["n"][0]) >= 0.9 * described["nrows"]
