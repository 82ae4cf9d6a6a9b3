"""Math, string, conditional, CAST, aggregate functions, IN_UNIT and the service UDFs."""

from __future__ import annotations

import math

import pytest

from taphouse.adql import AdqlError
from taphouse.adql.rules.arithmetic import (
    DIVISION_BY_ZERO,
    LOG_OF_NEGATIVE,
    LOG_OF_ZERO,
    NEGATIVE_TO_FRACTION,
    OUT_OF_RANGE,
    SQRT_OF_NEGATIVE,
    ZERO_TO_NEGATIVE_POWER,
)
from taphouse.adql.udf import UDFS

ONE = "FROM demo.stars WHERE id = 1"  # ra = dec = 10, mag = 12.5, parallax = 1, 'alpha'

SCALARS = [
    ("ABS(-mag)", 12.5), ("CEILING(mag)", 13), ("FLOOR(mag)", 12), ("DEGREES(PI())", 180.0),
    ("RADIANS(180)", math.pi), ("EXP(0)", 1.0), ("LOG(EXP(2))", 2.0), ("LOG10(1000)", 3.0),
    ("MOD(7, 3)", 1), ("POWER(2, 10)", 1024), ("SQRT(16)", 4.0), ("ROUND(mag)", 13),
    ("ROUND(1.2345, 2)", 1.23), ("TRUNCATE(1.789)", 1), ("TRUNCATE(1.789, 1)", 1.7),
    ("SIN(RADIANS(90))", 1.0), ("COS(0)", 1.0), ("TAN(0)", 0.0), ("COT(PI() / 4)", 1.0),
    ("ASIN(1)", math.pi / 2), ("ACOS(1)", 0.0), ("ATAN(1)", math.pi / 4),
    ("ATAN2(1, 1)", math.pi / 4), ("LOWER(name)", "alpha"), ("UPPER(name)", "ALPHA"),
    ("name || '!'", "alpha!"), ("COALESCE(NULL, mag)", 12.5), ("NULLIF(mag, 12.5)", None),
    ("CASE WHEN mag > 12 THEN 'faint' ELSE 'bright' END", "faint"),
    ("CASE id WHEN 1 THEN 'one' WHEN 2 THEN 'two' END", "one"),
    ("CAST(mag AS INTEGER)", 12), ("CAST(mag AS BIGINT)", 12), ("CAST(id AS SMALLINT)", 1),
    ("CAST(mag AS REAL)", 12.5), ("CAST(id AS DOUBLE PRECISION) / 4", 0.25),
    ("CAST(id AS VARCHAR(5))", "1"), ("CAST(id AS CHAR(3))", "1"),
    ("IN_UNIT(parallax, 'arcsec')", 0.001), ("IN_UNIT(ra, 'rad')", math.radians(10)),
    ("ivo_nocasematch(name, 'ALP%')", 1), ("ivo_nocasematch(name, 'beta')", 0),
    ("ivo_hasword('The quick brown fox', 'QUICK')", 1), ("ivo_hasword('quickly', 'quick')", 0),
    ("ivo_healpix_index(0, 0, 0)", 4), ("ivo_healpix_index(1, ra, dec)", 19),
    ("ivo_healpix_index(0, 45, 60)", 0),
    # no cell: NULL (was an error from DuckDB about NULL results)
    ("ivo_healpix_index(5, ra, 95)", None), ("ivo_healpix_index(30, ra, dec)", None),
    ("ivo_healpix_index(5, ra, NULL)", None),
    ("ivo_interval_overlaps(1, 3, 2, 5)", 1), ("ivo_interval_overlaps(1, 3, 4, 5)", 0),
]


@pytest.mark.parametrize(("expr", "expected"), SCALARS, ids=[s[0] for s in SCALARS])
def test_scalar(backend, expr, expected):
    t, rows = backend.run(f"SELECT {expr} {ONE}")
    value = rows[0][0]
    if isinstance(expected, float):
        assert value == pytest.approx(expected, abs=1e-9)
    else:
        assert value == expected
    assert type(value) is type(expected) or value is None or (
        isinstance(value, float) and isinstance(expected, int)
        and t.columns[0].datatype in ("double", "float")), (value, t.sql)


