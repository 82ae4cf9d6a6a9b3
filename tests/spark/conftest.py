"""The Spark backend on ``local[2]``: one SparkSession for the whole test session (the
JVM starts once), over the same small tables as the DuckDB ADQL tests, partitioned."""

from __future__ import annotations

from pathlib import Path

import pytest
from spark_env import SparkRun, adql_env, running_tasks, tasks_stop


@pytest.fixture(scope="session")
def spark_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spark")


@pytest.fixture(scope="session")
def penv(spark_root):
    """The ADQL test tables, positioned ones partitioned (one star per partition)."""
    from test_partitioned import partitioned_env

    return partitioned_env(adql_env.Env, spark_root / "small")


@pytest.fixture(scope="session")
def spark(penv):
    """The Spark backend over the partitioned test tables (local[2])."""
    from taphouse.engine.spark import SparkBackend

    backend = SparkBackend(penv.store.tables_dir, master="local[2]")
    yield backend
    backend.close()


@pytest.fixture(autouse=True)
def no_task_left_running(request):
    """After each test of the Spark backend, no Spark task runs on: a task its test
    cancelled but that goes on (Spark stops tasks cooperatively) would take a core for
    the rest of the session (seen: a cancelled triple CROSS JOIN's two tasks: the next
    test waited 622 s for a free slot, the rest of the suite, ~25 min, ran on one core)."""
    yield
    if "spark" in request.fixturenames:
        backend = request.getfixturevalue("spark")
        assert tasks_stop(backend), f"{running_tasks(backend)} Spark task(s) still running"


@pytest.fixture(scope="session")
def srun(penv, spark) -> SparkRun:
    tables = {("demo", "stars"): penv.stars, ("demo", "obs"): penv.obs,
              ("tap_upload", "mine"): penv.upload_meta}
    return SparkRun(spark, tables, {("tap_upload", "mine"): penv.upload})


def _cli(*argv: str) -> None:
    from taphouse.cli import main

    assert main([*argv]) == 0, argv


@pytest.fixture(scope="session")
def side_by_side(tmp_path_factory, spark):
    """A server whose database ``flat`` is served by DuckDB and ``sky`` by Spark (the
    same rows); ``spark`` makes sure the process's SparkSession is the tests' local[2]."""
    from servers import start_live
    from taphouse.catalogue.synth import write_synthetic

    base = tmp_path_factory.mktemp("sparktap")
    data = base / "data"
    parquet = base / "stars.parquet"
    write_synthetic(parquet, 20_000, seed=4)
    common = ["--data-dir", str(data), "--init", "ingest", str(parquet), "-t", "stars", "-q"]
    _cli(*common, "-d", "flat")
    _cli(*common, "-d", "sky", "--partitioned", "--partition-rows", "1500",
         "--backend", "spark")
    server = start_live(data, spark_master="local[2]")
    yield server
    server.stop()
