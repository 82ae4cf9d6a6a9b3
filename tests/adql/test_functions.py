"""Math, string, conditional, CAST, aggregate functions, IN_UNIT and the service UDFs."""

from __future__ import annotations

import math

import pytest

from taphouse.adql import AdqlError
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
    ("ivo_interval_overlaps(1, 3, 2, 5)", 1), ("ivo_interval_overlaps(1, 3, 4, 5)", 0),
]


@pytest.mark.parametrize(("expr", "expected"), SCALARS, ids=[s[0] for s in SCALARS])
def test_scalar(env, expr, expected):
    _, rows = env.run(f"SELECT {expr} {ONE}")
    value = rows[0][0]
    if isinstance(expected, float):
        assert value == pytest.approx(expected, abs=1e-9)
    else:
        assert value == expected


def test_rand_between_0_and_1(env):
    _, rows = env.run("SELECT RAND(), RAND(42) FROM demo.stars")
    assert all(0 <= a < 1 and 0 <= b < 1 for a, b in rows)


def test_aggregates_group_by_having(env):
    t, rows = env.run("SELECT band, COUNT(*) AS n, SUM(flux) AS s, AVG(flux) AS a, "
                      "MIN(flux) AS lo, MAX(flux) AS hi, COUNT(DISTINCT id) AS ids "
                      "FROM demo.obs GROUP BY band HAVING COUNT(*) >= 1 ORDER BY band")
    assert rows == [("G", 3, 5.0, 5.0 / 3, 0.5, 3.0, 3), ("K", 1, 9.0, 9.0, 9.0, 9.0, 1),
                    ("R", 1, 2.5, 2.5, 2.5, 2.5, 1)]
    cols = {c.name: c for c in t.columns}
    assert cols["n"].datatype == "long" and cols["n"].unit is None
    assert cols["s"].unit == "mJy" and cols["a"].unit == "mJy" and cols["hi"].ucd == "phot.flux"


def test_group_by_alias_and_expression(env):
    _, rows = env.run("SELECT FLOOR(mag) AS m, COUNT(*) FROM demo.stars GROUP BY m ORDER BY m "
                      "OFFSET 5")
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


def test_udf_registry_signatures():
    for name in ("ivo_healpix_index", "ivo_hasword", "ivo_nocasematch", "ivo_epoch_prop_pos"):
        udf = UDFS[name]
        assert udf.signature.startswith(name + "(") and " -> " in udf.signature
        assert udf.description
    assert UDFS["ivo_healpix_index"].signature == \
        "ivo_healpix_index(order INTEGER, ra DOUBLE, dec DOUBLE) -> BIGINT"