#: Arithmetic without a value, on the row id = 1 (mag 12.5, parallax 1): an error with
#: PostgreSQL's words on every backend (taphouse.adql.rules.arithmetic)
NO_VALUE = [
    ("id / (id - 1)", DIVISION_BY_ZERO), ("mag / (parallax - 1)", DIVISION_BY_ZERO),
    ("(id - 1) / (parallax - 1)", DIVISION_BY_ZERO), ("mag / 0", DIVISION_BY_ZERO),
    ("MOD(id, id - 1)", DIVISION_BY_ZERO), ("MOD(mag, parallax - 1)", DIVISION_BY_ZERO),
    ("MOD(7, 0)", DIVISION_BY_ZERO), ("LOG(parallax - 1)", LOG_OF_ZERO),
    ("LOG(-mag)", LOG_OF_NEGATIVE), ("LOG10(id - 1)", LOG_OF_ZERO),
    ("LOG10(-mag)", LOG_OF_NEGATIVE), ("LOG(-1)", LOG_OF_NEGATIVE),
    ("LOG(parallax, mag)", DIVISION_BY_ZERO), ("SQRT(-mag)", SQRT_OF_NEGATIVE),
    ("SQRT(-1)", SQRT_OF_NEGATIVE), ("ACOS(mag)", OUT_OF_RANGE),
    ("ASIN(-parallax - 1)", OUT_OF_RANGE), ("POWER(id - 1, -1)", ZERO_TO_NEGATIVE_POWER),
    ("POWER(-mag, 0.5)", NEGATIVE_TO_FRACTION),
    ("POWER(-mag, parallax / 2)", NEGATIVE_TO_FRACTION),
]
#: ... and next to them, arithmetic that has a value keeps it (NULL stays NULL)
VALUED = [
    ("mag / parallax", 12.5), ("(id - 1) / mag", 0.0), ("MOD(-7, 3)", -1),
    ("MOD(mag, 5)", 2.5), ("SQRT(id - 1)", 0.0), ("POWER(-mag, 2)", 156.25),
    ("POWER(id - 1, 0)", 1.0), ("POWER(-8, 1 / 3 * 3)", -8.0), ("LOG(parallax)", 0.0),
    ("LOG(10, 1000)", 3.0), ("ACOS(parallax)", 0.0), ("ASIN(-parallax)", -math.pi / 2),
    ("mag / NULLIF(id - 1, 0)", None), ("MOD(id, NULLIF(id - 1, 0))", None),
    ("SQRT(-NULLIF(mag, 12.5))", None), ("LOG(NULLIF(mag, 12.5))", None),
]


@pytest.mark.parametrize(("expr", "message"), NO_VALUE, ids=[e for e, _ in NO_VALUE])
def test_arithmetic_without_a_value_is_an_error(backend, expr, message):
    """x / 0 (of integers or not), MOD(x, 0), LOG/LOG10 of 0 or less, SQRT of a negative,
    ACOS/ASIN outside [-1, 1], POWER(0, negative) and POWER(negative, fraction): the
    same error on both backends (DuckDB gave inf, NaN or NULL, PostgreSQL an error)."""
    assert backend.error(f"SELECT {expr} AS v {ONE}") == message


@pytest.mark.parametrize(("expr", "expected"), VALUED, ids=[e for e, _ in VALUED])
def test_arithmetic_with_a_value(backend, expr, expected):
    _, rows = backend.run(f"SELECT {expr} AS v {ONE}")
    assert rows[0][0] == (expected if expected is None else pytest.approx(expected)), expr


def test_rand_between_0_and_1(env):
    _, rows = env.run("SELECT RAND(), RAND(42) FROM demo.stars")
    assert all(0 <= a < 1 and 0 <= b < 1 for a, b in rows)


def test_aggregates_group_by_having(backend):
    t, rows = backend.run("SELECT band, COUNT(*) AS n, SUM(flux) AS s, AVG(flux) AS a, "
                          "MIN(flux) AS lo, MAX(flux) AS hi, COUNT(DISTINCT id) AS ids "
                          "FROM demo.obs GROUP BY band HAVING COUNT(*) >= 1 ORDER BY band")
    assert rows == [("G", 3, 5.0, pytest.approx(5.0 / 3), 0.5, 3.0, 3),
                    ("K", 1, 9.0, 9.0, 9.0, 9.0, 1), ("R", 1, 2.5, 2.5, 2.5, 2.5, 1)]
    cols = {c.name: c for c in t.columns}
    assert cols["n"].datatype == "long" and cols["n"].unit is None
    assert cols["s"].unit == "mJy" and cols["a"].unit == "mJy" and cols["hi"].ucd == "phot.flux"


