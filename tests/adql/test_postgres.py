"""What only PostgreSQL needs checked (a throwaway cluster, see pg_server.py, holding the
rows of the DuckDB test tables): result types, the B-tree index, crossmatches of random
uploads, and the service functions (PL/pgSQL) against cdshealpix and the DuckDB ones."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from test_functions import STARS_PM, astropy_epoch_prop, check_six

from taphouse.adql import AdqlError, Scope, inline_name, translate
from taphouse.engine.postgres import (
    PostgresError,
    install_postgres_functions,
    load_table,
)

# The translation tests that hold on every backend (the SELECT and JOIN corpora, scalar
# functions, aggregates, geometry, cones, crossmatches) are written once, in
# test_select.py, test_joins.py, test_functions.py and test_geometry.py, and run on
# DuckDB and PostgreSQL through the ``backend`` fixture (conftest.py). This file holds
# what only PostgreSQL needs checked.

ONE = "FROM demo.stars WHERE id = 1"


def test_division_is_approximate(pg):
    # ADQL quotients are DOUBLE (as on DuckDB), also of two integers
    t, rows = pg.run("SELECT id / 4, 7 / 2, MOD(7, 3), MOD(mag, 5) " + ONE)
    assert rows == [(0.25, 3.5, 1, 2.5)]
    assert [c.datatype for c in t.columns][:2] == ["double", "double"]


def test_rand(pg):
    _, rows = pg.run("SELECT RAND(), RAND(42) FROM demo.stars")
    assert len(rows) == 10 and all(0 <= a < 1 and 0 <= b < 1 for a, b in rows)


def test_result_types_as_metadata_says(pg):
    # AVG of integers and SUM of BIGINT are NUMERIC in PostgreSQL; ROUND and TRUNCATE
    # keep the argument's type; CHAR(n) is not blank-padded
    t, rows = pg.run("SELECT SUM(CAST(id AS BIGINT)), AVG(id), SUM(mag), TRUNCATE(MAX(id)), "
                     "ROUND(MIN(id), 1), CAST(MIN(id) AS CHAR(4)), UPPER('é') FROM demo.stars")
    assert rows == [(55, 5.5, 147.0, 10, 1, "1", "É")]
    assert [type(v) for v in rows[0][:5]] == [int, float, float, int, int]
    assert [c.datatype for c in t.columns[:5]] == ["long", "double", "double", "int", "int"]


def test_top_and_maxrec(pg):
    t, rows = pg.run("SELECT TOP 3 id FROM demo.stars ORDER BY id", maxrec=2)
    assert t.limit == 2 and rows == [(1,), (2,), (3,)]  # limit + 1 rows: an overflow
    t, rows = pg.run("SELECT id FROM demo.stars ORDER BY id OFFSET 1", maxrec=2)
    assert rows == [(2,), (3,), (4,)]


# --- geometry --------------------------------------------------------------------------------
def test_cone_uses_the_btree_index(pg):
    t = pg.translate("SELECT id FROM demo.stars WHERE 1=CONTAINS(POINT('ICRS', ra, dec), "
                     "CIRCLE('ICRS', 10, 10, 0.05))")
    with pg.conn.transaction():
        pg.conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in pg.conn.execute("EXPLAIN " + t.sql))
    assert "_healpix_29_idx" in plan, plan


def test_xmatch_polar_and_wrap_random(pg, sky):
    """Random pairs around the poles and RA 0/360, both positions' cells computed by the
    PL/pgSQL HEALPix functions, against a brute-force answer."""
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    _, angdist = sky
    rng = np.random.default_rng(11)
    n = 300
    ra = np.concatenate([rng.uniform(0, 360, n // 2), rng.uniform(-0.01, 0.01, n // 2) % 360])
    dec = np.concatenate([rng.choice([-1, 1], n // 2) * rng.uniform(89.9, 90, n // 2),
                          rng.uniform(-1, 1, n // 2)])
    r = 20 / 3600
    ang, step = rng.uniform(0, 2 * math.pi, n), rng.uniform(0, 1.3 * r, n)
    dec2 = dec + step * np.cos(ang)
    over = np.abs(dec2) > 90
    dec2[over] = np.sign(dec2[over]) * 180 - dec2[over]
    ra2 = (ra + step * np.sin(ang) / np.maximum(np.cos(np.radians(dec)), 1e-3)) % 360
    tables, inline = {}, {}
    for name, key, (x, y) in (("a", "i", (ra, dec)), ("b", "j", (ra2, dec2))):
        data = pa.table({key: np.arange(n), "ra": x, "dec": y})
        meta = TableMeta("tap_upload", name, [ColumnMeta(key, "long"), ColumnMeta("ra", "double"),
                                              ColumnMeta("dec", "double")], kind="upload")
        tables[("tap_upload", name)], inline[("tap_upload", name)] = meta, data
    t = translate("SELECT a.i, b.j FROM TAP_UPLOAD.a AS a JOIN TAP_UPLOAD.b AS b ON "
                  f"DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec)) <= {r!r}",
                  Scope(tables, pg.scope().relation, inline=inline), dialect="postgres")
    assert any(n.startswith("crossmatch") for n in t.notes)
    # the expanded side's 3x3 blocks are computed in Python, as the rows are loaded
    assert "TAPHOUSE_HEALPIX_NEIGHBOURS" not in t.sql.upper()
    for key, meta in tables.items():
        data = inline[key]
        load_table(pg.conn, "public", inline_name(meta), data() if callable(data) else data)
    got = set(pg.conn.execute(t.sql).fetchall())
    expected = {(i, j) for i in range(n) for j in range(n)
                if angdist(ra[i], dec[i], ra2[j], dec2[j]) <= r - 1e-9}
    assert expected <= got
    assert all(angdist(ra[i], dec[i], ra2[j], dec2[j]) <= r + 1e-9 for i, j in got)
    assert len(got) > n // 2


# --- service functions -----------------------------------------------------------------------
def test_healpix_index_matches_cdshealpix(pg):
    """Random points, the poles, RA 0/360 and the polar-cap boundary, several orders."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    rng = np.random.default_rng(3)
    n = 400
    ra = np.concatenate([rng.uniform(0, 360, n), [360.0, 359.9999999999, 0.0, 45.0, 10.0,
                                                  10.0, 123.0, 300.0, -30.0, 725.0],
                         rng.uniform(0, 360, 40)])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
                          [1.0, -1.0, 90.0, -90.0, 41.8103149, -41.8103149, 89.9999999,
                           -89.99999999, 5.0, 5.0],
                          rng.choice([-1, 1], 40) * rng.uniform(89.99, 90, 40)])
    for depth in (0, 1, 7, 18, 29):
        if depth < 18:
            # cell corners on the equator, where floating point decides (PL/pgSQL gave
            # 5 for (45, 0) at order 0, cdshealpix 0)
            corners = np.arange(0, 4 * 2 ** (depth + 1) + 1) * (45.0 / 2 ** depth)
            ra = np.concatenate([ra[:n + 50], corners])
            dec = np.concatenate([dec[:n + 50], np.zeros(len(corners))])
        expected = nested.lonlat_to_healpix(Longitude(np.mod(ra, 360) * u.deg),
                                            Latitude(dec * u.deg), depth).astype(np.int64)
        got = pg.conn.execute(
            "SELECT ivo_healpix_index(%s, r, d) FROM unnest(%s::float8[], %s::float8[]) "
            "WITH ORDINALITY AS t(r, d, i) ORDER BY i", (depth, list(ra), list(dec))).fetchall()
        assert [g[0] for g in got] == expected.tolist(), depth
        blocks = pg.conn.execute(
            "SELECT taphouse_healpix_neighbours(%s, r, d) FROM unnest(%s::float8[], "
            "%s::float8[]) WITH ORDINALITY AS t(r, d, i) ORDER BY i",
            (depth, list(ra), list(dec))).fetchall()
        ref = nested.neighbours(expected.astype(np.uint64), depth).astype(np.int64)
        for (block,), cells in zip(blocks, ref, strict=True):
            assert sorted(block) == sorted(c for c in cells if c >= 0), depth
    assert pg.conn.execute("SELECT ivo_healpix_index(30, 0, 0), ivo_healpix_index(3, 0, 91),"
                           " ivo_healpix_index(3, NULL, 0)").fetchone() == (None, None, None)


