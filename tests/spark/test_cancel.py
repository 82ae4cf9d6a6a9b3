"""Cancelling Spark jobs (abort, time limit), the fair-scheduler pool of each user, and
the row cap of tables shipped to a query's session."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest
from spark_env import arrow_rows

from taphouse.engine.duckdb import EngineError
from taphouse.engine.spark import pool_name
from taphouse.query.cancel import CancelHandle

pytestmark = pytest.mark.slow

#: A query that runs for minutes on local[2]: 4e10 pairs of a 200k-row range.
SLOW_SQL = ("SELECT COUNT(*) FROM range(200000) AS a CROSS JOIN range(200000) AS b"
            " WHERE (a.id * 7 + b.id * 13) % 1000003 = 17")


def _run_cancelled(spark, cancel: CancelHandle) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    error = None
    with spark.cursor() as cur:
        cancel.attach(cur)
        try:
            list(spark.stream(cur, SLOW_SQL))
        except BaseException as exc:  # noqa: BLE001 - what the query path sees
            error = exc
        finally:
            cancel.detach()
    return time.monotonic() - started, error


def _quiet(spark) -> bool:
    return not spark.context.statusTracker().getActiveJobsIds()


def test_cancel_stops_the_spark_job(spark):
    cancel = CancelHandle()
    timer = threading.Timer(2.0, cancel.cancel, args=("aborted by the user",))
    timer.start()
    elapsed, error = _run_cancelled(spark, cancel)
    timer.cancel()
    assert error is not None and elapsed < 60, elapsed
    assert "cancel" in str(error).lower(), error
    deadline = time.monotonic() + 30
    while not _quiet(spark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _quiet(spark)  # no job left running on the cluster
    with spark.cursor() as cur:  # the backend still answers
        assert arrow_rows(spark.stream(cur, "SELECT 1 + 1")) == [(2,)]


def test_time_limit_stops_the_spark_job(spark):
    cancel = CancelHandle()
    cancel.deadline(1.5)
    elapsed, error = _run_cancelled(spark, cancel)
    cancel.finish()
    assert error is not None and elapsed < 60, elapsed
    assert cancel.reason is not None and "duration limit" in cancel.reason


def test_cancel_before_start_runs_nothing(spark):
    with spark.cursor() as cur:
        cur.interrupt()
        with pytest.raises(EngineError, match="cancelled"):
            spark.stream(cur, "SELECT 1")


def test_each_user_has_a_fair_pool(spark):
    sc = spark.context
    assert sc.getConf().get("spark.scheduler.mode") == "FAIR"
    for user in ("alice", "bob"):
        with spark.cursor(pool=pool_name(user)) as cur:
            assert arrow_rows(spark.stream(cur, "SELECT COUNT(*) FROM range(1000)")) == [
                (1000,)]
    jsc = sc._jsc.sc()
    for name in ("user:alice", "user:bob"):  # pools are made when a job names them
        assert jsc.getPoolForName(name).isDefined(), name
    assert not jsc.getPoolForName("user:carol").isDefined()
    assert pool_name("eve'; DROP") == "user:eve___DROP" and pool_name(None) == "anonymous"


def test_temp_table_row_cap(spark):
    table = pa.table({"x": list(range(11))})
    with spark.cursor() as cur:
        with pytest.raises(EngineError, match="at most 10"):
            spark.load_temp_table(cur, "too_big", table, max_rows=10)
        spark.load_temp_table(cur, "fits", table, max_rows=11)
        assert arrow_rows(spark.stream(cur, "SELECT SUM(x) FROM fits")) == [(55,)]


def test_temp_views_belong_to_one_query(spark):
    with spark.cursor({"mine": pa.table({"x": [1]})}) as cur:
        assert arrow_rows(spark.stream(cur, "SELECT x FROM mine")) == [(1,)]
    with spark.cursor() as other:
        with pytest.raises(Exception, match="(?i)mine"):
            spark.stream(other, "SELECT x FROM mine")