def test_group_by_alias_and_expression(backend):
    _, rows = backend.run("SELECT FLOOR(mag) AS m, COUNT(*) FROM demo.stars GROUP BY m"
                          " ORDER BY m OFFSET 5")
    assert rows == [(16, 1), (17, 1), (18, 1), (19, 1)]


def test_in_unit_metadata(env):
    t, _ = env.run("SELECT IN_UNIT(parallax, 'arcsec') AS p FROM demo.stars")
    assert (t.columns[0].unit, t.columns[0].ucd) == ("arcsec", "pos.parallax")


@pytest.mark.parametrize(("expr", "message"), [
    ("IN_UNIT(name, 'deg')", "has no known unit"),
    ("IN_UNIT(mag, 'deg')", "cannot convert mag to deg"),
    ("ivo_hasword(name)", "takes 2 arguments"),
    ("CAST(mag AS BLOB)", "CAST to"),
])
def test_function_errors(env, expr, message):
    with pytest.raises(AdqlError, match=message):
        env.translate(f"SELECT {expr} {ONE}")


def test_epoch_propagation(env):
    t, rows = env.run("SELECT ivo_epoch_prop_pos(10.0, 20.0, 10.0, 1000.0, -1000.0, NULL, "
                      "2016.0, 2000.0) AS p " + ONE)
    ra, dec = rows[0][0]
    assert ra == pytest.approx(10 - 16 / 3600 / math.cos(math.radians(20)), abs=1e-6)
    assert dec == pytest.approx(20 + 16 / 3600, abs=1e-6)
    assert (t.columns[0].xtype, t.columns[0].arraysize) == ("point", "2")


PROP = "ivo_epoch_prop_pos({args})"


def test_epoch_propagation_barnards_star(env):
    # pgsphere's published epoch_prop test case (Barnard's star, 100 years back); ERFA
    # pmsafe also applies the light-time correction, a milliarcsecond here.
    args = "269.45207695, 4.693364966, 546.9759, -801.551, 10362, -110, 2000, 1900"
    t, rows = env.run(f"SELECT COORD1({PROP.format(args=args)}) AS a, "
                      f"COORD2({PROP.format(args=args)}) AS b {ONE}")
    assert rows[0][0] == pytest.approx(269.4742714391, abs=2e-6)
    assert rows[0][1] == pytest.approx(4.4072939987, abs=2e-6)
    assert [(c.unit, c.ucd) for c in t.columns] == [("deg", "pos.eq.ra"),
                                                      ("deg", "pos.eq.dec")]


STARS_PM = [
    # ra, dec, parallax [mas], pmra* [mas/yr], pmdec [mas/yr], rv [km/s]
    (269.45207695, 4.693364966, 546.9759, -801.551, 10362.0, -110.0),
    (10.0, 89.9, 5.0, 300.0, -200.0, 20.0),  # near the pole
    (359.9999, -30.0, 1.0, 50.0, 10.0, 0.0),  # across RA 0/360
    (165.0, -60.0, 0.2, -5.0, 3.0, 100.0),
]


@pytest.mark.parametrize("star", STARS_PM)
def test_epoch_propagation_matches_astropy(env, star):
    import astropy.units as u
    from astropy.coordinates import Distance, SkyCoord
    from astropy.time import Time

    ra, dec, plx, pmra, pmdec, rv = star
    c = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, distance=Distance(parallax=plx * u.mas),
                 pm_ra_cosdec=pmra * u.mas / u.yr, pm_dec=pmdec * u.mas / u.yr,
                 radial_velocity=rv * u.km / u.s, obstime=Time(2016.0, format="jyear"))
    expected = c.apply_space_motion(new_obstime=Time(1991.25, format="jyear"))
    args = ", ".join(map(repr, star)) + ", 2016, 1991.25"
    _, rows = env.run(f"SELECT {PROP.format(args=args)} AS p {ONE}")
    ra2, dec2 = rows[0][0]
    assert 0 <= ra2 < 360
    sep = SkyCoord(ra2 * u.deg, dec2 * u.deg).separation(
        SkyCoord(expected.ra, expected.dec)).to_value(u.mas)
    assert sep < 0.01


