"""The TAP service's answers over both backends: the same test bodies on the demo
catalogues in DuckDB (``gaia``, ``hipparcos``) and on the very same rows served from
PostgreSQL (``gaiapg``, ``hippg``), through the real server with stock pyvo (fixture
``pg_demo``: one server and one PostgreSQL cluster per session, tests/pg_demo.py).

Each test checks its backend's answer against what the data says (angular distances in
numpy, the rows themselves), not only against the other backend.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import httpx
import numpy as np
import pytest
import pyvo
from astropy.table import Table
from pyvo.dal import DALOverflowWarning, DALQueryError

from pg_demo import DATABASES

BOTH = pytest.mark.parametrize("backend", list(DATABASES))


def _svc(pg_demo: Any) -> pyvo.dal.TAPService:
    return pyvo.dal.TAPService(pg_demo.server.tap)


def _rows(t: Table) -> list[tuple]:
    return sorted((tuple(r) for r in t.as_array().tolist()), key=repr)


def _sep(ra1: Any, dec1: Any, ra2: Any, dec2: Any) -> Any:
    """Angular distance in degrees (haversine)."""
    r1, d1, r2, d2 = (np.radians(np.asarray(x, dtype=float)) for x in (ra1, dec1, ra2, dec2))
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


@pytest.fixture(scope="module")
def stars(pg_demo: Any) -> Table:
    """Every row of the demo Gaia table (from DuckDB): the data the tests check against."""
    return _svc(pg_demo).run_sync("SELECT * FROM gaia.dr3_bright ORDER BY source_id",
                                  maxrec=1_000_000).to_table()


@BOTH
@pytest.mark.parametrize("centre", [(56.75, 24.12, 2.0), (0.2, -0.3, 3.0), (120.0, 89.5, 2.0)],
                         ids=["pleiades", "ra0", "pole"])
def test_cone(pg_demo: Any, stars: Table, backend: str, centre: tuple) -> None:
    """A cone: exactly the rows within the radius, every column with the DuckDB
    table's values, units and UCDs (RA 0/360 and the pole included)."""
    ra, dec, r = centre
    g = DATABASES[backend][0]
    t = _svc(pg_demo).run_sync(
        f"SELECT * FROM {g}.dr3_bright WHERE 1 = CONTAINS(POINT('ICRS', ra, dec),"
        f" CIRCLE('ICRS', {ra}, {dec}, {r})) ORDER BY source_id", maxrec=100000).to_table()
    d = _sep(stars["ra"], stars["dec"], ra, dec)
    near = np.abs(d - r) < 1e-9  # on the circle to rounding: either answer is right
    want = set(np.asarray(stars["source_id"])[d <= r]) - set(np.asarray(stars["source_id"])[near])
    got = set(np.asarray(t["source_id"]))
    assert want <= got <= want | set(np.asarray(stars["source_id"])[near]) and len(got) > 3
    assert t.colnames == stars.colnames
    ref = stars[np.isin(stars["source_id"], t["source_id"])]
    for name in t.colnames:
        assert t[name].unit == ref[name].unit, name
        assert t[name].meta.get("ucd") == ref[name].meta.get("ucd"), name
        assert t[name].dtype == ref[name].dtype, name
    assert _rows(t) == _rows(ref)


@BOTH
def test_upload_crossmatch(pg_demo: Any, stars: Table, backend: str) -> None:
    """An uploaded table crossmatched at 2″: exactly the pairs within the radius."""
    rng = np.random.default_rng(23)
    pick = rng.choice(len(stars), 300, replace=False)
    ra = (np.asarray(stars["ra"])[pick] + rng.normal(0, 1 / 3600, 300)) % 360
    dec = np.clip(np.asarray(stars["dec"])[pick] + rng.normal(0, 1 / 3600, 300), -90, 90)
    up = Table({"k": np.arange(300), "ra": ra, "dec": dec})
    g = DATABASES[backend][0]
    t = _svc(pg_demo).run_sync(
        f"SELECT u.k, g.source_id, DISTANCE(POINT(u.ra, u.dec), POINT(g.ra, g.dec)) AS d"
        f" FROM TAP_UPLOAD.up AS u JOIN {g}.dr3_bright AS g"
        " ON 1 = CONTAINS(POINT(g.ra, g.dec), CIRCLE(u.ra, u.dec, 2.0/3600))",
        uploads={"up": up}, maxrec=100000).to_table()
    got = {(int(k), int(s)) for k, s in zip(t["k"], t["source_id"], strict=True)}
    sra, sdec, sid = (np.asarray(stars[c]) for c in ("ra", "dec", "source_id"))
    want, edge = set(), set()
    for k in range(300):
        d = _sep(sra, sdec, ra[k], dec[k]) * 3600
        want |= {(k, int(s)) for s in sid[d <= 2 - 1e-6]}
        edge |= {(k, int(s)) for s in sid[np.abs(d - 2) < 1e-6]}
    assert want <= got <= want | edge and len(got) > 150
    assert float(np.max(t["d"])) <= 2.0 / 3600 + 1e-12