def test_polygon_contains_matches_duckdb(pg):
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    rng = np.random.default_rng(5)
    pts = pa.table({"k": np.arange(300), "ra": rng.uniform(-3, 3, 300) % 360,
                    "dec": rng.uniform(-3, 3, 300)})
    meta = TableMeta("tap_upload", "pts", [ColumnMeta("k", "long"), ColumnMeta("ra", "double"),
                                           ColumnMeta("dec", "double")], kind="upload")
    load_table(pg.conn, "public", inline_name(meta), pts)
    adql = ("SELECT k, CONTAINS(POINT(ra, dec), POLYGON(358, -2, 2, -2.5, 2.5, 2, 0, 0.5, "
            "-1.5, 2)) FROM TAP_UPLOAD.pts ORDER BY k")
    key = ("tap_upload", "pts")
    pg_sql = translate(adql, Scope({key: meta}, pg.scope().relation, inline={key: pts}),
                       dialect="postgres").sql
    duck_sql = translate(adql, Scope({key: meta}, pg.duck.engine.relation,
                                     inline={key: pts})).sql
    got = pg.conn.execute(pg_sql).fetchall()
    with pg.duck.engine.cursor({inline_name(meta): pts}) as cur:
        want = cur.execute(duck_sql).fetchall()
    assert got == want
    assert 20 < sum(r[1] for r in got) < 280