def test_epoch_propagation_nulls(env):
    # NULL proper motion -> no motion; NULL parallax or radial velocity -> 0 (the
    # position still moves by the proper motion); NULL position or epoch -> NULL
    cases = {
        "10, 20, 1, NULL, NULL, NULL, 2016, 2000": (10.0, 20.0),
        "10, 20, 1, 1000, NULL, NULL, 2016, 2000": (10.0, 20.0),  # one component missing
        "10, 20, NULL, 0, 3600, NULL, 2016, 2000": (10.0, 20 - 16 * 3600 / 3.6e6),
        "10, 20, NULL, 0, 3600, 500, 2016, 2000": (10.0, 20 - 16 * 3600 / 3.6e6),
        "10, 20, 0, 0, 3600, NULL, 2016, 2000": (10.0, 20 - 16 * 3600 / 3.6e6),
    }
    for args, (ra, dec) in cases.items():
        _, rows = env.run(f"SELECT {PROP.format(args=args)} AS p {ONE}")
        assert rows[0][0][0] == pytest.approx(ra, abs=1e-9), args
        assert rows[0][0][1] == pytest.approx(dec, abs=1e-8), args
    for args in ("NULL, 20, 1, 1, 1, 1, 2016, 2000", "10, 20, 1, 1, 1, 1, NULL, 2000",
                 "10, 20, 1, 1, 1, 1, 2016, NULL"):
        _, rows = env.run(f"SELECT {PROP.format(args=args)} AS p {ONE}")
        assert rows == [(None,)], args
    # on a table with NULL parallaxes (stars 3 and 10) every position still propagates
    _, rows = env.run("SELECT id, DISTANCE(ivo_epoch_prop_pos(ra, dec, parallax, 0, 3600, "
                      "NULL, 2000, 2010), POINT(ra, dec)) FROM demo.stars ORDER BY id")
    assert [i for i, _ in rows] == list(range(1, 11))
    assert all(d == pytest.approx(0.01, abs=1e-8) for _, d in rows)


def test_udf_registry_signatures():
    for name in ("ivo_healpix_index", "ivo_hasword", "ivo_nocasematch", "ivo_epoch_prop_pos"):
        udf = UDFS[name]
        assert udf.signature.startswith(name + "(") and " -> " in udf.signature
        assert udf.description
    assert UDFS["ivo_healpix_index"].signature == \
        "ivo_healpix_index(order INTEGER, ra DOUBLE, dec DOUBLE) -> BIGINT"


# --- the ESA Gaia archive's functions -------------------------------------------------
def astropy_epoch_prop(star, ref_epoch, out_epoch):
    """The six parameters at out_epoch, computed by astropy (SkyCoord.apply_space_motion)."""
    import astropy.units as u
    from astropy.coordinates import Distance, SkyCoord
    from astropy.time import Time

    ra, dec, plx, pmra, pmdec, rv = star
    c = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, distance=Distance(parallax=plx * u.mas),
                 pm_ra_cosdec=pmra * u.mas / u.yr, pm_dec=pmdec * u.mas / u.yr,
                 radial_velocity=rv * u.km / u.s, obstime=Time(ref_epoch, format="jyear"))
    e = c.apply_space_motion(new_obstime=Time(out_epoch, format="jyear"))
    return (e.ra.deg, e.dec.deg, e.distance.parallax.to_value(u.mas),
            e.pm_ra_cosdec.to_value(u.mas / u.yr), e.pm_dec.to_value(u.mas / u.yr),
            e.radial_velocity.to_value(u.km / u.s))


