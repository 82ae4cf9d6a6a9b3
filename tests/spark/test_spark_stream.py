"""Results stream back from Spark a window of partitions at a time: the first batch
arrives before the rest of the query has run, and a reader that stops (MAXREC) stops
the query — the driver never holds more than one window of the result."""

from __future__ import annotations

import pyarrow as pa
import pytest
from spark_env import arrow_rows

from taphouse.engine.spark import _strip_outer_limit

pytestmark = pytest.mark.slow

#: 16 partitions of 10,000 rows each (Spark's range with a partition count).
WIDE = "SELECT id, id * 2 AS twice, CAST(id AS STRING) AS s FROM range(0, 160000, 1, 16)"


def _tasks_done(spark, group: str) -> int:
    """Tasks the query's jobs have completed so far (the job group of its cursor)."""
    tracker = spark.context.statusTracker()
    done = 0
    for job in tracker.getJobIdsForGroup(group):
        info = tracker.getJobInfo(job)
        for stage in info.stageIds if info else ():
            s = tracker.getStageInfo(stage)
            done += s.numCompletedTasks if s else 0
    return done


def test_first_batch_before_the_query_has_run(spark):
    with spark.cursor() as cur:
        reader = spark.stream(cur, WIDE, batch_rows=4000)
        first = next(reader)
        # only the first window (2 partitions on local[2]) has run
        assert first.num_rows == 4000 and first.column(0)[0].as_py() == 0
        assert reader.jobs == 1 and _tasks_done(spark, cur.group) <= 2
        rest = list(reader)
        assert reader.jobs == 8 and _tasks_done(spark, cur.group) == 16
    got = pa.Table.from_batches([first, *rest])
    # every row once, in partition order; no batch over batch_rows
    assert got.column("id").to_pylist() == list(range(160000))
    assert got.column("s")[12345].as_py() == "12345"
    assert max(b.num_rows for b in rest) <= 4000


def test_maxrec_stops_the_query_early(spark):
    """LIMIT (MAXREC + 1) without ORDER BY is read while streaming: one window runs,
    not every partition's share of the limit."""
    with spark.cursor() as cur:
        reader = spark.stream(cur, WIDE + " LIMIT 11")
        rows = arrow_rows(reader)
        assert len(rows) == 11 and reader.jobs == 1
        assert _tasks_done(spark, cur.group) <= 2


def test_reader_closed_runs_nothing_more(spark):
    with spark.cursor() as cur:
        reader = spark.stream(cur, WIDE)
        next(reader)
        reader.close()
        assert list(reader) == [] and reader.jobs == 1
        assert _tasks_done(spark, cur.group) <= 2


def test_order_kept_across_windows(spark):
    """A sorted result (range-partitioned by Spark) comes back in order over several
    windows; ORDER BY with LIMIT keeps Spark's top-n."""
    with spark.cursor() as cur:
        cur.session.conf.set("spark.sql.adaptive.enabled", "false")  # 4 sorted partitions
        reader = spark.stream(cur, "SELECT id FROM range(0, 50000, 1, 8) ORDER BY -id")
        ids = [r[0] for r in arrow_rows(reader)]
        assert reader.jobs >= 2
    assert ids == list(range(49999, -1, -1))
    with spark.cursor() as cur:
        top = arrow_rows(spark.stream(
            cur, "SELECT id FROM range(0, 50000, 1, 8) ORDER BY id % 1000, id LIMIT 5"))
    assert [r[0] for r in top] == [0, 1000, 2000, 3000, 4000]


def test_empty_result_has_its_schema(spark):
    with spark.cursor() as cur:
        reader = spark.stream(cur, "SELECT id, CAST(id AS DOUBLE) AS x FROM range(0, 10, 1, 4)"
                                   " WHERE id < 0")
        assert list(reader) == []
    assert reader.schema.names == ["id", "x"] and reader.schema.field("x").type == pa.float64()


@pytest.mark.parametrize("sql, expected", [
    ("SELECT a FROM t LIMIT 11", ("SELECT a FROM t", 11)),
    ("SELECT a FROM t ORDER BY a LIMIT 11", None),
    ("SELECT a FROM (SELECT a FROM t LIMIT 3) AS q", None),
    ("SELECT a FROM t LIMIT 11 OFFSET 2", None),
    ("SELECT a FROM t UNION ALL SELECT a FROM u LIMIT 4",
     ("SELECT a FROM t UNION ALL SELECT a FROM u", 4)),
    ("SELECT a FROM (SELECT a FROM t ORDER BY a) AS q LIMIT 4",
     ("SELECT a FROM (SELECT a FROM t ORDER BY a) AS q", 4)),
])
def test_outer_limit_read_while_streaming(sql, expected):
    assert _strip_outer_limit(sql) == expected
