"""Async results are kept as mydb.job_<jobid> while the job exists."""

from __future__ import annotations

from userspace_helpers import client_for, run_job, sync, table_of

from accounts import new_user


def test_job_table_appears_and_disappears(demo_server):
    user = new_user(demo_server, "jo")
    c = client_for(demo_server, user)
    job_id = run_job(c, "SELECT source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright"
                        " WHERE phot_g_mean_mag < 8", MAXREC="7")
    table = f"job_{job_id}"
    listed = {t["name"]: t for t in c.get("/api/usertables").json()}
    assert table in listed
    assert listed[table]["job_id"] == job_id
    assert listed[table]["nrows"] == 7            # the result as returned (MAXREC)
    assert listed[table]["provenance"]["source_tables"] == ["gaia.dr3_bright"]
    r = sync(c, f"SELECT COUNT(*) AS n FROM mydb.{table}")
    assert int(table_of(r)["n"][0]) == 7
    # The result document and the table agree; the document says MAXREC cut it.
    result = c.get(f"/tap/async/{job_id}/results/result")
    assert b'name="QUERY_STATUS" value="OVERFLOW"' in result.content
    doc = table_of(result)
    assert len(doc) == 7
    stored = table_of(sync(c, f"SELECT source_id FROM mydb.{table}"))
    assert sorted(doc["source_id"]) == sorted(stored["source_id"])
    assert c.delete(f"/tap/async/{job_id}", follow_redirects=False).status_code == 303
    assert table not in {t["name"] for t in c.get("/api/usertables").json()}
    assert sync(c, f"SELECT * FROM mydb.{table}").status_code == 400


def test_anonymous_job_keeps_no_table(demo_server):
    anon = client_for(demo_server, None)
    before = len(demo_server.platform.catalogue.databases("user"))
    run_job(anon, "SELECT TOP 3 source_id FROM gaia.dr3_bright")
    assert len(demo_server.platform.catalogue.databases("user")) == before
