"""The synchronous time limit cancels the query in the backend and says so."""

from __future__ import annotations

import time

import httpx
import pytest

SLOW = ("SELECT COUNT(*) AS n FROM t.nums AS a, t.nums AS b, t.nums AS c"
        " WHERE a.id + b.id + c.id = 7")


def _nums(platform) -> None:
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    platform.catalogue.create_database("t", "test data")
    path = platform.catalogue.new_version_path("t", "nums")
    n = platform.engine.write_table("SELECT range::BIGINT AS id FROM range(2000)", path)
    platform.catalogue.publish(TableMeta(database="t", name="nums", nrows=n,
                                         columns=[ColumnMeta(name="id", datatype="long")]), path)


def test_sync_time_limit_cancels_the_query(start_server):
    server = start_server(sync_timeout=1.0)
    _nums(server.platform)
    t0 = time.monotonic()
    r = httpx.post(server.tap + "/sync", data={"LANG": "ADQL", "QUERY": SLOW}, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.status_code == 400
    assert b'value="ERROR"' in r.content and b"time limit of 1 s" in r.content
    assert elapsed < 10  # 8e9 combinations would take minutes: the query was stopped
    # The service goes on answering.
    r = httpx.post(server.tap + "/sync", data={"LANG": "ADQL", "RESPONSEFORMAT": "csv",
                                               "QUERY": "SELECT COUNT(*) AS n FROM t.nums"})
    assert r.status_code == 200 and r.text.split() == ["n", "2000"]


def test_client_going_away_cancels_the_sync_query(start_server):
    server = start_server()
    _nums(server.platform)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.tap + "/sync", data={"LANG": "ADQL", "QUERY": SLOW}, timeout=1.0)
    audit = server.platform.authenticator.audit_log
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        outcomes = [r["outcome"] for r in audit.entries(event="query")]
        if any("client disconnected" in o for o in outcomes):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"query not cancelled; audit outcomes: {outcomes}")


def test_overlong_query_is_refused_with_the_limit(start_server):
    server = start_server(query_max_chars=1000)
    query = "SELECT 1 AS x FROM tap_schema.schemas WHERE 1 IN (" + ",".join(["1"] * 600) + ")"
    r = httpx.post(server.tap + "/sync", data={"LANG": "ADQL", "QUERY": query})
    assert r.status_code == 400
    assert b"the limit is 1000" in r.content and b'value="ERROR"' in r.content
