"""Job records in SQLite: round trip, conditional phase changes, list filters."""

from __future__ import annotations

from taphouse.jobs.model import (
    ABORTED,
    COMPLETED,
    EXECUTING,
    PENDING,
    QUEUED,
    Job,
    JobFailure,
    JobResult,
    format_time,
    parse_time,
)
from taphouse.jobs.store import JobStore
from taphouse.metadata import MetadataDB

_IDS = {"alice": 1, "bob": 2}


def _job(job_id: str, owner: str | None, created: float, phase: str = PENDING) -> Job:
    return Job(id=job_id, owner=owner, owner_id=_IDS.get(owner or ""), phase=phase, params={"query": "SELECT 1", "lang": "ADQL"},
               created=created, execution_duration=60.0, destruction=created + 3600)


def test_round_trip_keeps_every_field(tmp_path):
    store = JobStore(MetadataDB(tmp_path / "m.sqlite"))
    job = _job("jabc", "alice", 1000.0)
    job.parts = {"t1": {"file": "upload-0", "type": "text/csv"}}
    job.workspace = ["gaia", "user_alice"]
    job.run_id = "run-7"
    store.insert(job)
    assert store.get("jabc") == job
    assert store.update("jabc", from_phases=[PENDING], phase=COMPLETED, ended=1010.5,
                        result=JobResult(file="result.vot", mime="application/x-votable+xml",
                                         size=123, rows=4, overflow=True),
                        error=JobFailure("x", line=2, column=5, query="SELECT"))
    got = store.get("jabc")
    assert got.phase == COMPLETED and got.ended == 1010.5
    assert got.result == JobResult(file="result.vot", mime="application/x-votable+xml",
                                   size=123, rows=4, overflow=True)
    assert got.error == JobFailure("x", line=2, column=5, query="SELECT")
    assert got.params == {"query": "SELECT 1", "lang": "ADQL"}


def test_phase_change_only_from_expected_phases(tmp_path):
    store = JobStore(MetadataDB(tmp_path / "m.sqlite"))
    store.insert(_job("j1", "alice", 1.0, phase=QUEUED))
    assert store.update("j1", from_phases=[QUEUED], phase=EXECUTING)
    assert store.update("j1", from_phases=[EXECUTING], phase=ABORTED)
    # A worker finishing after the abort must not overwrite it.
    assert not store.update("j1", from_phases=[EXECUTING], phase=COMPLETED)
    assert store.get("j1").phase == ABORTED


def test_list_is_per_owner_with_phase_after_last(tmp_path):
    store = JobStore(MetadataDB(tmp_path / "m.sqlite"))
    for i in range(5):
        store.insert(_job(f"ja{i}", "alice", 100.0 + i, phase=COMPLETED if i % 2 else PENDING))
    store.insert(_job("jb0", "bob", 100.5))
    store.insert(_job("jn0", None, 100.7))
    assert [j.id for j in store.list(_IDS["alice"])] == ["ja0", "ja1", "ja2", "ja3", "ja4"]
    assert [j.id for j in store.list(_IDS["bob"])] == ["jb0"]
    assert [j.id for j in store.list(None)] == ["jn0"]
    assert [j.id for j in store.list(_IDS["alice"], phases=[COMPLETED])] == ["ja1", "ja3"]
    assert [j.id for j in store.list(_IDS["alice"], after=102.0)] == ["ja3", "ja4"]
    assert [j.id for j in store.list(_IDS["alice"], last=2)] == ["ja4", "ja3"]
    assert store.queued() == []
    assert set(store.expired(100.0 + 3600 + 1.5)) == {"ja0", "ja1", "jb0", "jn0"}


def test_times_are_iso_utc_with_milliseconds():
    assert format_time(0.25) == "1970-01-01T00:00:00.250Z"
    assert parse_time("1970-01-01T00:00:10.5Z") == 10.5
    assert parse_time("1970-01-01T01:00:00+01:00") == 0.0
    assert parse_time("1970-01-01T00:01:00") == 60.0
