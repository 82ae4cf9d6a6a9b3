"""``/api/compute``: submit, watch, abort and read compute jobs (JSON; see docs/api.md).

A job is created and started by one ``POST``, as JSON (``{"script": ..., "args": [...],
"timeout": s, "memory": bytes, "files": {name: base64}}``) or as multipart form data
(fields ``script`` or ``notebook``, ``args``, ``timeout``, ``memory``; every other file
part is an input file named by its field).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from taphouse.admission import ByteBudget, caller_key, spool_body
from taphouse.api.routes import job_dict
from taphouse.auth.authenticator import Authenticator, refuse_sandbox, require_scope
from taphouse.compute.files import open_beneath
from taphouse.compute.service import (
    STDERR,
    STDOUT,
    SUMMARY,
    ComputeError,
    ComputeService,
    check_file_name,
    notebook_source,
)
from taphouse.jobs.model import ACTIVE_PHASES, Job
from taphouse.jobs.service import JobsOfKind
from taphouse.settings import Settings
from taphouse.tap.errors import TapError
from taphouse.tap.params import TapParams, read_params

_FIELDS = ("script", "notebook", "args", "timeout", "memory", "runid")


def compute_router(settings: Settings, *, authenticator: Authenticator, jobs: JobsOfKind,
                   compute: ComputeService, scratch_dir: Path,
                   upload_bytes: ByteBudget) -> APIRouter:
    """``/api/compute``: submit, list, watch and fetch compute jobs (``jobs``: the job
    service seen through the compute kind). A submission's body is spooled under
    ``scratch_dir`` and counted in the caller's ``upload_bytes`` as TAP uploads are."""
    router = APIRouter()
    base = settings.public_url
    limit = settings.upload_max_bytes

    async def reader(request: Request) -> int:
        # Jobs belong to the stable user id (a re-created name inherits none).
        identity = await authenticator.identify_async(request)
        require_scope(identity, "read")
        assert identity.user_id is not None
        return identity.user_id

    def listed(job: Job) -> dict[str, Any]:
        out = job_dict(job)
        out["url"] = f"{base}/api/compute/{job.id}"
        return out

    def describe(job: Job) -> dict[str, Any]:
        out = listed(job)
        out["timeout"] = job.execution_duration
        out["memory"] = compute.memory(job.params)
        if job.result is not None or job.phase == "ERROR":
            try:
                fd = open_beneath(compute.jobs_dir / job.id, SUMMARY)
                with os.fdopen(fd, "rb") as f:
                    out.update(json.loads(f.read()))
            except (FileNotFoundError, ValueError):
                pass
        url = f"{base}/api/compute/{job.id}"
        out["stdout_url"] = url + "/stdout"
        out["stderr_url"] = url + "/stderr"
        for o in out.get("outputs", []):
            o["url"] = f"{url}/files/{quote(o['name'], safe='/')}"
        return out

    @router.post("", status_code=201)
    async def submit(request: Request) -> Response:
        identity = await authenticator.identify_async(request)
        require_scope(identity, "write")
        refuse_sandbox(identity, "submit compute jobs", allow_notebook=True)
        compute.require()
        key = caller_key(identity, request.client.host if request.client else None)
        sub = await _read_submission(request, limit, scratch_dir, upload_bytes, key)
        owner = identity.user_id

        def work() -> Job:
            parts: dict[str, tuple[bytes | Path, str]] = dict(sub.files)
            job = jobs.create(owner, sub.params, parts, owner_name=identity.username)
            jobs.set_execution_duration(job.id, owner, compute.timeout(sub.params))
            started: Job = jobs.run(job.id, owner)
            return started

        try:
            job = await run_in_threadpool(work)
        finally:
            sub.close()
        return JSONResponse(describe(job), status_code=201,
                            headers={"Location": f"{base}/api/compute/{job.id}"})

    @router.get("")
    async def list_jobs(request: Request) -> Response:
        owner = await reader(request)
        jobs_ = await run_in_threadpool(jobs.list, owner)
        return JSONResponse([listed(j) for j in jobs_])

    @router.get("/{job_id}")
    async def get_job(request: Request, job_id: str) -> Response:
        owner = await reader(request)
        wait = request.query_params.get("wait")
        job = await run_in_threadpool(jobs.get, job_id, owner)
        if wait is not None and job.phase in ACTIVE_PHASES:
            try:
                seconds = float(wait)
            except ValueError:
                raise ComputeError("wait: a number of seconds") from None
            job = await jobs.wait(job_id, owner, seconds)
        return JSONResponse(await run_in_threadpool(describe, job))

    @router.post("/{job_id}/abort")
    async def abort(request: Request, job_id: str) -> Response:
        identity = await authenticator.identify_async(request)
        require_scope(identity, "write")
        job = await run_in_threadpool(jobs.abort, job_id, identity.user_id)
        return JSONResponse(await run_in_threadpool(describe, job))

    @router.delete("/{job_id}")
    async def delete(request: Request, job_id: str) -> Response:
        identity = await authenticator.identify_async(request)
        require_scope(identity, "write")
        await run_in_threadpool(jobs.delete, job_id, identity.user_id)
        return Response(status_code=204)

    async def stream(request: Request, job_id: str, rel: str, mime: str) -> Response:
        owner = await reader(request)
        job = await run_in_threadpool(jobs.get, job_id, owner)
        try:
            fd = open_beneath(compute.jobs_dir / job.id, rel)
        except FileNotFoundError:
            if rel in (STDOUT, STDERR):  # not started yet: nothing written so far
                return Response(b"", media_type=mime)
            raise ComputeError(f"job {job_id} has no output file {rel[5:]!r}", 404) from None
        f = os.fdopen(fd, "rb")

        def chunks() -> Any:
            with f:
                while True:
                    block = f.read(1 << 16)
                    if not block:
                        return
                    yield block

        return StreamingResponse(chunks(), media_type=mime)

    @router.get("/{job_id}/stdout")
    async def stdout(request: Request, job_id: str) -> Response:
        return await stream(request, job_id, STDOUT, "text/plain; charset=utf-8")

    @router.get("/{job_id}/stderr")
    async def stderr(request: Request, job_id: str) -> Response:
        return await stream(request, job_id, STDERR, "text/plain; charset=utf-8")

    @router.get("/{job_id}/files/{name:path}")
    async def output_file(request: Request, job_id: str, name: str) -> Response:
        return await stream(request, job_id, f"work/{name}", "application/octet-stream")

    return router


