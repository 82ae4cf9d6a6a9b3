"""The ``"tap"`` job kind: an ADQL query run by :class:`~taphouse.tap.service.QueryService`
as the job's owner, its result stored as a file in the job's directory."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from taphouse.jobs.model import Job, JobResult
from taphouse.tap.errors import TapError
from taphouse.tap.service import CancelHandle, parse_query_spec


class TapQueryRunner:
    """Runs TAP async jobs for one platform (see :class:`~taphouse.jobs.service.JobRunner`)."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform

    def validate(self, params: dict[str, str]) -> None:
        """Accept any parameters: TAP 1.1 creates the job (303) and reports bad ones
        (LANG, MAXREC, format, UPLOAD) as the job's ERROR when it runs."""

    def run(self, job: Job, cancel: CancelHandle, workdir: Path) -> JobResult:
        service = self.platform.query_service
        spec = parse_query_spec(job.params, self.platform.settings)
        parts: dict[str, Path] = {}
        types: dict[str, str] = {}
        for name, info in job.parts.items():
            parts[name] = workdir / info["file"]
            types[name] = info.get("type", "")
        uploads = service.read_uploads(spec, parts, types)
        prepared = service.prepare(self.platform.identity_for(job.owner_id), spec,
                                   workspace=job.workspace, uploads=uploads)
        try:
            return self._run(job, cancel, workdir, spec, prepared)
        finally:
            prepared.close()  # (execute lets go of the tables too; this covers errors)

    def _run(self, job: Job, cancel: CancelHandle, workdir: Path, spec: Any,
             prepared: Any) -> JobResult:
        service = self.platform.query_service
        ext = getattr(prepared.writer, "extension", "") or "dat"
        final = workdir / f"result.{ext}"
        partial = workdir / f".result.{ext}.part"
        if cancel.reason:
            # Cancelled while preparing: an interrupt sent before the query starts on
            # the cursor does not stop it, so do not start it at all.
            raise TapError(f"query cancelled: {cancel.reason}")
        writer = _InfoCapturingWriter(prepared.writer)
        output = dataclasses.replace(prepared, writer=writer)
        stored = None
        if job.owner_id is not None and not prepared.spec.dest:
            # A logged-in user's result is kept as mydb.job_<id>: run the query once,
            # into that table, and write the result document from it.
            stored = self.platform.userspace.store_job_result(job, prepared, cancel)
            if stored is not None:
                output = dataclasses.replace(output, sql=stored[1], inline={})
        try:
            # The result counts against the owner's job files: it may take what is left.
            max_bytes = min(self.platform.settings.result_max_bytes,
                            self.platform.jobs.file_room(job))
            with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                      "wb") as out:
                for chunk in service.execute(output, cancel=cancel, max_bytes=max_bytes):
                    out.write(chunk)
                # Writers that can say so (VOTable, JSON) end the document with the error
                # of a query failing mid-stream instead of raising: still a failed job.
                if cancel.reason:
                    raise TapError(f"query cancelled: {cancel.reason}")
                if writer.info is not None and writer.info.error is not None:
                    raise TapError(writer.info.error, query=spec.query)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        info = writer.info
        result = JobResult(file=final.name, mime=prepared.writer.mime,
                           size=final.stat().st_size,
                           rows=info.rows if info else min(cancel.rows, prepared.limit),
                           overflow=info.overflow if info else cancel.rows > prepared.limit)
        if stored is not None:
            self.platform.userspace.finish_job_result(job, prepared, stored[0])
        return result


class _InfoCapturingWriter:
    """A result writer that keeps the :class:`~taphouse.formats.ResultInfo` it was given,
    to read rows, overflow and a late error once the stream is written."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self.info: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)

    def write(self, batches: Any, columns: Any, info: Any) -> Any:
        self.info = info
        return self._writer.write(batches, columns, info)