@pytest.mark.parametrize("star", STARS_PM)
def test_epoch_prop_pos_matches_duckdb(pg, sky, star):
    args = ", ".join(map(repr, star)) + ", 2016, 1991.25"
    adql = f"SELECT ivo_epoch_prop_pos({args}) AS p {ONE}"
    _, rows = pg.run(adql)
    _, ref = pg.duck.run(adql)
    (ra, dec), (ra0, dec0) = rows[0][0], ref[0][0]
    assert 0 <= ra < 360
    _, angdist = sky
    assert angdist(ra, dec, ra0, dec0) * 3.6e6 < 0.001  # mas


def test_epoch_prop_pos_nulls(pg):
    cases = ["10, 20, 1, NULL, NULL, NULL, 2016, 2000", "10, 20, 1, 1000, NULL, NULL, 2016, 2000",
             "10, 20, NULL, 0, 3600, NULL, 2016, 2000", "10, 20, NULL, 0, 3600, 500, 2016, 2000",
             "10, 20, 0, 0, 3600, NULL, 2016, 2000", "NULL, 20, 1, 1, 1, 1, 2016, 2000",
             "10, 20, 1, 1, 1, 1, NULL, 2000",
             "269.45207695, 4.693364966, 546.9759, -801.551, 10362, -110, 2000, 1900"]
    for args in cases:
        adql = f"SELECT ivo_epoch_prop_pos({args}) AS p {ONE}"
        (got,), (want,) = pg.run(adql)[1][0], pg.duck.run(adql)[1][0]
        if want is None:
            assert got is None, args
        else:
            assert got == pytest.approx(tuple(want), abs=1e-9), args


@pytest.mark.parametrize("star", STARS_PM)
def test_epoch_prop_matches_astropy_and_duckdb(pg, star):
    adql = f"SELECT epoch_prop({', '.join(map(repr, star))}, 2016, 1991.25) AS e {ONE}"
    (got,), (want,) = pg.run(adql)[1][0], pg.duck.run(adql)[1][0]
    check_six(got, astropy_epoch_prop(star, 2016, 1991.25), sep_mas=0.01)
    same_six(got, want)


