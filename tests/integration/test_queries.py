"""Queries end to end: results with units, output types, MAXREC, ADQL errors, uploads,
into=, timeout, KeyboardInterrupt, jobs across sessions."""

from __future__ import annotations

import signal
import time
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

import taphouse
from taphouse.client import (
    ClientError,
    MaxrecWarning,
    NotFoundError,
    QueryAborted,
    QueryError,
    QueryTimeout,
    ServerError,
)


def test_query_returns_an_astropy_table_with_units(client):
    t = client.query("SELECT TOP 5 hip, ra, dec, hpmag FROM hipparcos.hip2 ORDER BY hip")
    assert isinstance(t, Table) and len(t) == 5
    assert t["ra"].unit == u.deg and t["hpmag"].unit == u.mag
    assert list(t["hip"]) == sorted(t["hip"])
    assert t.meta["job_id"] and "hipparcos.hip2" in t.meta["query"]


@pytest.mark.parametrize("output", ["pandas", "polars", "pyarrow"])
def test_other_output_types(client, output):
    res = client.query("SELECT TOP 3 source_id, phot_g_mean_mag FROM gaia.dr3_bright",
                       output=output)
    assert type(res).__module__.split(".")[0] == output
    assert len(res) == 3 if output != "pyarrow" else res.num_rows == 3


def test_maxrec_overflow_warns_and_a_complete_result_does_not(client):
    with pytest.warns(MaxrecWarning, match="MAXREC=7 was hit"):
        t = client.query("SELECT hip FROM hipparcos.hip2", maxrec=7)
    assert len(t) == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaxrecWarning)
        t = client.query("SELECT TOP 7 hip FROM hipparcos.hip2", maxrec=7)
    assert len(t) == 7


def test_adql_error_carries_the_server_message_and_a_caret(client):
    adql = "SELECT hip,\n       no_such_column\nFROM hipparcos.hip2"
    with pytest.raises(QueryError) as info:
        client.query(adql)
    err = info.value
    assert "no_such_column" in err.message
    assert err.line == 2 and err.query == adql
    lines = str(err).splitlines()
    caret = next(i for i, line in enumerate(lines) if line.strip().endswith("^"))
    assert lines[caret].index("^") == lines[caret - 1].index("no_such_column")


def test_unknown_table_is_a_query_error_naming_it(client):
    with pytest.raises(QueryError, match="nowhere"):
        client.query("SELECT * FROM gaia.nowhere")


def test_uploads_from_table_dataframe_and_file(client, tmp_path):
    hips = Table({"hip": np.array([1, 2, 3], dtype=np.int32), "tag": ["a", "b", "c"]})
    t = client.query("SELECT u.tag, h.hip, h.hpmag FROM TAP_UPLOAD.mine AS u"
                     " JOIN hipparcos.hip2 AS h ON h.hip = u.hip ORDER BY h.hip",
                     uploads={"mine": hips})
    assert list(t["hip"]) == [1, 2, 3] and list(t["tag"]) == ["a", "b", "c"]
    df = hips.to_pandas()
    t = client.query("SELECT COUNT(*) AS n FROM TAP_UPLOAD.df", uploads={"df": df})
    assert t["n"][0] == 3
    path = tmp_path / "hips.vot"
    hips.write(path, format="votable")
    t = client.query("SELECT MAX(hip) AS m FROM TAP_UPLOAD.f", uploads={"f": path})
    assert t["m"][0] == 3


def test_into_stores_the_result_and_it_can_be_queried_again(client):
    t = client.query("SELECT TOP 20 hip, ra, dec FROM hipparcos.hip2 ORDER BY hip",
                     into="first20")
    assert t.meta["dest_table"].endswith(".first20")
    again = client.query("SELECT COUNT(*) AS n, MAX(hip) AS m FROM mydb.first20")
    assert again["n"][0] == 20 and again["m"][0] == 20
    with pytest.raises(QueryError, match="first20"):
        client.query("SELECT TOP 1 hip FROM hipparcos.hip2", into="first20")
    client.query("SELECT TOP 1 hip, ra, dec FROM hipparcos.hip2", into="first20", mode="append")
    assert client.query("SELECT COUNT(*) AS n FROM mydb.first20")["n"][0] == 21


