"""The job service with a small job kind of its own (``"sleep"``): life cycle, fairness,
per-user caps, execution duration, abort, restart recovery, destruction, WAIT."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from taphouse.jobs import JobError, JobNotFound, JobResult, JobService, JobStateError
from taphouse.jobs.model import EXECUTING, QUEUED, Job
from taphouse.jobs.service import RESTART_MESSAGE
from taphouse.metadata import MetadataDB
from taphouse.settings import Settings

#: Owners are user ids (stable, never reused), not names.
ALICE, BOB = 1, 2


class SleepRunner:
    """Sleeps ``seconds`` (checking for cancellation), then writes a small result."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.running: dict[str | None, int] = {}
        self.peak: dict[str | None, int] = {}

    def validate(self, params: dict[str, str]) -> None:
        float(params.get("seconds", "0"))
        if "bad" in params:
            raise JobError("bad parameter")

    def run(self, job: Job, cancel, workdir: Path) -> JobResult:
        with self.lock:
            self.started.append(job.params.get("name", job.id))
            self.running[job.owner_id] = self.running.get(job.owner_id, 0) + 1
            self.peak[job.owner_id] = max(self.peak.get(job.owner_id, 0), self.running[job.owner_id])
        try:
            end = time.monotonic() + float(job.params.get("seconds", "0"))
            while time.monotonic() < end:
                if cancel.reason:
                    raise JobError(f"query cancelled: {cancel.reason}")
                time.sleep(0.01)
            (workdir / "result.txt").write_text("done")
            return JobResult(file="result.txt", mime="text/plain", size=4, rows=1)
        finally:
            with self.lock:
                self.running[job.owner_id] -= 1


@pytest.fixture
def make_service(tmp_path):
    services: list[JobService] = []

    def factory(**overrides) -> tuple[JobService, SleepRunner]:
        settings = Settings(data_dir=tmp_path, **overrides)
        runner = SleepRunner()
        svc = JobService(MetadataDB(settings.meta_path), settings, {"sleep": runner},
                         reap_interval=3600)
        svc.start()
        services.append(svc)
        return svc, runner

    yield factory
    for s in services:
        s.stop()


def wait_phase(svc: JobService, job_id: str, owner, phases: set[str], timeout=20.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = svc.get(job_id, owner)
        if job.phase in phases:
            return job
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} still {svc.get(job_id, owner).phase}")


def test_life_cycle_run_complete_and_times(make_service):
    svc, _ = make_service(workers=1)
    job = svc.create(ALICE, {"SECONDS": "0.05", "RUNID": "r1"}, kind="sleep")
    assert job.phase == "PENDING" and job.run_id == "r1" and job.params["seconds"] == "0.05"
    assert job.id[0].isalpha() and job.id == job.id.lower()
    queued = svc.run(job.id, ALICE)
    assert queued.phase in {"QUEUED", "EXECUTING", "COMPLETED"}
    done = wait_phase(svc, job.id, ALICE, {"COMPLETED"})
    assert done.created <= done.started <= done.ended
    assert done.result.file == "result.txt"
    assert (svc.jobs_dir / job.id / "result.txt").read_text() == "done"
    with pytest.raises(JobStateError):
        svc.run(job.id, ALICE)
    with pytest.raises(JobStateError):
        svc.update_parameters(job.id, ALICE, {"seconds": "1"})


def test_jobs_are_visible_to_their_owner_only(make_service):
    svc, _ = make_service()
    mine = svc.create(ALICE, {}, kind="sleep")
    anon = svc.create(None, {}, kind="sleep")
    for job_id, owner in [(mine.id, BOB), (mine.id, None), (anon.id, ALICE),
                          ("jdoesnotexist", ALICE), ("../etc", ALICE)]:
        with pytest.raises(JobNotFound):
            svc.get(job_id, owner)
    assert svc.get(anon.id, None).id == anon.id
    assert [j.id for j in svc.list(ALICE)] == [mine.id]
    with pytest.raises(JobError, match="bad parameter"):
        svc.create(ALICE, {"bad": "1"}, kind="sleep")


def test_parameters_merge_while_pending_and_parts_are_saved(make_service):
    svc, _ = make_service()
    job = svc.create(ALICE, {"upload": "t1,param:a"}, {"a": (b"x,y\n1,2\n", "text/csv")},
                     kind="sleep")
    job = svc.update_parameters(job.id, ALICE, {"UPLOAD": "t2,param:b", "seconds": "0"},
                                {"b": (b"<VOTABLE/>", "application/x-votable+xml")})
    assert job.params["upload"] == "t1,param:a;t2,param:b"
    assert set(job.parts) == {"a", "b"}
    assert (svc.jobs_dir / job.id / job.parts["b"]["file"]).read_bytes() == b"<VOTABLE/>"
    assert job.parts["a"]["type"] == "text/csv"