def same_six(got, want):
    # ERFA's starpv applies its relativistic radial correction only when the radial
    # velocity it computes is not exactly 0; with rv = 0 that test follows rounding, so
    # the two implementations may differ by ~0.015 km/s in rv (and 1e-7 relative in pm).
    assert got[:2] == pytest.approx(tuple(want[:2]), abs=1e-9)
    assert got[2] == pytest.approx(want[2], rel=1e-8)
    assert got[3:5] == pytest.approx(tuple(want[3:5]), rel=1e-7, abs=1e-9)
    assert got[5] == pytest.approx(want[5], abs=0.05)


def test_epoch_prop_nulls_and_aliases_as_duckdb(pg):
    cases = ["epoch_prop(10, 20, NULL, NULL, 3600, 50, 2016, 2000)",
             "epoch_prop(10, 20, 5, 100, NULL, NULL, 2016, 2000)",
             "epoch_prop(NULL, 20, 1, 1, 1, 1, 2016, 2000)",
             "epoch_prop(10, 20, -3, 1, 1, 20, 2016, 2000)",
             "EPOCH_PROP_POS(269.45207695, 4.693364966, 546.9759, -801.551, 10362, -110, "
             "2000, 1900)",
             "gaia_healpix_index(12, 4472832130942575872)",
             "gaia_healpix_index(0, 4472832130942575872)",
             "gaia_healpix_index(id + 4, 4472832130942575872)",
             "gaia_healpix_index(id + 12, 4472832130942575872)",
             "gaia_healpix_index(3, -5)"]
    for expr in cases:
        adql = f"SELECT {expr} AS v {ONE}"
        (got,), (want,) = pg.run(adql)[1][0], pg.duck.run(adql)[1][0]
        if want is None or isinstance(want, int):
            assert got == want, expr
        elif len(want) == 6:
            same_six(got, want)
        else:
            assert got == pytest.approx(tuple(want), abs=1e-9), expr


def test_crossmatch_with_propagated_position(pg):
    prop = ("ivo_epoch_prop_pos(u.ura, u.udec, NULL, CASE u.uid WHEN 1 THEN 500 "
            "WHEN 2 THEN -40 ELSE NULL END, 0, NULL, 2000, 2010)")
    adql = (f"SELECT u.uid, s.id FROM TAP_UPLOAD.mine AS u JOIN demo.stars AS s ON "
            f"DISTANCE({prop}, POINT(s.ra, s.dec)) < 0.4/3600")
    t, fast = pg.run(adql)
    assert "_th_pos" in t.sql
    _, slow = pg.run(adql, spatial_index=False)
    assert sorted(fast) == sorted(slow) == [(2, 4), (3, 9)]


#: Inputs for every service function (a function added to the registry needs some here).
SERVICE_INPUTS = {
    "ivo_healpix_index": [(7, 10.5, -20.25), (29, 359.9999, 89.9), (0, 180.0, 0.0),
                          (0, 45.0, 0.0), (5, 326.25, 0.0), (12, None, 3.0)],
    "taphouse_healpix_neighbours": [(7, 10.5, -20.25), (3, 0.0, 90.0), (0, 45.0, 0.0)],
    "ivo_hasword": [("The big world", "BIG"), ("bigger", "big"), ("a-b", "b"),
                    (None, "x")],
    "ivo_epoch_prop_pos": [(10.0, 20.0, 5.0, 100.0, -50.0, 10.0, 2016.0, 1991.25),
                           (10.0, 20.0, None, 100.0, -50.0, None, 2016.0, 2000.0),
                           (359.99, -89.9, 50.0, 800.0, 300.0, 0.0, 2016.0, 2116.0)],
    "epoch_prop": [(10.0, 20.0, 5.0, 100.0, -50.0, 10.0, 2016.0, 1991.25),
                   (10.0, 20.0, None, 100.0, -50.0, None, 2016.0, 2000.0)],
    "taphouse_contains": [([10.0, 20.0], [10.0, 20.5, 1.0]), ([10.0, 20.0], [0.0, 0.0, 1.0]),
                          ([1.0, 1.0], [0.0, 0.0, 2.0, 0.0, 2.0, 2.0, 0.0, 2.0]),
                          ([10.0, 20.0, 0.1], [10.0, 20.0, 1.0]), (None, [1.0, 1.0, 1.0])],
    "taphouse_intersects": [([10.0, 20.0, 1.0], [11.0, 20.0, 0.5]),
                            ([0.0, 0.0, 1.0], [5.0, 5.0, 1.0]),
                            ([0.0, 0.0, 2.0, 0.0, 2.0, 2.0], [1.0, 1.0, 0.5])],
}
_PG_TYPES = {"INTEGER": "integer", "DOUBLE": "double precision", "VARCHAR": "text",
             "DOUBLE[]": "double precision[]"}