@BOTH
def test_top_and_maxrec_overflow(pg_demo: Any, backend: str) -> None:
    h = DATABASES[backend][1]
    svc = _svc(pg_demo)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DALOverflowWarning)
        res = svc.run_sync(f"SELECT hip FROM {h}.hip2 ORDER BY hip", maxrec=7)
    assert res.query_status == "OVERFLOW" and list(res.to_table()["hip"]) == list(range(1, 8))
    exact = svc.run_sync(f"SELECT TOP 7 hip FROM {h}.hip2 ORDER BY hip", maxrec=7)
    assert exact.query_status == "OK" and len(exact) == 7
    top = svc.run_sync(f"SELECT TOP 3 hip FROM {h}.hip2 ORDER BY hip DESC", maxrec=10)
    assert top.query_status == "OK" and len(top) == 3
    assert list(top.to_table()["hip"]) == sorted(top.to_table()["hip"], reverse=True)
    job = svc.run_async(f"SELECT hip FROM {h}.hip2", maxrec=4)
    assert job.query_status == "OVERFLOW" and len(job) == 4
    r = httpx.post(pg_demo.server.tap + "/sync", timeout=60, data={
        "LANG": "ADQL", "QUERY": f"SELECT hip, ra, hpmag FROM {h}.hip2", "MAXREC": "0",
        "RESPONSEFORMAT": "json"})
    doc = r.json()
    assert r.status_code == 200 and doc["data"] == []
    assert [m["name"] for m in doc["metadata"]] == ["hip", "ra", "hpmag"]


@BOTH
def test_errors_are_clear(pg_demo: Any, backend: str) -> None:
    """ADQL errors with their position; errors raised while the database runs the query
    (a cast or product out of range) are the caller's 400 with the reason, never a 500,
    and name nothing of the server (no connection string, no role)."""
    g, h = DATABASES[backend]
    svc = _svc(pg_demo)
    with pytest.raises(DALQueryError) as err:
        svc.run_sync(f"SELECT hip,\n       nosuch FROM {h}.hip2")
    assert "nosuch" in str(err.value) and "line 2" in str(err.value)
    with pytest.raises(DALQueryError, match="line 1"):
        svc.run_sync("SELECT FROM WHERE")
    for query, reason in ((f"SELECT CAST(source_id AS SMALLINT) FROM {g}.dr3_bright",
                           "out of range|overflow|Conversion"),
                          (f"SELECT CAST(hip AS SMALLINT) * 1000 FROM {h}.hip2 WHERE hip > 40",
                           "out of range|overflow")):
        r = httpx.post(pg_demo.server.tap + "/sync", timeout=60,
                       data={"LANG": "ADQL", "QUERY": query})
        assert r.status_code == 400, (query, r.status_code, r.text[:300])
        assert 'name="QUERY_STATUS" value="ERROR"' in r.text
        assert re.search(reason, r.text, re.IGNORECASE), r.text[:500]
        assert "th_reader" not in r.text and "host=" not in r.text


