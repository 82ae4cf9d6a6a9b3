"""CancelHandle: the time limit outlives one cursor of a request."""

import time

import duckdb

from taphouse.query.cancel import CancelHandle


def test_deadline_still_runs_after_a_cursor_is_detached():
    # A DEST write or a stored job result detaches its cursor before the next query
    # of the same request; the request's time limit must still apply to that query.
    con = duckdb.connect()
    handle = CancelHandle()
    handle.deadline(0.2, "time limit")
    cur = con.cursor()
    handle.attach(cur)
    handle.detach()
    time.sleep(0.5)
    assert handle.reason == "time limit"


def test_finish_drops_the_deadline():
    cursor = duckdb.connect().cursor()  # before the clock starts: slow on a busy machine
    handle = CancelHandle()
    handle.deadline(1.0, "time limit")
    handle.attach(cursor)
    handle.finish()
    time.sleep(1.5)
    assert handle.reason is None
