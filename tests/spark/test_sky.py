"""A larger partitioned sky on Spark: cones at RA 0/360 and the poles against brute force
and DuckDB, partitions pruned (files a cone does not need are damaged: Spark never opens
them), a polygon, and a crossmatch across partition boundaries against brute force."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pyarrow as pa
import pytest
from spark_env import SparkRun, adql_env, files_read
from test_partitioned import SKY_COLUMNS, SKY_CONES, VERTICES, Sky, _angdist
from test_regions import REGIONS, _reference, _vec

from taphouse.catalogue.hats import partitions
from taphouse.catalogue.model import HEALPIX_COLUMN, ColumnMeta, TableMeta

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sky(tmp_path_factory) -> Sky:
    return Sky(adql_env.Env, tmp_path_factory.mktemp("sparksky"))


@pytest.fixture(scope="module")
def sky_spark(sky, spark):
    from taphouse.engine.spark import SparkBackend

    backend = SparkBackend(sky.env.store.tables_dir)  # the process's one SparkSession
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def srun(sky, sky_spark) -> SparkRun:
    return SparkRun(sky_spark, {("demo", "sky"): sky.part, ("flat", "sky"): sky.single})


def _read(sky, sql: str) -> list[str]:
    named = set(files_read(sql))
    return [f for f in partitions(sky.part.path).files if f in named]


@pytest.mark.parametrize("cone", SKY_CONES, ids=[str(c) for c in SKY_CONES])
def test_cone_on_spark_is_exact_and_pruned(sky, srun, cone):
    ra, dec, r = cone
    where = f"1=CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, {r}))"
    t, rows = srun.run(f"SELECT id FROM demo.sky WHERE {where}")
    _, duck = sky.run(f"SELECT id FROM demo.sky WHERE {where}")
    assert sorted(r[0] for r in rows) == sorted(r[0] for r in duck) == sky.brute_cone(
        ra, dec, r)
    read = _read(sky, t.sql)
    vertex = abs(dec) > 89 or (ra, dec) in VERTICES
    assert 1 <= len(read) <= (4 if vertex else 3), read


def test_single_file_version_is_exported_once(sky, srun, sky_spark):
    """A single-file (DuckDB) version is read from its Parquet export, written once."""
    _, rows = srun.run("SELECT COUNT(*), MIN(id), MAX(id) FROM flat.sky")
    assert rows == [(len(sky.ra), 0, len(sky.ra) - 1)]
    exported = list(sky_spark.cache_dir.glob("*.parquet"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    srun.run("SELECT COUNT(*) FROM flat.sky WHERE id < 10")
    assert exported[0].stat().st_mtime_ns == stamp


def test_pruned_partitions_are_never_opened(sky, sky_spark):
    """Damage every partition file a cone does not need: Spark still answers it (so it
    opened none of them), while a full scan fails on them."""
    e = sky.env
    copy_path = e.store.new_version_path("demo", "sky_spark_copy", suffix=".hats")
    shutil.copytree(sky.part.path, copy_path)
    copy = e.store.publish(TableMeta("demo", "sky_spark_copy", SKY_COLUMNS,
                                     nrows=sky.part.nrows, ra_column="ra", dec_column="dec",
                                     healpix_column=HEALPIX_COLUMN), copy_path)
    run = SparkRun(sky_spark, {("demo", "sky_spark_copy"): copy})
    ra, dec, r = 45, 41.81, 0.1
    adql = ("SELECT id FROM demo.sky_spark_copy WHERE"
            f" 1=CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, {r}))")
    t = run.translate(adql)
    files = partitions(copy.path).files
    keep = set(files) & set(files_read(t.sql))
    assert keep and len(keep) < len(files)
    for f in files:
        if f not in keep:
            with open(f, "wb") as damaged:
                damaged.write(b"not parquet")
    _, rows = run.run(adql)
    assert sorted(r[0] for r in rows) == sky.brute_cone(ra, dec, r)
    with pytest.raises(Exception, match="(?i)parquet|footer|corrupt"):
        run.run("SELECT COUNT(*) FROM demo.sky_spark_copy WHERE id >= 0")


def test_polygon_reads_only_its_partitions(sky, srun):
    poly = "POLYGON(44.5, 41.5, 45.5, 41.5, 45.5, 42.1, 44.5, 42.1)"
    adql = f"SELECT id FROM demo.sky WHERE 1=CONTAINS(POINT(ra, dec), {poly})"
    t, rows = srun.run(adql)
    _, duck = sky.run(adql)
    assert sorted(rows) == sorted(duck) and rows
    assert len(_read(sky, t.sql)) < len(partitions(sky.part.path).files) / 4


@pytest.mark.parametrize("name", list(REGIONS))
def test_regions_same_as_duckdb_and_pruned(sky, srun, name):
    """The BOXes and POLYGONs of tests/adql/test_regions.py (RA 0/360, the poles, concave,
    near a hemisphere) on Spark: the exact answer, DuckDB's, read from the partitions the
    region touches only."""
    adql = f"SELECT id FROM demo.sky WHERE 1 = CONTAINS(POINT(ra, dec), {REGIONS[name]})"
    t, rows = srun.run(adql)
    _, duck = sky.run(adql)
    expected = np.flatnonzero(_reference(name, _vec(sky.ra, sky.dec))).tolist()
    assert sorted(r[0] for r in rows) == sorted(r[0] for r in duck) == expected, name
    assert any(n.startswith("polygon on sky") for n in t.notes), t.notes
    assert 1 <= len(_read(sky, t.sql)) < len(partitions(sky.part.path).files)


def test_full_table_aggregate(sky, srun):
    adql = "SELECT COUNT(*), SUM(id), MIN(dec), MAX(dec) FROM demo.sky"
    _, rows = srun.run(adql)
    _, duck = sky.run(adql)
    assert rows == duck and rows[0][0] == len(sky.ra)


def _crossmatch(sky, sky_spark, pick: np.ndarray, seed: int):
    """Positions moved by up to 1.6 radii from the stars ``pick``, uploaded and joined
    with the sky on Spark; returns the translation, and the rows with brute force's."""
    rng = np.random.default_rng(seed)
    n = len(pick)
    r_deg = 5 / 3600
    bearing = rng.uniform(0, 2 * math.pi, n)
    dist = rng.uniform(0, 1.6 * r_deg, n)
    d0 = np.radians(sky.dec[pick])
    dec2 = np.degrees(np.arcsin(np.sin(d0) * np.cos(np.radians(dist))
                                + np.cos(d0) * np.sin(np.radians(dist)) * np.cos(bearing)))
    ra2 = (sky.ra[pick] + np.degrees(np.arctan2(
        np.sin(bearing) * np.sin(np.radians(dist)) * np.cos(d0),
        np.cos(np.radians(dist)) - np.sin(d0) * np.sin(np.radians(dec2))))) % 360
    upload = pa.table({"oid": np.arange(n, dtype=np.int64), "ora": ra2, "odec": dec2})
    meta = TableMeta("tap_upload", "moved", [
        ColumnMeta("oid", "long"), ColumnMeta("ora", "double", unit="deg"),
        ColumnMeta("odec", "double", unit="deg")], kind="upload", ra_column="ora",
        dec_column="odec", nrows=n)
    run = SparkRun(sky_spark, {("demo", "sky"): sky.part, ("tap_upload", "moved"): meta},
                   {("tap_upload", "moved"): upload})
    adql = ("SELECT s.id, m.oid FROM demo.sky AS s JOIN tap_upload.moved AS m ON "
            f"1=CONTAINS(POINT(s.ra, s.dec), CIRCLE(m.ora, m.odec, {r_deg!r}))")
    t, rows = run.run(adql)
    from taphouse.adql import inline_name
    from taphouse.engine.spark import _precompute

    with sky_spark.cursor({inline_name(meta): upload}) as cur:
        # the upload's cells are computed on the driver: no Python UDF left in the SQL
        ran = _precompute(sky_spark, cur, t.sql).lower()
        udfs = "neighbours" in ran or "ivo_healpix_index" in ran
        assert udfs == (sky_spark.precompute_rows == 0), ran[:300]
    expected = set()
    order = np.argsort(sky.dec)
    decs = sky.dec[order]
    for j in range(n):
        band = order[np.searchsorted(decs, dec2[j] - r_deg):
                     np.searchsorted(decs, dec2[j] + r_deg, side="right")]
        d = _angdist(sky.ra[band], sky.dec[band], ra2[j], dec2[j])
        expected.update((int(i), j) for i in band[d <= r_deg])
    assert len(expected) > n / 2
    return t, rows, expected