@BOTH
def test_types(pg_demo: Any, backend: str) -> None:
    """Values of each ADQL type come back with the same VOTable datatype as on the
    embedded engine, and the right value: integers, approximate and exact arithmetic,
    aggregates, strings, booleans from predicates, NULLs, points."""
    g, h = DATABASES[backend]
    query = (
        "SELECT TOP 1 COUNT(*) AS n, SUM(h.hip) AS s, AVG(h.hip) AS a, MIN(h.hpmag) AS m,"
        " MAX(h.hip) / 2 AS half, CAST(MAX(h.hip) AS DOUBLE) / 2 AS halfd,"
        " ROUND(AVG(h.hpmag), 2) AS r, MOD(MAX(h.hip), 7) AS md,"
        " CAST(MAX(h.hip) AS REAL) AS f, CAST(MAX(h.hip) AS SMALLINT) / 10 AS sm,"
        " UPPER('ab') || 'c' AS txt, CAST(NULL AS INTEGER) AS nul"
        f" FROM {h}.hip2 AS h WHERE h.hip BETWEEN 1 AND 1000")
    t = _svc(pg_demo).run_sync(query).to_table()
    ref = _svc(pg_demo).run_sync(query.replace(h + ".", "hipparcos.")).to_table()
    fields = {f.name: (f.datatype, f.arraysize) for f in
              _svc(pg_demo).run_sync(query).resultstable.fields}
    want = {f.name: (f.datatype, f.arraysize) for f in
            _svc(pg_demo).run_sync(query.replace(h + ".", "hipparcos.")).resultstable.fields}
    assert fields == want
    row, exp = t[0], ref[0]
    assert int(row["n"]) == int(exp["n"]) > 0
    assert int(row["s"]) == int(exp["s"]) and int(row["half"]) == int(exp["half"])
    assert int(row["md"]) == int(exp["md"]) and int(row["sm"]) == int(exp["sm"])
    for name in ("a", "m", "halfd", "r", "f"):
        assert math.isclose(float(row[name]), float(exp[name]), rel_tol=1e-12), name
    # integer division stays integer (ADQL), the DOUBLE one does not
    assert int(row["half"]) == math.floor(float(row["halfd"])) != float(row["halfd"]) or (
        float(row["halfd"]).is_integer())
    assert str(row["txt"]) == "ABc" and np.ma.is_masked(row["nul"])
    pts = _svc(pg_demo).run_sync(
        f"SELECT TOP 2 POINT(ra, dec) AS p, 1 = CONTAINS(POINT(ra, dec), CIRCLE(ra, dec, 1))"
        f" AS inside FROM {g}.dr3_bright ORDER BY source_id")
    p = next(f for f in pts.resultstable.fields if f.name == "p")
    assert (p.xtype, p.datatype, p.arraysize) == ("point", "double", "2")
    assert all(bool(v) for v in pts.to_table()["inside"])


# (ADQL expression over gaia's dr3_bright, the error): arithmetic without a value
NO_VALUE = [
    ("1 / 0", "division by zero"), ("source_id / (source_id - source_id)", "division by zero"),
    ("ra / (dec - dec)", "division by zero"), ("(ra - ra) / (ra - ra)", "division by zero"),
    ("MOD(source_id, 0)", "division by zero"), ("MOD(ra, dec - dec)", "division by zero"),
    ("LOG(-1 - ABS(ra))", "cannot take logarithm of a negative number"),
    ("LOG10(ra - ra)", "cannot take logarithm of zero"),
    ("SQRT(-1 - ABS(dec))", "cannot take square root of a negative number"),
    ("ACOS(2 + ABS(dec))", "input is out of range"),
    ("POWER(ra - ra, -1)", "zero raised to a negative power is undefined"),
    ("POWER(-1 - ABS(ra), 0.5)",
     "a negative number raised to a non-integer power yields a complex result"),
]


@pytest.mark.parametrize(("expr", "message"), NO_VALUE, ids=[e for e, _ in NO_VALUE])
def test_arithmetic_without_a_value_is_the_same_error(pg_demo: Any, expr: str,
                                                      message: str) -> None:
    """x / 0, MOD(x, 0), LOG/SQRT of negatives... is a 400 with the same words on both
    backends (the ADQL semantics of README "Arithmetic"; DuckDB answered inf or NaN,
    PostgreSQL refused)."""
    said = {}
    for backend, (g, _) in DATABASES.items():
        r = httpx.post(pg_demo.server.tap + "/sync", timeout=60, data={
            "LANG": "ADQL",
            "QUERY": f"SELECT TOP 5 source_id, {expr} AS v FROM {g}.dr3_bright"})
        assert r.status_code == 400, (backend, r.text[:500])
        said[backend] = re.findall(r'name="QUERY_STATUS" value="ERROR">([^<]*)<', r.text)
    assert said == {backend: [f"query failed: {message}"] for backend in DATABASES}, said


def test_arithmetic_with_a_value_is_the_same(pg_demo: Any) -> None:
    """Next to them, the values: the same on both backends."""
    exprs = ("ra / 2, source_id / 7, MOD(source_id, 7), MOD(ra, 7), SQRT(ABS(dec)),"
             " LOG(ra + 1), LOG10(ra + 1), POWER(dec, 2), POWER(ABS(dec), 0.5),"
             " ACOS(SIN(RADIANS(dec))), ra / NULLIF(ra - ra, 0)")
    got = {backend: _svc(pg_demo).run_sync(
        f"SELECT TOP 50 source_id, {exprs} FROM {g}.dr3_bright ORDER BY source_id"
    ).to_table() for backend, (g, _) in DATABASES.items()}
    duck, pg = got["duckdb"], got["postgres"]
    assert len(duck) == len(pg) == 50 and duck.colnames == pg.colnames
    for name in duck.colnames:
        a, b = np.ma.filled(duck[name].astype(float), np.nan), np.ma.filled(
            pg[name].astype(float), np.nan)
        assert np.allclose(a, b, rtol=1e-12, equal_nan=True), name
    assert np.all(np.ma.getmaskarray(duck[duck.colnames[-1]]))
