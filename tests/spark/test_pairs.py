"""A crossmatch of two partitioned catalogues on Spark, partition-aligned: per-pixel tasks
read a left partition and the right partition with its margin (no shuffle of either
table), against a DuckDB brute-force crossmatch of the same rows (partitions of
different orders, rows at partition borders, RA 0/360 and the poles, a radius just
under the margin) and the DuckDB backend's answers to the same ADQL."""

from __future__ import annotations

import math
from contextlib import contextmanager

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from spark_env import SparkRun, adql_env
from test_partitioned import Sky, publish_partitioned

from taphouse.catalogue.hats import PartitionOptions, pair_tasks
from taphouse.catalogue.model import HEALPIX_COLUMN, ColumnMeta, TableMeta

pytestmark = pytest.mark.slow

#: Just under the 10 arcsec margins of both catalogues.
RADIUS = 9.9 / 3600
B_COLUMNS = [ColumnMeta("bid", "long", ucd="meta.id;meta.main"),
             ColumnMeta("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main"),
             ColumnMeta("dec", "double", unit="deg", ucd="pos.eq.dec;meta.main"),
             ColumnMeta("mag", "double", unit="mag")]


def _moved(ra, dec, rng, most: float):
    """Positions moved from ``(ra, dec)`` by up to ``most`` degrees in any direction."""
    n = len(ra)
    bearing = rng.uniform(0, 2 * math.pi, n)
    dist = np.radians(rng.uniform(0, most, n))
    d0 = np.radians(dec)
    dec2 = np.arcsin(np.sin(d0) * np.cos(dist) + np.cos(d0) * np.sin(dist) * np.cos(bearing))
    ra2 = ra + np.degrees(np.arctan2(np.sin(bearing) * np.sin(dist) * np.cos(d0),
                                     np.cos(dist) - np.sin(d0) * np.sin(dec2)))
    return ra2 % 360, np.degrees(dec2)