def check_six(got, want, sep_mas):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    assert 0 <= got[0] < 360
    sep = SkyCoord(got[0] * u.deg, got[1] * u.deg).separation(
        SkyCoord(want[0] * u.deg, want[1] * u.deg)).to_value(u.mas)
    assert sep < sep_mas
    assert got[2] == pytest.approx(want[2], rel=1e-9, abs=1e-9)  # parallax, mas
    assert got[3] == pytest.approx(want[3], rel=1e-7, abs=1e-6)  # pmra*, mas/yr
    assert got[4] == pytest.approx(want[4], rel=1e-7, abs=1e-6)  # pmdec, mas/yr
    assert got[5] == pytest.approx(want[5], rel=1e-7, abs=1e-6)  # rv, km/s


@pytest.mark.parametrize("star", STARS_PM)
@pytest.mark.parametrize("epochs", [(2016.0, 1991.25), (2000.0, 2060.0)])
def test_epoch_prop_matches_astropy(env, star, epochs):
    args = ", ".join(map(repr, star + epochs))
    t, rows = env.run(f"SELECT epoch_prop({args}) AS e {ONE}")
    check_six(rows[0][0], astropy_epoch_prop(star, *epochs), sep_mas=0.01)
    assert (t.columns[0].datatype, t.columns[0].arraysize) == ("double", "6")


def test_epoch_prop_gaia_null_rules(env):
    # as in the Gaia archive, each missing parallax, proper motion component or radial
    # velocity counts as 0; parallax and rv are returned as given without a parallax
    _, rows = env.run(f"SELECT epoch_prop(10, 20, NULL, NULL, 3600, 50, 2016, 2000) {ONE}")
    ra, dec, plx, pmra, pmdec, rv = rows[0][0]
    assert (ra, plx, rv) == (pytest.approx(10.0, abs=1e-9), 0.0, 50.0)
    assert dec == pytest.approx(20 - 16 * 3600 / 3.6e6, abs=1e-8)
    assert pmra == pytest.approx(0, abs=1e-9) and pmdec == pytest.approx(3600, rel=1e-6)
    _, rows = env.run(f"SELECT epoch_prop(10, 20, 5, 100, NULL, NULL, 2016, 2000) {ONE}")
    check_six(rows[0][0], astropy_epoch_prop((10, 20, 5, 100, 0, 0), 2016, 2000), 0.01)
    for args in ("NULL, 20, 1, 1, 1, 1, 2016, 2000", "10, 20, 1, 1, 1, 1, 2016, NULL"):
        _, rows = env.run(f"SELECT epoch_prop({args}) {ONE}")
        assert rows == [(None,)]


def test_epoch_prop_pos_is_ivo_epoch_prop_pos(env):
    args = "269.45207695, 4.693364966, 546.9759, -801.551, 10362, -110, 2000, 1900"
    t, rows = env.run(f"SELECT epoch_prop_pos({args}) AS a, ivo_epoch_prop_pos({args}) AS b,"
                      f" COORD2(EPOCH_PROP_POS({args})) AS c {ONE}")
    assert rows[0][0] == rows[0][1] and rows[0][2] == rows[0][0][1]
    assert t.columns[0].xtype == "point" and "epoch_prop_pos" not in t.sql.replace(
        "ivo_epoch_prop_pos", "")


def test_epoch_prop_pos_in_a_crossmatch_uses_the_fast_path(env):
    prop = ("epoch_prop_pos(u.ura, u.udec, NULL, CASE u.uid WHEN 1 THEN 500 "
            "WHEN 2 THEN -40 ELSE NULL END, 0, NULL, 2000, 2010)")
    adql = (f"SELECT u.uid, s.id FROM TAP_UPLOAD.mine AS u JOIN demo.stars AS s ON "
            f"1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE({prop}, 0.4/3600))")
    t, fast = env.run(adql)
    assert "_th_pos" in t.sql
    _, slow = env.run(adql, spatial_index=False)
    assert sorted(fast) == sorted(slow) == [(2, 4), (3, 9)]


# Barnard's star (Gaia DR3 4472832130942575872) and two Gaia DR3 sources, with their
# ICRS positions at J2016.0 from the Gaia archive.
GAIA_SOURCES = [
    (4472832130942575872, 269.44850252543836, 4.739420051112412),
    (5853498713190525696, 217.39232147200883, -62.67607511676666),  # Proxima Centauri
    (1576683529448755328, 193.50817847, 55.95978478),  # epsilon UMa (the demo's first row)
]


