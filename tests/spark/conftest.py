"""The Spark backend on ``local[2]``: one SparkSession for the whole test session (the
JVM starts once), over the same small tables as the DuckDB ADQL tests, partitioned."""

from __future__ import annotations

from pathlib import Path

import pytest
from spark_env import SparkRun, adql_env


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


@pytest.fixture(scope="session")
def srun(penv, spark) -> SparkRun:
    tables = {("demo", "stars"): penv.stars, ("demo", "obs"): penv.obs,
              ("tap_upload", "mine"): penv.upload_meta}
    return SparkRun(spark, tables, {("tap_upload", "mine"): penv.upload})