class Pairs:
    """The test sky (40,000 rows, partitions of orders 1-8, crowds at RA 0, the poles and
    a base-cell border) and two catalogues of positions moved from its rows by up to 1.5
    radii: ``near`` all over the sky (coarser partitions, orders up to 6) and ``clumps``
    only in two crowds (partitions of order 8 inside the sky's, and regions with none)."""

    def __init__(self, root) -> None:
        self.sky = Sky(adql_env.Env, root)
        rng = np.random.default_rng(11)
        sky = self.sky
        pick = rng.choice(len(sky.ra), 12_000, replace=False)
        self.near = self._publish("near", pick, rng, PartitionOptions(
            max_rows=2_500, highest_order=6, margin_arcsec=10))
        crowds = np.flatnonzero(((sky.ra > 43.9) & (sky.ra < 46.1) & (sky.dec > 41.2))
                                | (sky.dec < -89.5))
        pick = rng.choice(crowds, len(crowds) * 2 // 5, replace=False)
        self.clumps = self._publish("clumps", pick, rng, PartitionOptions(
            max_rows=150, highest_order=8, margin_arcsec=10))

    def _publish(self, name: str, pick, rng, options: PartitionOptions):
        e = self.sky.env
        ra, dec = _moved(self.sky.ra[pick], self.sky.dec[pick], rng, 1.5 * RADIUS)
        rows = pa.table({"bid": np.arange(len(pick), dtype=np.int64), "ra": ra, "dec": dec,
                         "mag": rng.uniform(10, 20, len(pick))})
        path = e.store.new_version_path("demo", name)
        sql = ('SELECT bid, ra, dec, mag, ivo_healpix_index(29, ra, dec) AS "_healpix_29"'
               " FROM b_rows")
        with e.engine.cursor({"b_rows": rows}) as cur:
            e.engine.write_table(sql, path, order_by='"_healpix_29"', cursor=cur)
        meta = publish_partitioned(e.store, TableMeta(
            "demo", name, B_COLUMNS, nrows=len(pick), ra_column="ra", dec_column="dec",
            healpix_column=HEALPIX_COLUMN, path=path), options)
        setattr(self, f"{name}_rows", rows)
        return meta

    def tables(self) -> dict:
        return {("demo", "sky"): self.sky.part, ("demo", "near"): self.near,
                ("demo", "clumps"): self.clumps}

    def brute(self, name: str, radius: float) -> set[tuple[int, int]]:
        """Every (sky id, bid) pair within ``radius`` degrees: DuckDB, no HEALPix (a band
        join on declination and the haversine distance)."""
        con = duckdb.connect()
        con.register("a", pa.table({"id": np.arange(len(self.sky.ra)), "ra": self.sky.ra,
                                    "dec": self.sky.dec}))
        con.register("b", getattr(self, f"{name}_rows"))
        found = con.execute(f"""
            SELECT a.id, b.bid FROM a JOIN b ON b.dec BETWEEN a.dec - {radius!r}
                AND a.dec + {radius!r}
            WHERE 2 * asin(sqrt(pow(sin(radians(b.dec - a.dec) / 2), 2) + cos(radians(a.dec))
                * cos(radians(b.dec)) * pow(sin(radians(b.ra - a.ra) / 2), 2)))
                <= radians({radius!r})""").fetchall()
        con.close()
        return {(int(i), int(j)) for i, j in found}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Pairs:
    return Pairs(tmp_path_factory.mktemp("sparkpairs"))


@pytest.fixture(scope="module")
def pair_spark(pairs, spark):
    from taphouse.engine.spark import SparkBackend

    backend = SparkBackend(pairs.sky.env.store.tables_dir)  # the process's one SparkSession
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def prun(pairs, pair_spark) -> SparkRun:
    return SparkRun(pair_spark, pairs.tables())


@contextmanager
def _task_bytes(n: int):
    from taphouse.engine import spark as module

    old, module.PAIR_TASK_BYTES = module.PAIR_TASK_BYTES, n
    try:
        yield
    finally:
        module.PAIR_TASK_BYTES = old


def _duck(pairs, adql: str):
    return pairs.sky.run(adql, pairs.tables())[1]


@pytest.mark.parametrize("name", ["near", "clumps"])
def test_pair_crossmatch_equals_brute_force(pairs, prun, name):
    adql = (f"SELECT s.id, b.bid FROM demo.sky AS s JOIN demo.{name} AS b ON "
            f"1=CONTAINS(POINT(s.ra, s.dec), CIRCLE(b.ra, b.dec, {RADIUS!r}))")
    t, rows = prun.run(adql)
    assert any("partition-aligned" in n for n in t.notes), t.notes
    expected = pairs.brute(name, RADIUS)
    assert len(expected) > 1_000
    assert set(rows) == expected and len(rows) == len(expected)
    # pairs across RA 0/360, at both poles, and across partition borders
    sky = pairs.sky
    ids = np.array([i for i, _ in expected])
    if name == "near":
        assert (sky.dec[ids] > 89.5).any() and (np.abs(sky.ra[ids] - 180) > 179.9).any()
    assert (sky.dec[ids] < -89.5).any()


def test_pair_tasks_align_partitions_of_different_orders(pairs):
    """Every kind of task occurs: a sky partition inside a right partition, one cut along
    smaller right partitions, and the rest of one where the right table has no row."""
    from taphouse.catalogue.hats import partitions

    def orders(meta) -> set[int]:
        parts = partitions(meta.path)
        return {29 - (int(h - lo + 1).bit_length() - 1) // 2
                for lo, h in zip(parts.lows, parts.highs, strict=True)}

    assert len(orders(pairs.sky.part)) > 3 and orders(pairs.sky.part) != orders(pairs.near)
    assert max(orders(pairs.near)) < max(orders(pairs.clumps))
    for name, right in (("near", pairs.near), ("clumps", pairs.clumps)):
        tasks = pair_tasks(pairs.sky.part.path, right.path, RADIUS, 12)
        assert tasks is not None
        whole = [t for t in tasks if t.left_in is None and t.right_in is None]
        cut = [t for t in tasks if t.left_in is not None]
        rest = [t for t in tasks if t.right_in is not None]
        assert whole and (cut or name == "near") and (rest or name == "near"), name
        assert any(len(t.right) == 2 for t in whole + cut)  # a partition and its margin
    assert pair_tasks(pairs.sky.part.path, pairs.near.path, 10.5 / 3600, 12) is None


def test_pair_crossmatch_shuffles_neither_table(pairs, prun, pair_spark):
    """The pairs come from one task per aligned pixel over a list of tasks: the plan
    reads no catalogue file through Spark and has no exchange (shuffle)."""
    from taphouse.engine.spark import _pair_joins

    adql = ("SELECT s.id, b.bid, b.mag FROM demo.sky AS s JOIN demo.near AS b ON "
            f"DISTANCE(POINT(s.ra, s.dec), POINT(b.ra, b.dec)) < {RADIUS!r}")
    t = prun.translate(adql)
    with pair_spark.cursor() as cur:
        df = cur.sql(_pair_joins(pair_spark, cur, t.sql))
        plan = df._jdf.queryExecution().executedPlan().toString()
        parts = df.rdd.getNumPartitions()
        tasks, groups = cur.pair_tasks, cur.pair_groups
    assert "MapInArrow" in plan, plan
    assert "Exchange" not in plan and "FileScan" not in plan and "parquet" not in plan.lower()
    assert tasks == len(pair_tasks(pairs.sky.part.path, pairs.near.path, RADIUS, 12))
    # one pixel a Spark task for partitions of PAIR_TASK_BYTES; these small ones are
    # grouped into about two Spark tasks a core (local[2])
    assert parts == groups and 4 <= groups <= 6 and tasks > 100
    with pair_spark.cursor() as cur, _task_bytes(1):
        assert cur.sql(_pair_joins(pair_spark, cur, t.sql)).rdd.getNumPartitions() == tasks


@pytest.mark.parametrize("adql", [
    # a WHERE term on the joined rows, ORDER BY and TOP
    "SELECT TOP 25 s.id, b.bid, b.mag, DISTANCE(POINT(s.ra, s.dec), POINT(b.ra, b.dec))"
    " AS d FROM demo.sky AS s JOIN demo.near AS b ON 1=CONTAINS(POINT(b.ra, b.dec),"
    f" CIRCLE(s.ra, s.dec, {RADIUS!r})) WHERE b.mag < 15 AND s.dec > -60"
    " ORDER BY b.mag, s.id",
    # aggregates over the pairs, the radius in the WHERE clause
    "SELECT COUNT(*), COUNT(DISTINCT b.bid), MIN(s.id), MAX(b.mag)"
    " FROM demo.sky AS s, demo.near AS b"
    f" WHERE DISTANCE(POINT(s.ra, s.dec), POINT(b.ra, b.dec)) <= {RADIUS!r}",
    "SELECT FLOOR(s.dec / 30) AS band, COUNT(*) AS n FROM demo.sky AS s JOIN demo.clumps"
    f" AS b ON 1=CONTAINS(POINT(s.ra, s.dec), CIRCLE(b.ra, b.dec, {RADIUS!r}))"
    " GROUP BY FLOOR(s.dec / 30) ORDER BY band",
    # every column of both
    "SELECT * FROM demo.sky AS s JOIN demo.near AS b ON 1=CONTAINS(POINT(s.ra, s.dec),"
    f" CIRCLE(b.ra, b.dec, {RADIUS!r})) WHERE b.bid < 300",
])
def test_pair_crossmatch_query_same_as_duckdb(pairs, prun, adql):
    t, rows = prun.run(adql)
    assert any("partition-aligned" in n for n in t.notes), t.notes
    duck = _duck(pairs, adql)
    if "ORDER BY" not in adql:
        rows, duck = sorted(rows), sorted(duck)
    assert len(rows) == len(duck) and rows and rows[0][0]
    for got, want in zip(rows, duck, strict=True):
        assert got == pytest.approx(want, rel=1e-12), (got, want)


def test_radius_over_the_margins_falls_back(pairs, prun):
    """A radius over both margins: said in the notes, joined on cells as before (the
    same answer)."""
    radius = 12 / 3600
    adql = ("SELECT s.id, b.bid FROM demo.sky AS s JOIN demo.clumps AS b ON "
            f"1=CONTAINS(POINT(s.ra, s.dec), CIRCLE(b.ra, b.dec, {radius!r}))")
    t, rows = prun.run(adql)
    assert any("exceeds the margins" in n for n in t.notes), t.notes
    assert not any("partition-aligned" in n for n in t.notes)
    assert set(rows) == pairs.brute("clumps", radius)