class _Submission:
    """A submission read from its request: ``params``, and ``files`` (input files by
    name, as files spooled under the data directory's ``tmp/``) whose bytes the caller
    holds in the upload budget until :meth:`close` (after the job took the files)."""

    def __init__(self, budget: ByteBudget, key: str) -> None:
        self.params: dict[str, str] = {}
        self.files: dict[str, tuple[Path, str]] = {}
        self.budget, self.key, self.held = budget, key, 0
        self.form: TapParams | None = None
        self._spooled: list[Path] = []

    def close(self) -> None:
        if self.form is not None:  # its part files and upload bytes
            self.form.close()
        for path in self._spooled:
            path.unlink(missing_ok=True)  # the ones the job did not take
        if self.held:
            self.budget.give_back(self.key, self.held)
            self.held = 0


async def _read_submission(request: Request, limit: int, spool_dir: Path, budget: ByteBudget,
                           key: str) -> _Submission:
    """The submission's fields and files, its body written to disk as it arrives (file
    parts, or the whole JSON document) and counted against the caller's upload bytes in
    flight: over ``limit`` or the caller's budget it is refused (413) at once."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    sub = _Submission(budget, key)
    try:
        if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            values = await _read_form(request, limit, spool_dir, sub)
        else:
            values = await _read_json(request, limit, spool_dir, sub)
        notebook = values.pop("notebook", None)
        if notebook is not None:
            if values.get("script"):
                raise ComputeError("send either 'script' or 'notebook', not both")
            values["script"] = notebook_source(str(notebook))
        sub.params = {k: str(v) for k, v in values.items() if v is not None}
    except BaseException:
        sub.close()
        raise
    return sub


async def _read_form(request: Request, limit: int, spool_dir: Path, sub: _Submission
                     ) -> dict[str, Any]:
    try:
        sub.form = form = await read_params(request, max_bytes=limit, spool_dir=spool_dir,
                                            budget=sub.budget, key=sub.key)
    except TapError as exc:  # a body that cannot be read: this API answers in JSON
        raise ComputeError(exc.message, exc.status) from None
    values: dict[str, Any] = {}
    for key, value in form.flat().items():
        if key not in _FIELDS:
            raise ComputeError(f"unknown field {key[:40]!r}: send {', '.join(_FIELDS)}"
                               " and input files")
        values[key] = value
    for key, path in form.parts.items():
        if key in ("script", "notebook"):  # as a file: at most the limit, counted above
            values[key] = path.read_bytes().decode("utf-8", "replace")
        else:
            sub.files[check_file_name(key)] = (path, form.part_types.get(key, ""))
    return values


async def _read_json(request: Request, limit: int, spool_dir: Path, sub: _Submission
                     ) -> dict[str, Any]:
    path, sub.held = await spool_body(request, limit, spool_dir, sub.budget, sub.key,
                                      what="submission")
    sub._spooled.append(path)
    try:
        # Parsed from the spooled file while its bytes are still held in the budget.
        with path.open("rb") as f:
            body = json.load(f)
    except ValueError:
        raise ComputeError("send JSON ({\"script\": ...}) or multipart form data") from None
    if not isinstance(body, dict):
        raise ComputeError("the request body must be a JSON object")
    unknown = set(body) - {*_FIELDS, "files"}
    if unknown:
        raise ComputeError(f"unknown field(s) {sorted(unknown)[:5]}")
    files = body.get("files") or {}
    if not isinstance(files, dict):
        raise ComputeError("files: an object of file name -> base64 content")
    for name, content in files.items():
        name = check_file_name(name)
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ComputeError(f"file {name!r}: give its content as base64") from None
        fd, spooled = tempfile.mkstemp(prefix="upload-", dir=spool_dir)
        sub._spooled.append(Path(spooled))
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        sub.files[name] = (Path(spooled), "")
    values = {k: v for k, v in body.items() if k != "files"}
    if isinstance(values.get("args"), list):
        values["args"] = json.dumps(values["args"])
    if isinstance(values.get("notebook"), dict):
        values["notebook"] = json.dumps(values["notebook"])
    return values
