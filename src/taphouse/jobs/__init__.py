"""UWS jobs: a persistent job store and a worker pool with fair queueing.

:class:`JobService` is the entry point (created by the platform, started and stopped
with it); :class:`taphouse.query.job.TapQueryRunner` runs the ``"tap"`` job kind (TAP async
queries); it is imported from there, keeping this package light to import.
"""

from taphouse.jobs.model import (
    ACTIVE_PHASES,
    FINAL_PHASES,
    PHASES,
    Job,
    JobError,
    JobFailure,
    JobNotFound,
    JobResult,
    JobStateError,
    format_time,
    parse_time,
)
from taphouse.jobs.service import MAX_WAIT, JobRunner, JobService

__all__ = ["ACTIVE_PHASES", "FINAL_PHASES", "MAX_WAIT", "PHASES", "Job", "JobError",
           "JobFailure", "JobNotFound", "JobResult", "JobRunner", "JobService",
           "JobStateError", "format_time", "parse_time"]
