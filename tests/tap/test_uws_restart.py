"""Async jobs survive a SIGKILL of the server: the real CLI server in a subprocess is
killed while one job runs and others wait; after the restart the job list is intact, the
queued jobs complete, the interrupted one is ERROR with a message, and a result that was
complete before the kill is still there, byte for byte."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from accounts import PASSWORD
from servers import ServerProcess

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
SLOW = ("SELECT COUNT(*) AS n FROM t.nums AS a, t.nums AS b, t.nums AS c"
        " WHERE a.id + b.id + c.id = 7")
FAST = "SELECT id FROM t.nums WHERE id < 3 ORDER BY id"


@pytest.fixture
def server_process_class() -> Any:
    return ServerProcess


def _prepare_data(data_dir: Path) -> None:
    """Table ``t.nums`` (1000 rows) and the account ``alice``, written before the server
    starts, as an operator would with the CLI."""
    from taphouse.catalogue.model import ColumnMeta, TableMeta
    from taphouse.server import Platform
    from taphouse.settings import Settings

    p = Platform(Settings(data_dir=data_dir))
    p.catalogue.create_database("t", "test data")
    path = p.catalogue.new_version_path("t", "nums")
    n = p.engine.write_table("SELECT range::BIGINT AS id FROM range(1000)", path)
    p.catalogue.publish(TableMeta(database="t", name="nums", nrows=n,
                                  columns=[ColumnMeta(name="id", datatype="long")]), path)
    p.authenticator.accounts.add_user("alice", PASSWORD)
    p.stop()


def _create(c: httpx.Client, query: str, run: bool = True) -> str:
    data = {"LANG": "ADQL", "QUERY": query, **({"PHASE": "RUN"} if run else {})}
    r = c.post("/tap/async", data=data)
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("/", 1)[1]


def _phase(c: httpx.Client, job_id: str, **params: str) -> str:
    r = c.get(f"/tap/async/{job_id}", params=params)
    assert r.status_code == 200, r.text
    return etree.fromstring(r.content).findtext("uws:phase", namespaces=NS)


def _until(c: httpx.Client, job_id: str, phases: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    phase = _phase(c, job_id)
    while phase not in phases and time.monotonic() < deadline:
        phase = _phase(c, job_id, WAIT="5")
    assert phase in phases, (job_id, phase)
    return phase


def _listing(c: httpx.Client) -> dict[str, str]:
    doc = etree.fromstring(c.get("/tap/async").content)
    return {r.get("id"): r.findtext("uws:phase", namespaces=NS)
            for r in doc.findall("uws:jobref", NS)}


@pytest.mark.slow
def test_sigkill_while_running_and_queued(tmp_path, server_process_class):
    data_dir = tmp_path / "data"
    _prepare_data(data_dir)
    server = server_process_class(data_dir, env={"TAPHOUSE_WORKERS": "1"})
    server.start()
    try:
        with httpx.Client(base_url=server.url, auth=("alice", PASSWORD), timeout=60) as c:
            done = _create(c, FAST)
            _until(c, done, {"COMPLETED"})
            before = c.get(f"/tap/async/{done}/results/result")
            assert before.status_code == 200 and b"<VOTABLE" in before.content
            running = _create(c, SLOW)
            queued = [_create(c, FAST), _create(c, FAST)]
            pending = _create(c, FAST, run=False)
            _until(c, running, {"EXECUTING"})
            assert [_phase(c, j) for j in queued] == ["QUEUED", "QUEUED"]
            listed = _listing(c)
            server.kill()

        server.start()
        with httpx.Client(base_url=server.url, auth=("alice", PASSWORD), timeout=60) as c:
            assert set(_listing(c)) == set(listed) == {done, running, *queued, pending}
            for job_id in queued:
                assert _until(c, job_id, {"COMPLETED", "ERROR"}) == "COMPLETED"
                r = c.get(f"/tap/async/{job_id}/results/result")
                assert r.status_code == 200 and r.content.count(b"<TR>") + \
                    r.content.count(b"<STREAM") >= 1
            doc = etree.fromstring(c.get(f"/tap/async/{running}").content)
            assert doc.findtext("uws:phase", namespaces=NS) == "ERROR"
            message = doc.findtext("uws:errorSummary/uws:message", namespaces=NS)
            assert "restarted while this job was executing" in message
            err = c.get(f"/tap/async/{running}/error")
            assert err.status_code == 200 and b"restarted" in err.content
            after = c.get(f"/tap/async/{done}/results/result")
            assert after.status_code == 200 and after.content == before.content
            assert _phase(c, pending) == "PENDING"
            # No half-written result of the interrupted job is left behind.
            assert not list((data_dir / "jobs" / running).glob("*result*"))
    finally:
        server.stop()