def test_round_robin_between_users_with_one_worker(make_service):
    svc, runner = make_service(workers=1, max_jobs_per_user=1)
    ids = []
    for i in range(3):
        ids.append((ALICE, svc.create(ALICE, {"seconds": "0.15", "name": f"a{i}"},
                                        kind="sleep").id))
    ids.append((BOB, svc.create(BOB, {"seconds": "0.15", "name": "b0"}, kind="sleep").id))
    for owner, job_id in ids:
        svc.run(job_id, owner)
    for owner, job_id in ids:
        wait_phase(svc, job_id, owner, {"COMPLETED"})
    # bob queued last, yet runs right after alice's first job.
    assert runner.started == ["a0", "b0", "a1", "a2"]


def test_per_user_cap_keeps_extra_jobs_queued(make_service):
    svc, runner = make_service(workers=3, max_jobs_per_user=2)
    ids = [svc.create(ALICE, {"seconds": "0.4"}, kind="sleep").id for _ in range(4)]
    for job_id in ids:
        svc.run(job_id, ALICE)
    time.sleep(0.2)
    phases = sorted(svc.get(j, ALICE).phase for j in ids)
    assert phases == ["EXECUTING", "EXECUTING", "QUEUED", "QUEUED"]
    # The free worker still serves another user at once.
    other = svc.create(BOB, {"seconds": "0.0"}, kind="sleep")
    svc.run(other.id, BOB)
    wait_phase(svc, other.id, BOB, {"COMPLETED"}, timeout=0.3)
    for job_id in ids:
        wait_phase(svc, job_id, ALICE, {"COMPLETED"})
    assert runner.peak[ALICE] == 2


def test_execution_duration_ends_the_job_in_error(make_service):
    svc, _ = make_service(workers=1)
    job = svc.create(ALICE, {"seconds": "30"}, kind="sleep")
    assert svc.set_execution_duration(job.id, ALICE, 1).execution_duration == 1.0
    # 0 (UWS: unlimited) and too-large values are capped at the service limit.
    assert svc.set_execution_duration(job.id, ALICE, 0).execution_duration == \
        svc.settings.exec_duration_limit
    svc.set_execution_duration(job.id, ALICE, 1)
    t0 = time.monotonic()
    svc.run(job.id, ALICE)
    done = wait_phase(svc, job.id, ALICE, {"ERROR", "COMPLETED"}, timeout=10)
    assert done.phase == "ERROR"
    assert "execution duration limit of 1 s" in done.error.message
    assert time.monotonic() - t0 < 5
    with pytest.raises(JobStateError):
        svc.set_execution_duration(job.id, ALICE, 5)


def test_abort_cancels_a_running_job_and_frees_the_worker(make_service):
    svc, _ = make_service(workers=1)
    long = svc.create(ALICE, {"seconds": "30"}, kind="sleep")
    nxt = svc.create(ALICE, {"seconds": "0"}, kind="sleep")
    svc.run(long.id, ALICE)
    svc.run(nxt.id, ALICE)
    wait_phase(svc, long.id, ALICE, {EXECUTING})
    assert svc.abort(long.id, ALICE).phase == "ABORTED"
    wait_phase(svc, nxt.id, ALICE, {"COMPLETED"}, timeout=5)
    aborted = svc.get(long.id, ALICE)
    assert aborted.phase == "ABORTED" and aborted.result is None
    # Aborting a pending job works too; aborting an ended job changes nothing.
    pending = svc.create(ALICE, {}, kind="sleep")
    assert svc.abort(pending.id, ALICE).phase == "ABORTED"
    assert svc.abort(nxt.id, ALICE).phase == "COMPLETED"


def test_restart_recovers_executing_and_runs_queued(tmp_path):
    settings = Settings(data_dir=tmp_path, workers=1)
    meta = MetadataDB(settings.meta_path)
    runner = SleepRunner()
    first = JobService(meta, settings, {"sleep": runner})
    running = first.create(ALICE, {"seconds": "5"}, kind="sleep")
    queued = first.create(ALICE, {"seconds": "0"}, kind="sleep")
    # As a killed process leaves them: one EXECUTING with a partial file, one QUEUED.
    first.store.update(running.id, phase=EXECUTING, started=time.time())
    first.store.update(queued.id, phase=QUEUED, queued=time.time())
    (first.jobs_dir / running.id / ".result.vot.part").write_bytes(b"half")
    (first.jobs_dir / "jorphan").mkdir()
    second = JobService(meta, settings, {"sleep": runner})
    second.start()
    try:
        broken = second.get(running.id, ALICE)
        assert broken.phase == "ERROR" and broken.error.message == RESTART_MESSAGE
        assert not (second.jobs_dir / running.id / ".result.vot.part").exists()
        assert not (second.jobs_dir / "jorphan").exists()
        wait_phase(second, queued.id, ALICE, {"COMPLETED"})
    finally:
        second.stop()


