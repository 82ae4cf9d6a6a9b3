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
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response, StreamingResponse

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

_FIELDS = ("script", "notebook", "args", "timeout", "memory", "runid")


def compute_router(settings: Settings, *, authenticator: Authenticator, jobs: JobsOfKind,
                   compute: ComputeService) -> APIRouter:
    """``/api/compute``: submit, list, watch and fetch compute jobs (``jobs``: the job
    service seen through the compute kind)."""
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
        params, files = await _read_submission(request, limit)
        owner = identity.user_id

        def work() -> Job:
            job = jobs.create(owner, params, files, owner_name=identity.username)
            jobs.set_execution_duration(job.id, owner, compute.timeout(params))
            started: Job = jobs.run(job.id, owner)
            return started

        job = await run_in_threadpool(work)
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


async def _read_submission(request: Request, limit: int
                           ) -> tuple[dict[str, str], dict[str, tuple[bytes, str]]]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ComputeError(f"submission of {declared} bytes; the limit is {limit}", 413)
    # A body sent without a length (chunked) is counted as it arrives: it was read whole
    # (JSON) or spooled without bound (form files) before any check.
    seen, receive = 0, request.receive

    async def counted() -> Any:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise ComputeError(f"submission larger than the limit of {limit} bytes", 413)
        return message

    request = Request(request.scope, counted)
    values: dict[str, Any] = {}
    files: dict[str, tuple[bytes, str]] = {}
    if ctype == "multipart/form-data" or ctype == "application/x-www-form-urlencoded":
        form = await request.form(max_part_size=limit)
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if key in ("script", "notebook"):
                    values[key] = data.decode("utf-8", "replace")
                else:
                    files[check_file_name(key)] = (data, value.content_type or "")
            elif key in _FIELDS:
                values[key] = value
            else:
                raise ComputeError(f"unknown field {key[:40]!r}: send {', '.join(_FIELDS)}"
                                   " and input files")
    else:
        raw = await request.body()
        if len(raw) > limit:
            raise ComputeError(f"submission larger than the limit of {limit} bytes", 413)
        try:
            body = json.loads(raw)
        except ValueError:
            raise ComputeError("send JSON ({\"script\": ...}) or multipart form data") from None
        if not isinstance(body, dict):
            raise ComputeError("the request body must be a JSON object")
        unknown = set(body) - {*_FIELDS, "files"}
        if unknown:
            raise ComputeError(f"unknown field(s) {sorted(unknown)[:5]}")
        for name, content in (body.get("files") or {}).items():
            try:
                files[check_file_name(name)] = (base64.b64decode(content, validate=True), "")
            except (binascii.Error, TypeError, ValueError):
                raise ComputeError(f"file {name!r}: give its content as base64") from None
        values = {k: v for k, v in body.items() if k != "files"}
        if isinstance(values.get("args"), list):
            values["args"] = json.dumps(values["args"])
        if isinstance(values.get("notebook"), dict):
            values["notebook"] = json.dumps(values["notebook"])
    notebook = values.pop("notebook", None)
    if notebook is not None:
        if values.get("script"):
            raise ComputeError("send either 'script' or 'notebook', not both")
        values["script"] = notebook_source(str(notebook))
    params = {k: str(v) for k, v in values.items() if v is not None}
    return params, files
