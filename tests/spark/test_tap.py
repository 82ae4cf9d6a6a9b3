"""One TAP endpoint serving a DuckDB-backed and a Spark-backed database side by side: the
same catalogue ingested twice (``taphouse ingest``, once ``--partitioned --backend
spark``), the same ADQL over HTTP with stock pyvo gives the same answers on both."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

QUERIES = [
    "SELECT source_id, ra, dec FROM {db}.stars WHERE 1 = CONTAINS(POINT('ICRS', ra, dec),"
    " CIRCLE('ICRS', {ra}, {dec}, 3))",
    "SELECT source_id FROM {db}.stars WHERE 1 = CONTAINS(POINT(ra, dec),"
    " CIRCLE(0.5, 0.2, 4))",  # across RA 0/360
    "SELECT source_id FROM {db}.stars WHERE dec > 85",  # the pole
    "SELECT FLOOR(phot_g_mean_mag) AS g, COUNT(*) AS n, AVG(parallax) AS p"
    " FROM {db}.stars GROUP BY FLOOR(phot_g_mean_mag)",
    "SELECT TOP 7 source_id, phot_g_mean_mag FROM {db}.stars ORDER BY phot_g_mean_mag,"
    " source_id",
    "SELECT COUNT(*), MIN(source_id), MAX(ra) FROM {db}.stars WHERE parallax IS NULL",
]


def _rows(table) -> list[tuple]:
    out = []
    for row in table:
        out.append(tuple(None if np.ma.is_masked(v) else (v.item() if hasattr(v, "item")
                                                          else v) for v in row))
    return sorted(out, key=lambda r: tuple((v is None, v) for v in r))


def test_database_records_its_backend(side_by_side):
    store = side_by_side.platform.catalogue
    assert store.database("sky").backend == "spark"
    assert store.database("flat").backend == "duckdb"


@pytest.mark.parametrize("query", QUERIES, ids=[q[:50] for q in QUERIES])
def test_same_adql_same_answers(side_by_side, query):
    import pyvo

    service = pyvo.dal.TAPService(side_by_side.tap)
    ra, dec = 123.4, -20.0
    flat = service.run_sync(query.format(db="flat", ra=ra, dec=dec)).to_table()
    sky = service.run_sync(query.format(db="sky", ra=ra, dec=dec)).to_table()
    assert flat.colnames == sky.colnames
    a, b = _rows(flat), _rows(sky)
    assert len(a) == len(b) and len(a) > 0
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y, rel=1e-12), (x, y)


def test_explain_names_spark(side_by_side):
    import httpx

    r = httpx.post(side_by_side.tap + "/sync", data={
        "LANG": "ADQL", "REQUEST": "doQuery", "FORMAT": "csv",
        "QUERY": "SELECT COUNT(*) FROM sky.stars"}, timeout=120)
    assert r.status_code == 200 and r.text.splitlines()[1] == "20000", r.text


def test_upload_crossmatch_on_spark(side_by_side):
    """A TAP_UPLOAD table is shipped to the Spark query as a temporary view."""
    import pyvo
    from astropy.table import Table

    service = pyvo.dal.TAPService(side_by_side.tap)
    stars = service.run_sync("SELECT TOP 50 source_id, ra, dec FROM flat.stars"
                             " ORDER BY source_id").to_table()
    up = Table({"uid": np.arange(len(stars)), "ura": np.asarray(stars["ra"]),
                "udec": np.asarray(stars["dec"])})
    q = ("SELECT u.uid, s.source_id FROM tap_upload.up AS u JOIN {db}.stars AS s ON"
         " 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(u.ura, u.udec, 1.0/3600))")
    flat = _rows(service.run_sync(q.format(db="flat"), uploads={"up": up}).to_table())
    sky = _rows(service.run_sync(q.format(db="sky"), uploads={"up": up}).to_table())
    assert flat == sky and len(sky) >= 50


def test_async_job_on_spark(side_by_side):
    import pyvo

    service = pyvo.dal.TAPService(side_by_side.tap)
    job = service.run_async("SELECT TOP 5 source_id FROM sky.stars ORDER BY source_id")
    flat = service.run_sync("SELECT TOP 5 source_id FROM flat.stars ORDER BY source_id")
    assert _rows(job.to_table()) == _rows(flat.to_table())


def test_join_across_backends(side_by_side):
    """A Spark table joined with a DuckDB table (the federation planner splits it): the
    same answer as the join of the DuckDB table with itself."""
    import httpx

    def count(a: str, b: str) -> str:
        r = httpx.post(side_by_side.tap + "/sync", data={
            "LANG": "ADQL", "REQUEST": "doQuery", "FORMAT": "csv",
            "QUERY": f"SELECT COUNT(*) FROM {a}.stars AS a JOIN {b}.stars AS b"
                     " ON a.source_id = b.source_id WHERE a.dec > 60"}, timeout=300)
        assert r.status_code == 200, r.text
        return r.text.splitlines()[1]

    assert count("sky", "flat") == count("flat", "flat") != "0"


def test_dest_from_spark_into_mydb(side_by_side):
    """DEST stores every row of a Spark query in the user's schema (streamed into the
    user table), the response obeys MAXREC, and the stored table is queryable, also
    joined with the Spark table again."""
    import httpx

    from accounts import PASSWORD, new_user

    auth = (new_user(side_by_side, "spk"), PASSWORD)

    def sync(query: str, **extra: str) -> httpx.Response:
        return httpx.post(side_by_side.tap + "/sync", auth=auth, timeout=300, data={
            "LANG": "ADQL", "REQUEST": "doQuery", "FORMAT": "csv", "QUERY": query,
            **extra})

    q = "SELECT source_id, ra, dec FROM {db}.stars WHERE dec > 40"
    r = sync(q.format(db="sky"), DEST="mydb.north", MAXREC="5")
    assert r.status_code == 200, r.text
    assert len(r.text.splitlines()) == 1 + 5  # the response: MAXREC rows
    total = sync("SELECT COUNT(*), MIN(source_id), MAX(ra) FROM ({}) AS q".format(q.format(db="flat")))
    stored = sync("SELECT COUNT(*), MIN(source_id), MAX(ra) FROM mydb.north")
    assert stored.status_code == 200, stored.text
    assert stored.text == total.text and int(stored.text.splitlines()[1].split(",")[0]) > 5
    # the stored table goes back to Spark as a temporary view
    again = sync("SELECT COUNT(*) FROM mydb.north AS n JOIN sky.stars AS s"
                 " ON n.source_id = s.source_id")
    assert again.status_code == 200 and again.text.splitlines()[1] == \
        total.text.splitlines()[1].split(",")[0]
