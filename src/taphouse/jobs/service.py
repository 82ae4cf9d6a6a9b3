"""The job service: persistent UWS jobs, a worker pool with fair queueing, clean-up.

State lives in the metadata database (:class:`~taphouse.jobs.store.JobStore`); files
(uploaded parts, results) in ``settings.jobs_dir/<job id>/``. What a job *does* is up to
a :class:`JobRunner` chosen by the job's ``kind`` (``"tap"``: an ADQL query).

Threads: each job kind has its own pool (:class:`WorkerPool`: ``settings.workers``
workers and ``max_jobs_per_user`` for ``"tap"``), so one kind never takes another's
workers; a pool's workers take QUEUED jobs of their kind in the order the pool's
:class:`~taphouse.jobs.fairness.FairScheduler` picks: at most ``max_per_user`` per owner at
a time (kept below the pool's number of workers) and, for anonymous jobs (budgeted per
client address), at most ``anonymous_job_share`` of the workers together. One reaper
removes jobs past their destruction time. Each key (owner, or anonymous address) keeps
at most ``jobs_max_kept`` jobs and ``job_files_max_bytes`` of job files (uploads and
results; smaller ``_anonymous`` budgets for anonymous addresses). Clients waiting
for a phase change (UWS ``WAIT``) wait on an asyncio event, holding no thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from taphouse.jobs.fairness import ANONYMOUS_PREFIX, FairScheduler
from taphouse.jobs.model import (
    ABORTED,
    ACTIVE_PHASES,
    COMPLETED,
    ERROR,
    EXECUTING,
    FINAL_PHASES,
    PENDING,
    QUEUED,
    Job,
    JobError,
    JobFailure,
    JobNotFound,
    JobQuotaExceeded,
    JobResult,
    JobStateError,
    now,
    owner_key,
)
from taphouse.jobs.store import JobStore
from taphouse.metadata import MetadataDB
from taphouse.settings import Settings
from taphouse.storage import StorageFull, is_disk_full

if TYPE_CHECKING:
    from taphouse.query.cancel import CancelHandle

log = logging.getLogger("taphouse.jobs")

MAX_WAIT = 60.0
"""Longest a UWS WAIT blocks, in seconds (clients asking for more, or -1, get this)."""

ABORT_REASON = "aborted by the owner"
RESTART_MESSAGE = ("the server restarted while this job was executing, so its run was lost;"
                   " please submit the job again")
STOP_MESSAGE = ("the server was stopped while this job was executing, so its run was lost;"
                " please submit the job again")
INTERNAL_MESSAGE = ("internal error while running the job; the operator can find details"
                    " in the server log")


class JobRunner(Protocol):
    """What a kind of job does (``"tap"``: run an ADQL query)."""

    def validate(self, params: dict[str, str]) -> None:
        """Raise (with a message for the user) if ``params`` can never run."""

    def run(self, job: Job, cancel: CancelHandle, workdir: Path) -> JobResult:
        """Do the work; write the result into ``workdir``; raise on failure (an
        exception with ``message`` and optionally ``line``/``column``/``query``)."""


@dataclass(frozen=True)
class WorkerPool:
    """Workers of one job kind: how many, and how many jobs of one owner at a time."""

    workers: int
    max_per_user: int


@dataclass(eq=False)
class _Watcher:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event


class JobService:
    """Create, run, watch and destroy jobs on behalf of their owners.

    Every method taking ``owner`` (the owner's stable user id, never the name: a
    re-created name must not inherit jobs; ``None`` is the anonymous caller) acts only
    on that owner's jobs; a job of someone else raises :class:`JobNotFound`, like an
    unknown one.
    """

    def __init__(self, meta: MetadataDB, settings: Settings,
                 runners: Mapping[str, JobRunner], *, reap_interval: float = 60.0,
                 pools: Mapping[str, WorkerPool] | None = None) -> None:
        self.store = JobStore(meta)
        self.settings = settings
        self.jobs_dir = Path(settings.jobs_dir)
        self.runners = dict(runners)
        self.reap_interval = reap_interval
        #: A pool per job kind; kinds without one share the ``"tap"`` pool's settings.
        default = WorkerPool(settings.workers, settings.max_jobs_per_user)
        self.pools = {kind: (pools or {}).get(kind, default) for kind in self.runners}
        self._cond = threading.Condition()
        self._schedulers = {kind: _scheduler(pool, settings.anonymous_job_share)
                            for kind, pool in self.pools.items()}
        self._create_lock = threading.Lock()
        self._handles: dict[str, CancelHandle] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._stop_event = threading.Event()
        self._watchers: dict[str, set[_Watcher]] = {}
        self._watch_lock = threading.Lock()
        #: Called as ``on_destroyed(owner_id, job_id)`` after a job is destroyed (deleted
        #: or expired); user space drops the job's ``job_<id>`` table there.
        self.on_destroyed: Callable[[int | None, str], object] | None = None

    # --- creating and changing jobs ---------------------------------------------------
    def create(self, owner: int | None, params: Mapping[str, str],
               parts: Mapping[str, tuple[bytes | Path, str]] | None = None, *,
               workspace: list[str] | None = None, kind: str = "tap",
               owner_name: str | None = None, budget_key: str | None = None) -> Job:
        """A new PENDING job of the user with id ``owner`` (named ``owner_name``);
        ``params`` keyed lower-case, ``parts`` the uploaded request parts by name as
        (content or spooled file, content type), moved beside the job. ``budget_key``
        is what the job counts against (default: its owner's account; for anonymous
        callers their address key, from the HTTP layer).

        ``EXECUTIONDURATION`` and ``DESTRUCTION`` given here set the job's run-time
        limit (up to the service's) and destruction time, as if set afterwards.

        Raises
        ------
        JobQuotaExceeded
            The key keeps ``jobs_max_kept`` jobs already, or the parts would take its
            job files over ``job_files_max_bytes`` (the ``_anonymous`` variants for
            anonymous keys).
        """
        _check_owner(owner)
        params = {k.lower(): v for k, v in params.items() if k.lower() != "phase"}
        created = now()
        duration = self._duration(params.pop("executionduration", None))
        destruction = created + self.settings.job_retention
        if params.get("destruction"):
            destruction = min(_when(params.pop("destruction")), destruction)
        params.pop("destruction", None)
        self._runner(kind).validate(params)
        key = budget_key or owner_key(owner)
        job_id = "j" + secrets.token_hex(8)
        workdir = self.jobs_dir / job_id
        with self._create_lock:  # count and insert as one step per service
            count, held = self.store.kept(key)
            max_jobs, max_bytes = self._limits(key)
            if count >= max_jobs:
                raise JobQuotaExceeded(
                    f"you keep {count} jobs, the most {_who(key)} may keep; delete jobs you"
                    " no longer need (DELETE /async/<id>) before creating more")
            incoming = _parts_size(parts or {})
            if held + incoming > max_bytes:
                raise JobQuotaExceeded(
                    f"your jobs keep {held} bytes of files and this one brings {incoming};"
                    f" {_who(key)} may keep at most {max_bytes}: delete jobs you no longer"
                    " need")
            workdir.mkdir(parents=True, mode=0o700)  # private (taphouse.storage.datadir)
            try:
                saved = _save_parts(workdir, parts or {}, {})
                job = Job(id=job_id, kind=kind, owner=owner_name, owner_id=owner,
                          phase=PENDING, params=params,
                          run_id=params.get("runid"), parts=saved,
                          workspace=None if workspace is None else list(workspace),
                          created=created, execution_duration=duration,
                          destruction=destruction, budget_key=key, files_bytes=incoming)
                self.store.insert(job)
            except BaseException:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
        return job

    def _limits(self, key: str) -> tuple[int, int]:
        s = self.settings
        if key.startswith(ANONYMOUS_PREFIX):
            return s.jobs_max_kept_anonymous, s.job_files_max_bytes_anonymous
        return s.jobs_max_kept, s.job_files_max_bytes

    def file_room(self, job: Job) -> int:
        """Bytes the job's result may still take within its key's job-file budget."""
        _, held = self.store.kept(job.key)
        return max(self._limits(job.key)[1] - held, 0)

    def _duration(self, value: str | float | None) -> float:
        """A run-time limit as asked (0, negative or over the limit: the limit)."""
        limit = self.settings.exec_duration_limit
        if value is None or (isinstance(value, str) and not value.strip()):
            return min(self.settings.exec_duration_default, limit)
        try:
            seconds = float(value)
        except ValueError:
            raise JobError(f"EXECUTIONDURATION must be a number of seconds, not"
                           f" {str(value)[:40]!r}") from None
        return limit if seconds <= 0 or seconds > limit else seconds

    def get(self, job_id: str, owner: int | None) -> Job:
        _check_owner(owner)
        job = self.store.get(job_id) if _plausible_id(job_id) else None
        if job is None or job.owner_id != owner:
            raise JobNotFound(f"no job {job_id!r} here: it never existed, was deleted, or"
                              " belongs to someone else")
        return job

    def list(self, owner: int | None, *, phases: list[str] | tuple[str, ...] = (),
             after: float | None = None, last: int | None = None) -> list[Job]:
        """The owner's jobs (see :meth:`JobStore.list`)."""
        return self.store.list(owner, phases=phases, after=after, last=last)

    def update_parameters(self, job_id: str, owner: int | None, params: Mapping[str, str],
                          parts: Mapping[str, tuple[bytes, str]] | None = None) -> Job:
        """Change parameters of a PENDING job (new values replace old ones; UPLOAD
        items accumulate, as DALI allows several)."""
        job = self.get(job_id, owner)
        self._require(job, {PENDING}, "change its parameters")
        merged = dict(job.params)
        for name, value in params.items():
            name = name.lower()
            if name == "phase":
                continue
            if name == "upload" and merged.get("upload"):
                merged[name] = _merge_uploads(merged["upload"], value)
            else:
                merged[name] = value
        duration = merged.pop("executionduration", None)
        if duration is not None:
            self.set_execution_duration(job.id, owner, self._duration(duration))
        when = merged.pop("destruction", None)
        if when:
            self.set_destruction(job.id, owner, _when(when))
        self._runner(job.kind).validate(merged)
        incoming = _parts_size(parts or {})
        if incoming:
            _, held = self.store.kept(job.key)
            limit = self._limits(job.key)[1]
            if held + incoming > limit:
                raise JobQuotaExceeded(
                    f"your jobs keep {held} bytes of files and these uploads bring"
                    f" {incoming}; {_who(job.key)} may keep at most {limit}")
        saved = _save_parts(self.jobs_dir / job.id, parts or {}, job.parts)
        if not self.store.update(job.id, from_phases=[PENDING], params=merged, parts=saved,
                                 run_id=merged.get("runid"),
                                 files_bytes=job.files_bytes + incoming):
            raise JobStateError(f"job {job.id} is no longer PENDING; its parameters are fixed")
        return self.get(job_id, owner)

    def set_execution_duration(self, job_id: str, owner: int | None, seconds: float) -> Job:
        """Set the run-time limit (0 or more than the service limit: the service limit)."""
        job = self.get(job_id, owner)
        self._require(job, {PENDING, QUEUED}, "change its execution duration")
        limit = self.settings.exec_duration_limit
        value = limit if seconds <= 0 or seconds > limit else float(seconds)
        self.store.update(job.id, from_phases=[PENDING, QUEUED], execution_duration=value)
        return self.get(job_id, owner)

    def set_destruction(self, job_id: str, owner: int | None, when: float) -> Job:
        """Set the destruction time (no later than the retention period from now)."""
        job = self.get(job_id, owner)
        when = min(when, now() + self.settings.job_retention)
        self.store.update(job.id, destruction=when)
        return self.get(job_id, owner)

    # --- phase changes ------------------------------------------------------------------
    def run(self, job_id: str, owner: int | None) -> Job:
        """PHASE=RUN: a PENDING job becomes QUEUED before this returns."""
        job = self.get(job_id, owner)
        if job.phase in FINAL_PHASES:
            raise JobStateError(f"job {job.id} has already ended ({job.phase});"
                                " create a new job to run it again")
        if job.phase == PENDING:
            with self._cond:
                self.store.update(job.id, from_phases=[PENDING], phase=QUEUED, queued=now())
                self._cond.notify_all()
            self._notify(job.id)
        current = self.store.get(job_id)
        # (A worker may have run it and someone deleted it meanwhile: report it queued.)
        return current if current is not None else dataclasses.replace(job, phase=QUEUED)

    def abort(self, job_id: str, owner: int | None) -> Job:
        """PHASE=ABORT: the job ends as ABORTED; a running query is cancelled."""
        job = self.get(job_id, owner)
        with self._cond:
            changed = self.store.update(job.id, from_phases=sorted(ACTIVE_PHASES),
                                        phase=ABORTED, ended=now())
            handle = self._handles.get(job.id)
            if handle is not None:
                handle.cancel(ABORT_REASON)
        if changed:
            self._notify(job.id)
        return self.get(job_id, owner)

    def delete(self, job_id: str, owner: int | None) -> None:
        """Remove the job, its files and its result; a running query is cancelled."""
        job = self.get(job_id, owner)
        self._destroy(job.id, "the job was deleted")

    # --- waiting ------------------------------------------------------------------------
    async def wait(self, job_id: str, owner: int | None, timeout: float,
                   phase: str | None = None) -> Job:
        """UWS 1.1 blocking WAIT: return when the job's phase differs from ``phase``
        (default: its phase now), at once if it is not PENDING/QUEUED/EXECUTING, and
        after at most ``timeout`` (negative: the cap, :data:`MAX_WAIT`) seconds."""
        loop = asyncio.get_running_loop()
        timeout = MAX_WAIT if timeout < 0 else min(timeout, MAX_WAIT)
        deadline = loop.time() + timeout
        watcher = _Watcher(loop, asyncio.Event())
        with self._watch_lock:
            self._watchers.setdefault(job_id, set()).add(watcher)
        try:
            watched = phase.upper() if phase else None
            while True:
                watcher.event.clear()
                job = await asyncio.to_thread(self.get, job_id, owner)
                if watched is None:
                    watched = job.phase
                if job.phase != watched or job.phase not in ACTIVE_PHASES:
                    return job
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return job
                try:
                    await asyncio.wait_for(watcher.event.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            with self._watch_lock:
                watchers = self._watchers.get(job_id)
                if watchers is not None:
                    watchers.discard(watcher)
                    if not watchers:
                        del self._watchers[job_id]

    def _notify(self, job_id: str) -> None:
        with self._watch_lock:
            watchers = list(self._watchers.get(job_id, ()))
        for w in watchers:
            try:
                w.loop.call_soon_threadsafe(w.event.set)
            except RuntimeError:  # the loop has closed: nobody waits any more
                pass

    # --- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Recover from a previous run, then start the workers and the reaper."""
        self._recover()
        self.reap()
        self._stopping = False
        self._stop_event.clear()
        for kind, pool in self.pools.items():
            for i in range(max(1, pool.workers)):
                t = threading.Thread(target=self._work, args=(kind,), daemon=True,
                                     name=f"taphouse-{kind}-worker-{i}")
                t.start()
                self._threads.append(t)
        t = threading.Thread(target=self._reap_loop, name="taphouse-job-reaper", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the threads; jobs running now end as ERROR (queued ones stay queued)."""
        with self._cond:
            self._stopping = True
            for handle in self._handles.values():
                handle.cancel(STOP_MESSAGE)
            self._cond.notify_all()
        self._stop_event.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def _recover(self) -> None:
        for job_id in self.store.ids_in_phase(EXECUTING):
            self.store.update(job_id, from_phases=[EXECUTING], phase=ERROR, ended=now(),
                              error=JobFailure(RESTART_MESSAGE))
            for partial in (self.jobs_dir / job_id).glob(".*.part"):
                partial.unlink(missing_ok=True)
            log.warning("job %s was executing when the server stopped; now ERROR", job_id)
        if self.jobs_dir.is_dir():
            known = self.store.all_ids()
            for d in self.jobs_dir.iterdir():
                if d.is_dir() and d.name not in known:
                    shutil.rmtree(d, ignore_errors=True)

    def destroy_owner(self, owner: int, reason: str = "the account was deleted") -> int:
        """Destroy every job of the user with id ``owner`` (running ones are
        cancelled); returns how many."""
        ids = self.store.ids_of_owner(owner)
        for job_id in ids:
            self._destroy(job_id, reason)
        return len(ids)

    def reap(self, at: float | None = None) -> int:
        """Destroy every job whose destruction time has passed; returns how many."""
        expired = self.store.expired(now() if at is None else at)
        for job_id in expired:
            self._destroy(job_id, "the job reached its destruction time")
        return len(expired)

    def _reap_loop(self) -> None:
        while not self._stop_event.wait(self.reap_interval):
            try:
                self.reap()
            except Exception:
                log.exception("removing expired jobs failed; will retry")

    def _destroy(self, job_id: str, reason: str) -> None:
        with self._cond:
            handle = self._handles.get(job_id)
            if handle is not None:
                handle.cancel(reason)
            job = self.store.get(job_id)
            self.store.delete(job_id)
        shutil.rmtree(self.jobs_dir / job_id, ignore_errors=True)
        if job is not None:
            self._after_destroyed(job.owner_id, job_id)
        self._notify(job_id)

    def _after_destroyed(self, owner: int | None, job_id: str) -> None:
        if self.on_destroyed is not None:
            try:
                self.on_destroyed(owner, job_id)
            except Exception:
                log.exception("job %s: clean-up after destruction failed", job_id)

    # --- workers --------------------------------------------------------------------------
    def _work(self, kind: str) -> None:
        scheduler = self._schedulers[kind]
        while True:
            with self._cond:
                claim = None
                while claim is None:
                    if self._stopping:
                        return
                    claim = self._claim(kind, scheduler)
                    if claim is None:
                        self._cond.wait(timeout=5.0)
            job_id, key, handle = claim
            try:
                self._execute(job_id, handle)
            except Exception:
                log.exception("job %s: unexpected failure in the worker", job_id)
            finally:
                with self._cond:
                    self._handles.pop(job_id, None)
                    scheduler.finished(key)
                    self._cond.notify_all()

    def _claim(self, kind: str, scheduler: FairScheduler
               ) -> tuple[str, str | None, CancelHandle] | None:
        # Called with self._cond held; the DB update guards against a concurrent abort.
        while True:
            choice = scheduler.choose(self.store.queued(kind))
            if choice is None:
                return None
            job_id, key = choice
            if self.store.update(job_id, from_phases=[QUEUED], phase=EXECUTING,
                                 started=now()):
                from taphouse.query.cancel import CancelHandle

                handle = CancelHandle()
                self._handles[job_id] = handle
                scheduler.started(key)
                self._notify(job_id)
                return job_id, key, handle

    def _execute(self, job_id: str, handle: CancelHandle) -> None:
        job = self.store.get(job_id)
        if job is None or job.phase != EXECUTING:
            return
        workdir = self.jobs_dir / job.id
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        limit = job.execution_duration
        handle.deadline(limit, f"the execution duration limit of {limit:g} s was reached")
        try:
            result = self._runner(job.kind).run(job, handle, workdir)
        except Exception as exc:
            failure = self._failure(job, exc, handle)
            self._end(job.id, phase=ERROR, ended=now(), error=failure)
        else:
            if not self._end(job.id, phase=COMPLETED, ended=now(), result=result,
                             files_bytes=job.files_bytes + result.size):
                # Aborted or deleted meanwhile: its result must not outlive that.
                (workdir / result.file).unlink(missing_ok=True)
        finally:
            handle.finish()
        if self.store.get(job.id) is None:
            shutil.rmtree(workdir, ignore_errors=True)
            # Deleted while running: the run may have kept something after _destroy's
            # clean-up ran (user space's job_<id> table), so clean up once more.
            self._after_destroyed(job.owner_id, job.id)
        self._notify(job.id)

    def _end(self, job_id: str, **changes: Any) -> bool:
        """Record how an executing job ended. On a full disk, retry (with back-off)
        until there is room or the service stops: the job must not stay EXECUTING
        while its run is over (after a stop, start-up recovery ends it)."""
        delay = 0.5
        while True:
            try:
                return self.store.update(job_id, from_phases=[EXECUTING], **changes)
            except Exception as exc:
                if not is_disk_full(exc) or self._stop_event.wait(delay):
                    raise
                log.error("job %s: cannot record its end, the disk is full; retrying",
                          job_id)
                delay = min(delay * 2, 30.0)

    def _failure(self, job: Job, exc: Exception, handle: CancelHandle) -> JobFailure:
        if handle.reason == STOP_MESSAGE:
            return JobFailure(STOP_MESSAGE)
        message = getattr(exc, "message", None)
        if not message and is_disk_full(exc):
            log.error("job %s failed: the disk is full (%s)", job.id, exc)
            return JobFailure(StorageFull(what="the job's result was not kept").message)
        if isinstance(message, str) and message:
            return JobFailure(message, line=getattr(exc, "line", None),
                              column=getattr(exc, "column", None),
                              query=getattr(exc, "query", None))
        log.error("job %s failed unexpectedly", job.id, exc_info=exc)
        return JobFailure(INTERNAL_MESSAGE)

    # --- helpers ---------------------------------------------------------------------------
    def _runner(self, kind: str) -> JobRunner:
        try:
            return self.runners[kind]
        except KeyError:
            raise JobStateError(f"this server cannot run jobs of kind {kind!r}") from None

    @staticmethod
    def _require(job: Job, phases: set[str], action: str) -> None:
        if job.phase not in phases:
            raise JobStateError(f"job {job.id} is {job.phase}; only a job that is "
                                f"{' or '.join(sorted(phases))} can {action}")

    def of_kind(self, kind: str) -> JobsOfKind:
        """This service seen through one job kind (other kinds' jobs look absent)."""
        return JobsOfKind(self, kind)

    def running(self, kind: str | None = None) -> dict[str, Any]:
        """Running jobs per owner, of ``kind`` or of every kind (monitoring, tests)."""
        with self._cond:
            total: Counter[str] = Counter()
            for k, scheduler in self._schedulers.items():
                if kind is None or k == kind:
                    total.update(scheduler.running)
            return dict(+total)


class JobsOfKind:
    """A :class:`JobService` restricted to the jobs of one kind: the TAP endpoints do not
    show, change or delete compute jobs, and the reverse."""

    def __init__(self, service: JobService, kind: str) -> None:
        self.service = service
        self.kind = kind

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)

    def get(self, job_id: str, owner: int | None) -> Job:
        job = self.service.get(job_id, owner)
        if job.kind != self.kind:
            raise JobNotFound(f"no {self.kind} job {job_id!r} here")
        return job

    def list(self, owner: int | None, **kwargs: Any) -> list[Job]:
        return [j for j in self.service.list(owner, **kwargs) if j.kind == self.kind]

    def create(self, owner: int | None, params: Mapping[str, str],
               parts: Mapping[str, tuple[bytes | Path, str]] | None = None,
               **kwargs: Any) -> Job:
        return self.service.create(owner, params, parts, kind=self.kind, **kwargs)

    async def wait(self, job_id: str, owner: int | None, timeout: float,
                   phase: str | None = None) -> Job:
        await asyncio.to_thread(self.get, job_id, owner)
        return await self.service.wait(job_id, owner, timeout, phase)

    def _checked(name: str) -> Any:  # type: ignore[misc]
        def method(self: JobsOfKind, job_id: str, owner: int | None, *args: Any,
                   **kwargs: Any) -> Any:
            self.get(job_id, owner)
            return getattr(self.service, name)(job_id, owner, *args, **kwargs)

        method.__name__ = name
        return method

    run = _checked("run")
    abort = _checked("abort")
    delete = _checked("delete")
    update_parameters = _checked("update_parameters")
    set_execution_duration = _checked("set_execution_duration")
    set_destruction = _checked("set_destruction")
    del _checked


def _check_owner(owner: object) -> None:
    # Owners are user ids since names can be re-created: a name here is a bug to see.
    if owner is not None and (not isinstance(owner, int) or isinstance(owner, bool)):
        raise TypeError(f"a job owner is a user id (int) or None, not {owner!r}")


def _plausible_id(job_id: str) -> bool:
    return 1 < len(job_id) <= 64 and job_id.isascii() and job_id.isalnum()


def _scheduler(pool: WorkerPool, anonymous_share: float) -> FairScheduler:
    """The fair scheduler of one pool: one owner never holds every worker, so another
    owner's job can always start; anonymous jobs (budgeted per address) together hold at
    most their share, one address at most one less than that."""
    workers = max(1, pool.workers)
    per_owner = pool.max_per_user if workers == 1 else \
        max(1, min(pool.max_per_user, workers - 1))
    anonymous = max(1, int(workers * anonymous_share))
    return FairScheduler(per_owner, anonymous_total=anonymous,
                         max_per_anonymous=1 if anonymous <= 1 else min(per_owner,
                                                                        anonymous - 1))


def _save_parts(workdir: Path, parts: Mapping[str, tuple[bytes | Path, str]],
                existing: Mapping[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    # Part names come from the client: files get our own names. A part spooled to disk
    # (under the data directory's tmp/, the same file system) is moved, not copied.
    saved = {k: dict(v) for k, v in existing.items()}
    n = len(list(workdir.glob("upload-*")))
    for name, (data, ctype) in parts.items():
        fname = f"upload-{n}"
        n += 1
        if isinstance(data, Path):
            shutil.move(str(data), workdir / fname)
            os.chmod(workdir / fname, 0o600)
        else:
            with open(os.open(workdir / fname, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                              0o600), "wb") as f:
                f.write(data)
        saved[name] = {"file": fname, "type": ctype or ""}
    return saved


def _parts_size(parts: Mapping[str, tuple[bytes | Path, str]]) -> int:
    return sum(d.stat().st_size if isinstance(d, Path) else len(d) for d, _ in parts.values())


def _who(key: str) -> str:
    return "an anonymous caller" if key.startswith(ANONYMOUS_PREFIX) else "one user"


def _when(text: str) -> float:
    from taphouse.jobs.model import parse_time

    return parse_time(text)


def _merge_uploads(old: str, new: str) -> str:
    items: dict[str, str] = {}
    for text in (old, new):
        for item in text.split(";"):
            if item.strip():
                items[item.split(",", 1)[0].strip().lower()] = item.strip()
    return ";".join(items.values())
