"""What a job is: its phases, its record, and the errors of the job service."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from taphouse.errors import ServiceError

PENDING = "PENDING"
QUEUED = "QUEUED"
EXECUTING = "EXECUTING"
COMPLETED = "COMPLETED"
ERROR = "ERROR"
ABORTED = "ABORTED"
UNKNOWN = "UNKNOWN"
HELD = "HELD"
SUSPENDED = "SUSPENDED"
ARCHIVED = "ARCHIVED"

PHASES = (PENDING, QUEUED, EXECUTING, COMPLETED, ERROR, ABORTED, UNKNOWN, HELD, SUSPENDED,
          ARCHIVED)
#: Phases in which a job may still change by itself (a WAIT blocks only in these).
ACTIVE_PHASES = frozenset({PENDING, QUEUED, EXECUTING})
FINAL_PHASES = frozenset({COMPLETED, ERROR, ABORTED, ARCHIVED})


class JobError(ServiceError):
    """A job request the service cannot carry out; ``status`` is the HTTP status."""


class JobNotFound(JobError):
    """No such job, or a job of another user (indistinguishable on purpose)."""

    status = 404


class JobStateError(JobError):
    """The request does not fit the job's phase (e.g. new parameters once it ran)."""

    status = 409


@dataclass
class JobFailure:
    """Why a job ended in ERROR; line and column point into the query when known."""

    message: str
    line: int | None = None
    column: int | None = None
    query: str | None = None


@dataclass
class JobResult:
    """The stored result file of a completed job (``file`` is relative to the job dir)."""

    file: str
    mime: str
    size: int
    rows: int | None = None
    overflow: bool = False
    name: str = "result"


@dataclass
class Job:
    """One job as stored. Times are Unix seconds (UTC). ``owner_id`` (the owner's stable
    user id; None: anonymous) decides who may see it; ``owner`` is their name, shown."""

    id: str
    owner: str | None
    phase: str
    params: dict[str, str]
    created: float
    execution_duration: float
    destruction: float
    kind: str = "tap"
    run_id: str | None = None
    parts: dict[str, dict[str, str]] = field(default_factory=dict)
    workspace: list[str] | None = None
    queued: float | None = None
    started: float | None = None
    ended: float | None = None
    quote: float | None = None
    error: JobFailure | None = None
    result: JobResult | None = None
    owner_id: int | None = None
    #: What the job is budgeted under: ``user:<owner id>``, or ``addr:<client address
    #: key>`` for an anonymous job (fairness and budgets only, never access).
    budget_key: str | None = None
    #: Bytes of the job's files (uploaded parts and result), counted against its owner.
    files_bytes: int = 0

    @property
    def key(self) -> str:
        """:attr:`budget_key`, or the owner's when the job has none."""
        return self.budget_key or owner_key(self.owner_id)

    @property
    def results(self) -> list[JobResult]:
        return [self.result] if self.result is not None else []


def owner_key(owner_id: int | None) -> str:
    """The budget key of a job of the user ``owner_id`` created without a client address
    (see :func:`taphouse.admission.caller_key`)."""
    return "addr:-" if owner_id is None else f"user:{owner_id}"


class JobQuotaExceeded(JobError):
    """The owner (an anonymous address) keeps too many jobs or job files (HTTP 403)."""

    status = 403


def now() -> float:
    """The current time, to the millisecond (what the documents show, so that a time
    read from a document compares equal to the stored one)."""
    return round(time.time(), 3)


def format_time(t: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds and ``Z``, as UWS clients (pyvo) expect."""
    if t is None:
        return None
    ms = round(t * 1000)
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time(text: str) -> float:
    """Parse an ISO 8601 date-time (UTC if no zone is given) to Unix seconds."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise JobError(f"{text!r} is not an ISO 8601 date-time"
                       " (e.g. 2030-01-31T12:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