@pytest.mark.parametrize(("source_id", "ra", "dec"), GAIA_SOURCES)
@pytest.mark.parametrize("order", [0, 5, 8])
def test_gaia_healpix_index_against_the_position(env, source_id, ra, dec, order):
    # independent: the cell of the source's position, by cdshealpix. The source_id was
    # given from the position at an earlier epoch: the same cell at these orders (at
    # order 12, 52" cells, Barnard's star has moved into the next one since).
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix.nested import lonlat_to_healpix

    cell = int(lonlat_to_healpix(Longitude([ra] * u.deg), Latitude([dec] * u.deg), order)[0])
    t, rows = env.run(f"SELECT gaia_healpix_index({order}, {source_id}) AS h,"
                      f" ivo_healpix_index({order}, {ra}, {dec}) AS i {ONE}")
    assert rows == [(cell, cell)]
    assert (t.columns[0].datatype, t.columns[0].ucd) == ("long", "pos.healpix")


def test_gaia_healpix_index_arithmetic_and_limits(env):
    sid = 4472832130942575872
    _, rows = env.run(f"SELECT gaia_healpix_index(12, {sid}), gaia_healpix_index(0, {sid}),"
                      f" gaia_healpix_index(id + 11, {sid}), gaia_healpix_index(id + 12, {sid}),"
                      f" gaia_healpix_index(3, -5), gaia_healpix_index(3, NULL) {ONE}")
    assert rows == [(sid // 2**35, sid // (2**35 * 4**12), sid // 2**35, None, None, None)]
    _, rows = env.run(f"SELECT gaia_healpix_index(id + 2, {sid}) FROM demo.stars ORDER BY id")
    assert [r[0] for r in rows] == [sid // (2**35 * 4**(12 - n)) if n <= 12 else None
                                    for n in range(3, 13)]
    for bad in ("13", "-1", "1.5"):
        with pytest.raises(AdqlError, match="norder must be an integer from 0 to 12"):
            env.translate(f"SELECT gaia_healpix_index({bad}, 1) {ONE}")


def test_gaia_functions_in_capabilities_registry():
    assert UDFS["epoch_prop"].signature.startswith("epoch_prop(ra DOUBLE, dec DOUBLE, ")
    assert UDFS["epoch_prop"].signature.endswith(" -> DOUBLE[6]")
    assert UDFS["gaia_healpix_index"].signature == \
        "gaia_healpix_index(norder INTEGER, source_id BIGINT) -> BIGINT"
    assert UDFS["epoch_prop_pos"].alias_of == "ivo_epoch_prop_pos"


# --- the registry of ADQL functions and a backend's function mapping --------------------------
def test_every_adql_function_is_translated_and_every_udf_is_registered():
    from taphouse.adql.functions import PREDICATES, AdqlFunction
    from taphouse.adql.translator import _CALLS

    assert set(UDFS) <= set(AdqlFunction)  # safety lets through only members
    assert set(AdqlFunction) == set(UDFS) | set(_CALLS) | PREDICATES


def test_a_backend_maps_a_function_in_one_place(env):
    import sqlglot
    from sqlglot import exp

    from taphouse.adql.rules import Rules

    t = env.translate("SELECT ivo_healpix_index(5, ra, dec) AS a, "
                      "ivo_healpix_index(ivo_healpix_index(1, ra, dec), ra, dec) AS b "
                      "FROM demo.stars")
    assert t.sql.lower().count("ivo_healpix_index(") == 3
    # a backend whose function takes (ra, dec, order) under another name
    rules = Rules(dialect="duckdb", nodes={}, functions={
        "ivo_healpix_index": lambda a: exp.Anonymous(this="hpx", expressions=[a[1], a[2], a[0]])})
    tree = sqlglot.parse_one(t.sql, read="duckdb")
    rules.finish(tree)
    sql = tree.sql("duckdb")
    assert "ivo_healpix_index" not in sql.lower()
    assert 'HPX("stars"."ra", "stars"."dec", 5)' in sql
    # the inner call was rewritten before the outer one took it as its order
    assert 'HPX("stars"."ra", "stars"."dec", HPX("stars"."ra", "stars"."dec", 1))' in sql