def test_crossmatch_against_brute_force(sky, sky_spark):
    """An upload all over the sky (pairs straddle partition edges, RA 0/360 and the
    poles) joined on Spark: the answer equals brute force."""
    pick = np.random.default_rng(5).choice(len(sky.ra), 1_500, replace=False)
    t, rows, expected = _crossmatch(sky, sky_spark, pick, 5)
    assert any("crossmatch" in note for note in t.notes), t.notes
    assert set(rows) == expected and len(rows) == len(expected)


def test_crossmatch_partition_by_partition(sky, sky_spark):
    """An upload in one corner of the sky (around RA 0, Dec 0: four base cells meet)
    is joined with the partitions it touches and their margins only."""
    crowd = np.flatnonzero((np.abs(sky.dec) < 1) & ((sky.ra < 0.5) | (sky.ra > 359.5)))
    pick = np.random.default_rng(6).choice(crowd, 400, replace=False)
    t, rows, expected = _crossmatch(sky, sky_spark, pick, 6)
    assert any("partition by partition" in note for note in t.notes), t.notes
    assert set(rows) == expected and len(rows) == len(expected)
    # its partitions and margins are read by one scan (rows tagged by their file)
    assert t.sql.count("parquet.`") == 1 and "_metadata.file_path" in t.sql
    assert len(files_read(t.sql)) > 2 and any("margin" in f for f in files_read(t.sql))
    # the same through the Python UDFs on the executors (an upload over the
    # precompute cap)
    sky_spark.precompute_rows = 0
    try:
        _, rows_udf, _ = _crossmatch(sky, sky_spark, pick, 6)
    finally:
        sky_spark.precompute_rows = 200_000
    assert set(rows_udf) == expected and len(rows_udf) == len(expected)
