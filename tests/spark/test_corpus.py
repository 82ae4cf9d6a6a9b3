"""The ADQL corpus on Spark gives DuckDB's answers on the same partitioned files; the
service functions of the one registry give DuckDB's answers on Spark."""

from __future__ import annotations

import math

import pytest
from spark_env import arrow_rows
from test_functions import NO_VALUE, ONE, SCALARS, VALUED
from test_geometry import CONE_SPELLINGS, CONES
from test_partitioned import CORPUS
from test_postgres import SERVICE_INPUTS

pytestmark = pytest.mark.slow


def _key(r):
    return tuple((v is None, str(type(v).__name__), v) for v in r)


def _close(a, b) -> bool:
    """Equal, floats to 1e-12 relative (the JVM's and C's libm may differ in the last
    bit of a sine)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12) or (
            math.isnan(a) and math.isnan(b))
    return a == b and type(a) is type(b)


def test_stars_are_partitioned_and_read_as_parquet(penv, srun):
    t, rows = srun.run("SELECT COUNT(*) FROM demo.stars")
    assert penv.stars.path.suffix == ".hats" and rows == [(10,)]
    assert "global_temp" in t.sql and t.dialect == "spark"


@pytest.mark.parametrize("adql", CORPUS, ids=[c[:60] for c in CORPUS])
def test_corpus_same_as_duckdb(penv, srun, adql):
    _, expected = penv.run(adql)
    _, rows = srun.run(adql)
    if "ORDER BY" not in adql.upper():
        rows, expected = sorted(rows, key=_key), sorted(expected, key=_key)
    assert _close(rows, expected), (rows, expected)


def test_arithmetic_without_a_value_is_the_same_error(spark, srun):
    """x / 0, MOD(x, 0), LOG/SQRT of negatives...: PostgreSQL's error, as on DuckDB (Spark
    answered NULL or NaN); the values next to them unchanged (one job)."""
    for expr, message in NO_VALUE:
        with pytest.raises(Exception) as info:
            srun.run(f"SELECT {expr} AS v {ONE}")
        assert spark.describe_error(info.value) == message, expr
    adql = "SELECT " + ", ".join(f"{e} AS c{i}" for i, (e, _) in enumerate(VALUED)) + f" {ONE}"
    _, rows = srun.run(adql)
    for (expr, want), got in zip(VALUED, rows[0], strict=True):
        assert got == (want if want is None else pytest.approx(want)), expr


def test_scalar_functions_same_as_duckdb(penv, srun):
    """Every scalar of the function tests in one query (one Spark job)."""
    exprs = [e for e, _ in SCALARS]
    adql = "SELECT " + ", ".join(f"{e} AS c{i}" for i, e in enumerate(exprs)) + f" {ONE}"
    _, expected = penv.run(adql)
    t, rows = srun.run(adql)
    for i, (expr, want) in enumerate(SCALARS):
        got = rows[0][i]
        assert _close(got, expected[0][i]) or got == pytest.approx(expected[0][i]), (
            expr, got, expected[0][i], t.sql)
        if isinstance(want, float):
            assert got == pytest.approx(want, abs=1e-9), expr
        else:
            assert got == want, expr


@pytest.mark.parametrize("cone", CONES, ids=[str(c) for c in CONES])
def test_cones_same_as_duckdb(penv, srun, cone):
    ra, dec, r = cone
    # three spellings: the cone, the swapped CONTAINS, DISTANCE
    for spelling in (CONE_SPELLINGS[0], CONE_SPELLINGS[5], CONE_SPELLINGS[8]):
        adql = "SELECT id FROM demo.stars WHERE " + spelling.format(ra=ra, dec=dec, r=r)
        _, expected = penv.run(adql)
        t, rows = srun.run(adql)
        assert sorted(rows) == sorted(expected), (adql, t.sql)
        if spelling != CONE_SPELLINGS[8]:  # that one has the point as the centre
            assert any(n.startswith("cone on stars") for n in t.notes), t.sql
            assert "parquet.`" in t.sql  # only the partitions' files


def test_every_service_function_on_spark(penv, spark):
    """The registry's functions on Spark (Arrow UDFs) give DuckDB's answers."""
    from taphouse.engine.backend import Backend
    from taphouse.engine.functions import service_functions
    from taphouse.engine.spark import spark_type

    assert isinstance(spark, Backend)
    assert spark.functions() == service_functions()
    assert {f.name for f in spark.functions()} == set(SERVICE_INPUTS)
    calls, duck_calls, cases = [], [], []
    for f in spark.functions():
        for args in SERVICE_INPUTS[f.name]:
            calls.append(f"{f.name}(" + ", ".join(
                _spark_literal(a, spark_type(t)) for a, t in zip(args, f.params, strict=True))
                + ")")
            duck_calls.append(f"{f.name}(" + ", ".join(
                _duck_literal(a, t) for a, t in zip(args, f.params, strict=True)) + ")")
            cases.append((f.name, args))
    with spark.cursor() as cur:
        got_row = arrow_rows(spark.stream(cur, "SELECT " + ", ".join(calls)))[0]
    with penv.engine.cursor() as cur:
        want_row = cur.execute("SELECT " + ", ".join(duck_calls)).fetchone()
    for (name, args), got, want in zip(cases, got_row, want_row, strict=True):
        if name == "taphouse_healpix_neighbours" and want is not None:
            got, want = sorted(got), sorted(want)
        if isinstance(want, tuple):
            want = list(want)
        assert _close(got, want), (name, args, got, want)


def _spark_literal(value, spark_t: str) -> str:
    if value is None:
        return f"CAST(NULL AS {spark_t})"
    if isinstance(value, list):
        return "array(" + ", ".join(f"CAST({v!r} AS double)" for v in value) + ")"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return f"CAST({value!r} AS {spark_t})"


def _duck_literal(value, duck_t: str) -> str:
    if value is None:
        return f"CAST(NULL AS {duck_t})"
    if isinstance(value, list):
        return "[" + ", ".join(repr(float(v)) for v in value) + f"]::{duck_t}"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return f"CAST({value!r} AS {duck_t})"


def test_epoch_propagation_same_as_duckdb(penv, srun):
    adql = ("SELECT id, ivo_epoch_prop_pos(ra, dec, parallax, 10, -20, NULL, 2016, 2000),"
            " epoch_prop(ra, dec, parallax, 10, -20, 5, 2016, 1991.25) FROM demo.stars")
    _, expected = penv.run(adql)
    _, rows = srun.run(adql)
    rows, expected = sorted(rows), sorted(expected)
    assert [r[0] for r in rows] == [r[0] for r in expected]
    for got, want in zip(rows, expected, strict=True):
        assert got[1] == pytest.approx(list(want[1]), abs=1e-10)
        assert got[2] == pytest.approx(list(want[2]), abs=1e-10)


def test_java_and_file_functions_are_not_adql(srun):
    """Spark SQL can call Java methods and read files: ADQL reaches neither."""
    from taphouse.adql import AdqlError

    for adql in ("SELECT reflect('java.lang.System', 'getenv') FROM demo.stars",
                 "SELECT java_method('java.lang.Runtime', 'getRuntime') FROM demo.stars",
                 "SELECT * FROM parquet.\"/etc/passwd\"",
                 "SELECT input_file_name() FROM demo.stars"):
        with pytest.raises(AdqlError):
            srun.translate(adql)