def _same_value(a, b) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(a)
                                                                   and math.isnan(b))
    return a == b


def test_every_service_function_on_both_backends(pg, sky):
    """The one registry of service functions: each backend has each one, and both give
    the same answers on the same inputs."""
    from taphouse.engine.backend import Backend
    from taphouse.engine.functions import service_functions

    engine = pg.duck.engine
    assert isinstance(engine, Backend)
    functions = engine.functions()
    assert {f.name for f in functions} == set(SERVICE_INPUTS)
    assert functions == service_functions()
    in_pg = {r[0] for r in pg.conn.execute("SELECT proname FROM pg_proc").fetchall()}
    with engine.cursor() as cur:
        in_duck = {r[0] for r in cur.execute("SELECT function_name FROM duckdb_functions()"
                                             " WHERE function_type = 'scalar'").fetchall()}
    for f in functions:
        assert f.name in in_pg and f.name in in_duck, f.name
        for args in SERVICE_INPUTS[f.name]:
            duck_sql = f"SELECT {f.name}({', '.join(f'?::{t}' for t in f.params)})"
            pg_sql = f"SELECT {f.name}({', '.join(f'%s::{_PG_TYPES[t]}' for t in f.params)})"
            with engine.cursor() as cur:
                want = cur.execute(duck_sql, list(args)).fetchone()[0]
            got = pg.conn.execute(pg_sql, list(args)).fetchone()[0]
            if f.name == "taphouse_healpix_neighbours":
                want, got = sorted(want), sorted(got)
            if f.name in ("ivo_epoch_prop_pos", "epoch_prop") and want is not None:
                # positions compared on the sky (RA near a pole means little)
                _, angdist = sky
                assert angdist(got[0], got[1], want[0], want[1]) * 3.6e6 < 0.01, args  # mas
                assert all(math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-9)
                           for g, w in zip(got[2:], want[2:], strict=True)), (got, want)
                continue
            assert _same_value(got, want), (f.name, args, got, want)


def test_functions_install_twice(pg):
    install_postgres_functions(pg.conn)
    assert pg.conn.execute("SELECT ivo_hasword('a b', 'B')").fetchone() == (1,)


def test_unsupported_on_postgres_is_an_adql_error(pg):
    with pytest.raises(AdqlError):
        pg.translate("SELECT REGION('CIRCLE ICRS 1 2 3') " + ONE)


def test_load_table_round_trip(pg):
    import datetime

    t = pa.table({"s": ["", None, 'a"b,c\nd', "é"], "f": [1.5, None, float("inf"), 1e300],
                  "b": [True, None, False, True],
                  "ts": pa.array([datetime.datetime(2020, 1, 2, 3, 4, 5, 123456), None, None,
                                  None], pa.timestamp("us")),
                  "i": pa.array([1, None, 3, 2**40], pa.int64())})
    expected = [tuple(r.values()) for r in t.to_pylist()]
    assert load_table(pg.conn, "scratch", "t", t) == 4
    assert pg.conn.execute('SELECT * FROM scratch.t').fetchall() == expected
    # arrays (geometry values) go row by row
    t = t.append_column("p", pa.array([[1.0, 2.0], None, [], [3.0]], pa.list_(pa.float64())))
    load_table(pg.conn, "scratch", "t", t)
    assert pg.conn.execute('SELECT p, s FROM scratch.t').fetchall() == [
        ([1.0, 2.0], ""), (None, None), ([], 'a"b,c\nd'), ([3.0], "é")]
    with pytest.raises(PostgresError, match="both ra_column and dec_column"):
        load_table(pg.conn, "scratch", "t", t, ra_column="f")
