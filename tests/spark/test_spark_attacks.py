"""ADQL sent over HTTP to a Spark-backed database reaches no file, host setting or JVM
through Spark SQL: Java calls, file tables, table functions, SET, other requests' views
and Spark's ``${...}`` variable substitution are refused or stay plain text; each user's
queries run in their own fair-scheduler pool; a job's time limit stops its Spark job."""

from __future__ import annotations

import time

import httpx
import pytest
from lxml import etree
from spark_env import tasks_stop

from accounts import PASSWORD, new_user
from taphouse.engine.spark import pool_name

pytestmark = pytest.mark.slow

#: ADQL that would read a file, call the JVM, change the session or read another
#: request's view if it reached Spark SQL as it is.
ATTACKS = {
    "reflect": "SELECT reflect('java.lang.System', 'getenv', 'HOME') FROM sky.stars",
    "java_method": "SELECT java_method('java.lang.System', 'getProperty', 'user.home')"
                   " FROM sky.stars",
    "input_file_name": "SELECT TOP 1 input_file_name() FROM sky.stars",
    "metadata_column": "SELECT TOP 1 _metadata.file_path FROM sky.stars",
    "read_files": "SELECT * FROM read_files('/etc/passwd')",
    "range_tvf": "SELECT * FROM range(10)",
    "parquet_path": 'SELECT * FROM parquet."/etc/passwd"',
    "text_path": 'SELECT * FROM "text"."/etc/passwd"',
    "relative_file": "SELECT * FROM csv.passwd",
    "sort_by_file": "SELECT source_id FROM sky.stars SORT BY (SELECT COUNT(*) FROM"
                    " text.passwd)",
    "distribute_by_view": "SELECT source_id FROM sky.stars DISTRIBUTE BY (SELECT 1 FROM"
                          " global_temp.v1)",
    "global_temp": "SELECT * FROM global_temp.v1",
    "identifier_clause": "SELECT * FROM IDENTIFIER('parquet.`/etc/passwd`')",
    "set": "SET spark.sql.variable.substitute = true",
    "reset": "RESET",
    "declare": "DECLARE VARIABLE v STRING DEFAULT '1'",
    "another_request_upload": "SELECT * FROM tap_upload.up",
    "inline_view_name": "SELECT * FROM _inline_tap_upload_up",
    "current_user": "SELECT current_user() FROM sky.stars",
    "hint": "SELECT /*+ REPARTITION(100000) */ source_id FROM sky.stars",
    "try_cast": "SELECT TRY_CAST(ra AS INTEGER) FROM sky.stars",
}


def _sync(server, query: str, auth=None, **extra: str) -> httpx.Response:
    return httpx.post(server.tap + "/sync", auth=auth, timeout=300, data={
        "LANG": "ADQL", "REQUEST": "doQuery", "FORMAT": "csv", "QUERY": query, **extra})


@pytest.mark.parametrize("adql", list(ATTACKS.values()), ids=list(ATTACKS))
def test_attack_is_refused_before_spark(side_by_side, adql):
    r = _sync(side_by_side, adql)
    assert r.status_code == 400, (r.status_code, r.text[:300])
    # an error document (it quotes the query), no rows: nothing of a file or the JVM
    doc = etree.fromstring(r.content)
    ns = {"v": doc.nsmap.get(None, "")}
    assert doc.find(".//v:INFO[@name='QUERY_STATUS']", ns).get("value") == "ERROR"
    assert doc.find(".//v:TABLE", ns) is None and "root:x:" not in r.text


def test_spark_variable_substitution_is_off(side_by_side):
    """Spark replaces ``${env:X}``, ``${system:x}`` and ``${spark.conf}`` anywhere in SQL
    text, string literals and quoted names included: ADQL strings and column names must
    come back as written, never as the server's environment or settings."""
    texts = ["${env:HOME}", "${system:user.name}", "${spark.app.name}",
             "${hiveconf:spark.master}"]
    query = ("SELECT TOP 1 " + ", ".join(f"'{t}' AS c{i}" for i, t in enumerate(texts))
             + ', 1 AS "${env:PATH}" FROM sky.stars')
    r = _sync(side_by_side, query)
    assert r.status_code == 200, r.text
    header, row = r.text.splitlines()[:2]
    assert row.split(",") == [*texts, "1"]
    assert header.split(",")[-1] == "${env:PATH}"


def test_two_users_queries_run_in_their_own_pools(side_by_side, spark):
    jsc = spark.context._jsc.sc()
    users = [new_user(side_by_side, "pool") for _ in range(2)]
    for user in users:
        assert not jsc.getPoolForName(pool_name(user)).isDefined()
        r = _sync(side_by_side, "SELECT COUNT(*) FROM sky.stars WHERE dec > 0",
                  auth=(user, PASSWORD))
        assert r.status_code == 200, r.text
    # a pool exists once a job has named it: each user's query ran in its own
    for user in users:
        assert jsc.getPoolForName(pool_name(user)).isDefined(), user
    assert pool_name(users[0]) != pool_name(users[1])


UWS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
#: 4e8 pairs of the Spark table with trigonometry on each: ~25 s of CPU on local[2].
#: (Not a triple CROSS JOIN: Spark checks a cancelled task's kill flag between input
#: batches only, and a batch of 1,500 rows times 4e8 pairs kept its task running for
#: hours after the job was cancelled.)
SLOW = ("SELECT COUNT(*) FROM sky.stars AS a CROSS JOIN sky.stars AS b"
        " WHERE SIN(a.ra * b.dec) + COS(a.dec * b.ra) + SIN(a.dec + b.ra) > 2.9999")


def test_job_time_limit_stops_its_spark_job(side_by_side, spark):
    user = new_user(side_by_side, "slow")
    with httpx.Client(base_url=side_by_side.tap, timeout=60,
                      auth=(user, PASSWORD)) as c:
        r = c.post("/async", data={"LANG": "ADQL", "REQUEST": "doQuery", "QUERY": SLOW,
                                   "EXECUTIONDURATION": "3", "PHASE": "RUN"})
        assert r.status_code in (200, 303), r.text
        job = r.headers.get("location") or str(r.url)
        job_id = job.rstrip("/").rsplit("/", 1)[-1]
        started = time.monotonic()
        phase = None
        while time.monotonic() - started < 120:
            doc = etree.fromstring(c.get(f"/async/{job_id}", params={"WAIT": "10"}).content)
            phase = doc.findtext("uws:phase", namespaces=UWS)
            if phase not in ("QUEUED", "EXECUTING", "PENDING"):
                break
        assert phase == "ERROR", phase
        assert "duration limit" in doc.findtext("uws:errorSummary/uws:message",
                                                namespaces=UWS)
    # no job of that query is left running on the cluster
    deadline = time.monotonic() + 30
    while spark.context.statusTracker().getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not spark.context.statusTracker().getActiveJobsIds()
    assert tasks_stop(spark)  # ... and none of its tasks (checked again after each test)