def test_timeout_is_a_total_budget_and_aborts_the_job(client, slow_query, demo_server,
                                                      phase_on_server):
    start = time.monotonic()
    with pytest.raises(QueryTimeout) as info:
        client.query(slow_query, timeout=2)
    assert time.monotonic() - start < 15
    job_id = str(info.value).split()[1]
    assert client.job(job_id).phase in {"ABORTED", "ERROR"}


def test_keyboard_interrupt_from_progress_hook_aborts_the_server_job(client, slow_query):
    seen: list[str] = []

    def hook(job, phase, elapsed):
        seen.append(job.id)
        if phase == "EXECUTING" and elapsed > 0.5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.query(slow_query, progress=hook)
    job = client.job(seen[-1])
    deadline = time.monotonic() + 20
    while job.phase not in {"ABORTED", "ERROR", "COMPLETED"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.phase == "ABORTED"


def test_keyboard_interrupt_from_a_signal_aborts_the_server_job(client, slow_query):
    def on_alarm(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            client.query(slow_query)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    jobs = client.jobs()
    assert len(jobs) == 1
    job = jobs[0]
    deadline = time.monotonic() + 20
    while job.phase not in {"ABORTED", "ERROR", "COMPLETED"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.phase == "ABORTED"


def test_progress_bar_shows_phase_and_elapsed(client, capsys):
    client.query("SELECT TOP 1 hip FROM hipparcos.hip2", progress=True)
    err = capsys.readouterr().err
    assert "job j" in err and "[00:0" in err


def test_jobs_listed_and_fetched_from_a_new_session(demo_server, client, password):
    t = client.query("SELECT TOP 4 hip FROM hipparcos.hip2 ORDER BY hip")
    job_id = t.meta["job_id"]
    later = taphouse.connect(demo_server.url, interactive=False, progress=False)
    later.login(client.username, password)
    listed = later.jobs()
    assert job_id in listed.names()
    assert listed[job_id].phase == "COMPLETED"
    job = later.job(job_id)
    assert "hipparcos.hip2" in job.query
    again = job.results()
    assert list(again["hip"]) == list(t["hip"])
    assert job_id in repr(listed) and job_id in listed._repr_html_()


def test_job_submit_wait_abort_delete(client, slow_query):
    quick = client.submit("SELECT TOP 2 hip FROM hipparcos.hip2")
    assert len(quick.wait().results()) == 2
    slow = client.submit(slow_query)
    slow.abort()
    with pytest.raises(QueryAborted):
        slow.wait(timeout=30)
    pending = client.submit("SELECT TOP 1 hip FROM hipparcos.hip2", run=False)
    assert pending.phase == "PENDING"
    with pytest.raises(ClientError, match="PENDING"):
        pending.wait()
    pending.run().wait(timeout=30)
    quick.delete()
    with pytest.raises(NotFoundError):
        client.job(quick.id)


def test_results_of_an_unfinished_job_explain_what_to_do(client, slow_query):
    job = client.submit(slow_query)
    try:
        with pytest.raises(ClientError, match="call job.wait"):
            job.results()
    finally:
        job.abort()


def test_unreachable_server_is_a_server_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = taphouse.connect(f"http://127.0.0.1:{port}", retries=1, backoff=0.01)
    with pytest.raises(ServerError, match="cannot reach"):
        c.query("SELECT 1")


def test_pyvo_service_shares_the_login(client):
    service = client.service
    res = service.run_sync("SELECT TOP 2 hip FROM hipparcos.hip2")
    assert len(res) == 2
