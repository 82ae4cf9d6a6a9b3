"""``/api/jobs``: the caller's jobs of every kind (TAP queries and compute) as JSON, for
the client and ``taphouse jobs``. TAP clients keep using UWS at ``/tap/async``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from taphouse.auth.authenticator import require_scope
from taphouse.jobs.model import PHASES, Job, JobError, format_time


def job_dict(job: Job, base: str) -> dict[str, Any]:
    """The JSON view of a job (no parameters: a script or query can be large)."""
    url = (f"{base}/api/compute/{job.id}" if job.kind == "compute"
           else f"{base}/tap/async/{job.id}")
    out: dict[str, Any] = {
        "id": job.id, "kind": job.kind, "phase": job.phase, "owner": job.owner,
        "run_id": job.run_id, "created": format_time(job.created),
        "queued": format_time(job.queued), "started": format_time(job.started),
        "ended": format_time(job.ended), "execution_duration": job.execution_duration,
        "destruction": format_time(job.destruction), "url": url,
        "error": job.error.message if job.error else None}
    if job.kind == "tap":
        out["query"] = job.params.get("query")
    return out


def jobs_router(platform: Any) -> APIRouter:
    router = APIRouter()
    jobs = platform.jobs
    base = platform.settings.public_url

    async def owner(request: Request) -> str | None:
        identity = await platform.authenticator.identify_async(request)
        require_scope(identity, "read")
        return identity.username

    @router.get("")
    async def list_jobs(request: Request) -> Response:
        who = await owner(request)
        phases = [p.upper() for p in request.query_params.getlist("phase")]
        if any(p not in PHASES for p in phases):
            raise JobError(f"phase: one of {', '.join(PHASES)}")
        kind = request.query_params.get("kind")
        listed = await run_in_threadpool(jobs.list, who, phases=phases)
        return JSONResponse([job_dict(j, base) for j in listed
                             if kind is None or j.kind == kind])

    @router.get("/{job_id}")
    async def get_job(request: Request, job_id: str) -> Response:
        who = await owner(request)
        job = await run_in_threadpool(jobs.get, job_id, who)
        return JSONResponse(job_dict(job, base))

    @router.post("/{job_id}/abort")
    async def abort_job(request: Request, job_id: str) -> Response:
        identity = await platform.authenticator.identify_async(request)
        require_scope(identity, "write")
        job = await run_in_threadpool(jobs.abort, job_id, identity.username)
        return JSONResponse(job_dict(job, base))

    return router
