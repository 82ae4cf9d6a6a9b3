"""Table versions are attached when used and detached when idle: a bounded set, and a
version a request still holds is never detached."""

from __future__ import annotations

import time

import httpx
import psutil
import pytest

from accounts import PASSWORD
from taphouse.catalogue.model import ColumnMeta, TableMeta
from taphouse.engine.duckdb import DuckDBEngine


@pytest.fixture
def versions(tmp_path):
    """An engine with max_attached=2 and four stored one-column versions."""
    engine = DuckDBEngine(tmp_path / "tables", max_attached=2, idle_detach=3600)
    tables = []
    for i in range(1, 5):
        path = tmp_path / "tables" / f"t{i}.duckdb"
        engine.write_table(f"SELECT {i} AS x FROM range({i})", path)
        tables.append(TableMeta(database="d", name=f"t{i}", version_id=i, path=str(path),
                                columns=[ColumnMeta(name="x", datatype="long")]))
    return engine, tables


def _count(engine: DuckDBEngine, relation: str) -> int:
    with engine.cursor() as cur:
        return cur.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]


def test_a_held_version_is_never_detached_and_idle_ones_are_bounded(versions):
    engine, (t1, t2, t3, t4) = versions
    with engine.lease() as a:
        r1 = a.relation(t1)
        with engine.lease() as b:
            for t in (t2, t3, t4):
                b.relation(t)
            assert set(engine.attached()) == {1, 2, 3, 4}  # all held: over the bound
        # b let go: back to the bound, and the version a holds is still there.
        assert len(engine.attached()) == 2 and engine.attached()[1] == 1
        assert _count(engine, r1) == 1
        engine.forget(1)  # retired while held: stays until released
        assert 1 in engine.attached()
        assert _count(engine, r1) == 1
    assert 1 not in engine.attached()
    engine.detach_idle(0)
    assert engine.attached() == {}
    # Attached again on the next use.
    with engine.lease() as c:
        assert _count(engine, c.relation(t3)) == 3


def test_idle_versions_are_detached_after_the_idle_time(versions):
    engine, (t1, t2, _, _) = versions
    with engine.lease() as a:
        a.relation(t1)
        a.relation(t2)
        assert engine.detach_idle(0) == 0  # held
    assert engine.detach_idle(3600) == 0  # not idle long enough
    assert engine.detach_idle(0) == 2
    assert engine.attached() == {}


def test_open_files_stay_flat_over_many_kept_job_tables(start_server):
    """Each async job of a logged-in user keeps mydb.job_<id>; reading them all once
    must not leave every version attached (before: an open file and ~1 MB each for the
    job's whole retention, ~1,000 jobs -> 'Too many open files')."""
    server = start_server(engine_max_attached=3, workers=2)
    server.platform.authenticator.accounts.add_user("alice", PASSWORD)
    me = psutil.Process()

    def run_jobs(c: httpx.Client, n: int) -> list[str]:
        ids = []
        for i in range(n):
            r = c.post("/tap/async", data={"LANG": "ADQL", "PHASE": "RUN",
                                           "QUERY": f"SELECT {i} AS k, 'x' AS s"})
            ids.append(r.headers["location"].rsplit("/", 1)[1])
        for job_id in ids:
            for _ in range(60):
                phase = c.get(f"/tap/async/{job_id}/phase").text
                if phase in ("COMPLETED", "ERROR"):
                    break
                c.get(f"/tap/async/{job_id}", params={"WAIT": "5"})
            assert phase == "COMPLETED"
            r = c.post("/tap/sync", data={"LANG": "ADQL", "RESPONSEFORMAT": "csv",
                                          "QUERY": f"SELECT k FROM mydb.job_{job_id}"})
            assert r.status_code == 200 and r.text.split()[0] == "k"
        return ids

    with httpx.Client(base_url=server.url, auth=("alice", PASSWORD), timeout=60) as c:
        run_jobs(c, 4)
        time.sleep(0.5)
        files_before = me.num_fds()
        run_jobs(c, 20)
        time.sleep(0.5)
        files_after = me.num_fds()
    attached = server.platform.engine.attached()
    assert len([v for v, refs in attached.items() if refs == 0]) <= 3, attached
    assert files_after - files_before <= 4, (files_before, files_after)
