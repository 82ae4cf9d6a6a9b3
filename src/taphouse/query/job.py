"""The ``"tap"`` job kind: an ADQL query run by :class:`~taphouse.query.service.QueryService`
as the job's owner, its result stored as a file in the job's directory."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from taphouse.auth.identity import Identity
from taphouse.catalogue.model import ColumnMeta
from taphouse.formats import ResultInfo
from taphouse.formats.registry import Writer
from taphouse.jobs.model import Job, JobResult
from taphouse.query.cancel import CancelHandle
from taphouse.query.errors import QueryError
from taphouse.query.request import QuerySpec, parse_query_spec
from taphouse.query.service import PreparedQuery, QueryService
from taphouse.settings import Settings
from taphouse.userspace import UserSpace


class TapQueryRunner:
    """Runs TAP async jobs (see :class:`~taphouse.jobs.service.JobRunner`).

    Parameters
    ----------
    service
        Prepares and executes the queries.
    identity_for
        The identity a job runs as, from its owner's user id (refuses a disabled or
        deleted account).
    userspace
        Keeps a logged-in owner's result as ``mydb.job_<id>`` (written from the same
        batches as the result file).
    file_room
        The bytes a job's result file may still take (its owner's job-file budget).
    """

    def __init__(self, service: QueryService, settings: Settings, *,
                 identity_for: Callable[[int | None], Identity], userspace: UserSpace,
                 file_room: Callable[[Job], int]) -> None:
        self.service = service
        self.settings = settings
        self.identity_for = identity_for
        self.userspace = userspace
        self.file_room = file_room

    def validate(self, params: dict[str, str]) -> None:
        """Accept any parameters: TAP 1.1 creates the job (303) and reports bad ones
        (LANG, MAXREC, format, UPLOAD) as the job's ERROR when it runs."""

    def run(self, job: Job, cancel: CancelHandle, workdir: Path) -> JobResult:
        service = self.service
        spec = parse_query_spec(job.params, self.settings)
        parts: dict[str, Path] = {}
        types: dict[str, str] = {}
        for name, info in job.parts.items():
            parts[name] = workdir / info["file"]
            types[name] = info.get("type", "")
        uploads = service.read_uploads(spec, parts, types)
        prepared = service.prepare(self.identity_for(job.owner_id), spec,
                                   workspace=job.workspace, uploads=uploads)
        try:
            return self._run(job, cancel, workdir, spec, prepared)
        finally:
            prepared.close()  # (execute lets go of the tables too; this covers errors)

    def _run(self, job: Job, cancel: CancelHandle, workdir: Path, spec: QuerySpec,
             prepared: PreparedQuery) -> JobResult:
        service = self.service
        ext = getattr(prepared.writer, "extension", "") or "dat"
        final = workdir / f"result.{ext}"
        partial = workdir / f".result.{ext}.part"
        if cancel.reason:
            # Cancelled while preparing: an interrupt sent before the query starts on
            # the cursor does not stop it, so do not start it at all.
            raise QueryError(f"query cancelled: {cancel.reason}")
        writer = _InfoCapturingWriter(prepared.writer)
        output = dataclasses.replace(prepared, writer=writer)
        table = None
        # (federation and remotes hooks: a federated join's columns exist only once
        # execute() ran its remote part, and a remote query runs elsewhere, so their
        # results are not kept as mydb.job_<id>.)
        if (job.owner_id is not None and not prepared.spec.dest
                and prepared.federated is None and prepared.remote is None):
            # A logged-in user's result is also kept as mydb.job_<id>: written from the
            # same batches as the result document, in the same single run of the query.
            table = self.userspace.open_job_table(job, prepared)
        try:
            # The result counts against the owner's job files: it may take what is left.
            max_bytes = min(self.settings.result_max_bytes, self.file_room(job))
            with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                      "wb") as out:
                for chunk in service.execute(output, cancel=cancel, max_bytes=max_bytes,
                                             copies=[table] if table is not None else ()):
                    out.write(chunk)
                # Writers that can say so (VOTable, JSON) end the document with the error
                # of a query failing mid-stream instead of raising: still a failed job.
                if cancel.reason:
                    raise QueryError(f"query cancelled: {cancel.reason}")
                if writer.info is not None and writer.info.error is not None:
                    raise QueryError(writer.info.error, query=spec.query)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            if table is not None:
                table.abort()
            raise
        info = writer.info
        result = JobResult(file=final.name, mime=prepared.writer.mime,
                           size=final.stat().st_size,
                           rows=info.rows if info else min(cancel.rows, prepared.limit),
                           overflow=info.overflow if info else cancel.rows > prepared.limit)
        if table is not None:
            self.userspace.finish_job_table(job, table)
        return result


class _InfoCapturingWriter:
    """A result writer that keeps the :class:`~taphouse.formats.ResultInfo` it was given,
    to read rows, overflow and a late error once the stream is written."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self.name, self.mime, self.extension = writer.name, writer.mime, writer.extension
        self.info: ResultInfo | None = None

    def write(self, batches: Iterable[pa.RecordBatch], columns: list[ColumnMeta],
              info: ResultInfo) -> Iterator[bytes]:
        self.info = info
        return self._writer.write(batches, columns, info)
