"""Cancelling Spark jobs (abort, time limit), the fair-scheduler pool of each user, and
the row cap of tables shipped to a query's session."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest
from spark_env import arrow_rows, tasks_stop

from taphouse.engine.errors import EngineError, TempTableTooLarge
from taphouse.engine.spark import pool_name
from taphouse.query.cancel import CancelHandle

pytestmark = pytest.mark.slow

#: A query that runs for minutes on local[2]: 4e10 pairs of a 200k-row range (a cancel
#: that arrives while it is planned, before its job starts, must still stop it).
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
    assert tasks_stop(spark)  # ... and none of its tasks
    with spark.cursor() as cur:  # the backend still answers
        assert arrow_rows(spark.stream(cur, "SELECT 1 + 1")) == [(2,)]


def test_time_limit_stops_the_spark_job(spark):
    cancel = CancelHandle()
    cancel.deadline(1.5)
    elapsed, error = _run_cancelled(spark, cancel)
    cancel.finish()
    assert error is not None and elapsed < 60, elapsed
    assert cancel.reason is not None and "duration limit" in cancel.reason
    assert tasks_stop(spark)


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
        with pytest.raises(TempTableTooLarge, match="more than 10 rows"):
            spark.load_temp_table(cur, "too_big", table, max_rows=10)
        assert spark.load_temp_table(cur, "fits", table.to_batches(max_chunksize=4),
                                     max_rows=11) == 11
        assert arrow_rows(spark.stream(cur, "SELECT SUM(x) FROM fits")) == [(55,)]


def test_temp_views_belong_to_one_query(spark):
    with spark.cursor({"mine": pa.table({"x": [1]})}) as cur:
        assert arrow_rows(spark.stream(cur, "SELECT x FROM mine")) == [(1,)]
    with spark.cursor() as other:
        with pytest.raises(Exception, match="(?i)mine"):
            spark.stream(other, "SELECT x FROM mine")


def test_backend_limit_stops_the_query(spark):
    with spark.cursor() as cur:
        spark.limit(cur, seconds=1.5)
        started = time.monotonic()
        with pytest.raises(Exception) as info:
            list(spark.stream(cur, SLOW_SQL))
        assert time.monotonic() - started < 60
        assert spark.describe_error(info.value).startswith("the query was interrupted")


def test_errors_are_described_without_internals(spark, srun):
    with spark.cursor() as cur:
        with pytest.raises(Exception) as info:
            spark.stream(cur, "SELECT no_such_column FROM range(1)")
    message = spark.describe_error(info.value)
    assert message.startswith("the query cannot be run") and "no_such_column" in message
    assert "SQLSTATE" not in message and "[" not in message.split(":")[0]
    # a service function refusing a value: its own words, no traceback
    t = srun.translate("SELECT id FROM demo.stars WHERE 1 = CONTAINS(POINT(ra, dec),"
                       " CIRCLE(ra, dec, 1))")
    with spark.cursor() as cur:
        with pytest.raises(Exception) as info:
            spark.stream(cur, "SELECT taphouse_contains(array(1.0D, 2.0D),"
                         " array(1.0D, 2.0D, 3.0D, 4.0D)) FROM range(1)")
    message = spark.describe_error(info.value)
    assert message.startswith("the query failed while computing a function"), message
    assert "Traceback" not in message and "/" not in message, message
    assert t.sql