def test_destruction_removes_rows_and_files(make_service):
    svc, _ = make_service()
    job = svc.create(ALICE, {}, kind="sleep")
    later = svc.set_destruction(job.id, ALICE, time.time() + 10 * 365 * 86400)
    assert later.destruction <= time.time() + svc.settings.job_retention + 1
    keep = svc.create(ALICE, {}, kind="sleep")
    svc.set_destruction(job.id, ALICE, time.time() - 1)
    assert svc.reap() == 1
    with pytest.raises(JobNotFound):
        svc.get(job.id, ALICE)
    assert not (svc.jobs_dir / job.id).exists()
    assert svc.get(keep.id, ALICE).phase == "PENDING"


def test_wait_returns_on_phase_change_not_before(make_service):
    svc, _ = make_service(workers=1)

    async def scenario() -> None:
        job = svc.create(ALICE, {"seconds": "0.5"}, kind="sleep")
        # Not yet running: a WAIT on a PENDING job blocks until its timeout.
        t0 = time.monotonic()
        got = await svc.wait(job.id, ALICE, 0.3)
        assert got.phase == "PENDING" and 0.25 < time.monotonic() - t0 < 2
        # PHASE given and no longer current: at once.
        t0 = time.monotonic()
        got = await svc.wait(job.id, ALICE, 30, phase="EXECUTING")
        assert got.phase == "PENDING" and time.monotonic() - t0 < 0.5
        await asyncio.to_thread(svc.run, job.id, ALICE)
        t0 = time.monotonic()
        while got.phase not in {"COMPLETED", "ERROR"}:
            got = await svc.wait(job.id, ALICE, 30)
        assert got.phase == "COMPLETED"
        assert time.monotonic() - t0 < 5
        # Final phase: at once, whatever the timeout.
        t0 = time.monotonic()
        got = await svc.wait(job.id, ALICE, -1)
        assert got.phase == "COMPLETED" and time.monotonic() - t0 < 0.5
        # Many concurrent waiters hold no thread: more than the thread pool could.
        jobs = [svc.create(ALICE, {}, kind="sleep") for _ in range(3)]
        waits = [svc.wait(j.id, ALICE, 0.5) for j in jobs for _ in range(20)]
        t0 = time.monotonic()
        results = await asyncio.gather(*waits)
        assert all(r.phase == "PENDING" for r in results)
        assert time.monotonic() - t0 < 3

    asyncio.run(scenario())


class KeepsTableRunner:
    """Deletes its own job while running, then keeps a "table" for it (as user space
    keeps job_<id>), like a result stored just after a concurrent DELETE."""

    def __init__(self) -> None:
        self.svc: JobService | None = None
        self.tables: set[str] = set()
        self.done = threading.Event()

    def validate(self, params: dict[str, str]) -> None:
        pass

    def run(self, job: Job, cancel, workdir: Path) -> JobResult:
        try:
            self.svc.delete(job.id, job.owner_id)
            self.tables.add(job.id)
            return JobResult(file="result.txt", mime="text/plain", size=0, rows=0)
        finally:
            self.done.set()


def test_job_deleted_while_running_leaves_nothing_kept_by_its_run(tmp_path):
    settings = Settings(data_dir=tmp_path)
    runner = KeepsTableRunner()
    svc = JobService(MetadataDB(settings.meta_path), settings, {"keep": runner},
                     reap_interval=3600)
    runner.svc = svc
    svc.on_destroyed = lambda owner, job_id: runner.tables.discard(job_id)
    svc.start()
    try:
        job = svc.create(ALICE, {}, kind="keep")
        svc.run(job.id, ALICE)
        assert runner.done.wait(20)
        deadline = time.monotonic() + 20
        while svc.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not svc.running()
        assert runner.tables == set()
    finally:
        svc.stop()


def test_each_kind_has_its_own_pool(tmp_path):
    """A kind's workers never run another kind's jobs: with the "sleep" pool full, a
    "fast" job still starts at once; per-user caps are per kind."""
    from taphouse.jobs.service import WorkerPool

    settings = Settings(data_dir=tmp_path)
    slow, fast = SleepRunner(), SleepRunner()
    svc = JobService(MetadataDB(settings.meta_path), settings, {"sleep": slow, "fast": fast},
                     reap_interval=3600,
                     pools={"sleep": WorkerPool(1, 1), "fast": WorkerPool(1, 1)})
    svc.start()
    try:
        blockers = [svc.create(ALICE, {"seconds": "3"}, kind="sleep") for _ in range(2)]
        for b in blockers:
            svc.run(b.id, ALICE)
        time.sleep(0.3)
        job = svc.create(ALICE, {"seconds": "0"}, kind="fast")
        svc.run(job.id, ALICE)
        deadline = time.monotonic() + 2
        while svc.get(job.id, ALICE).phase != "COMPLETED":
            assert time.monotonic() < deadline, svc.get(job.id, ALICE).phase
            time.sleep(0.02)
        assert svc.get(blockers[1].id, ALICE).phase == QUEUED
        assert svc.running("sleep") == {f"user:{ALICE}": 1}  # (budget keys: user:<id>)
        assert svc.of_kind("fast").list(ALICE) == [svc.get(job.id, ALICE)]
        with pytest.raises(JobNotFound):
            svc.of_kind("fast").abort(blockers[0].id, ALICE)
    finally:
        svc.stop()
