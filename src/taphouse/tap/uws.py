"""UWS 1.1 async endpoints (``{tap}/async``): HTTP to :class:`taphouse.jobs.JobService`.

Every job resource answers only its owner (anonymous jobs: anonymous callers, by id);
anything else is a 404, as for a job that does not exist. Parameter names are
case-insensitive (DALI); so are the PHASE and ACTION values.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response

from taphouse.admission import caller_key
from taphouse.jobs import PHASES, Job, JobNotFound, format_time, parse_time
from taphouse.tap.errors import TapError
from taphouse.tap.params import TapParams, read_params

if TYPE_CHECKING:
    from taphouse.jobs.service import JobsOfKind
    from taphouse.tap.routes import ContextFactory, TapServices
from taphouse.query.request import check_dest_scope

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XML = "text/xml; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NS = f'xmlns:uws="{UWS_NS}" xmlns:xlink="{XLINK_NS}" xmlns:xsi="{XSI_NS}"'
# Characters XML 1.0 cannot carry (clients may send them in parameter values).
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Integers beyond this mean "as much as allowed" (SQLite and timers need bounded values).
_INT_MAX = 2**31 - 1


def add_uws_routes(router: APIRouter, services: TapServices, context: ContextFactory) -> None:
    """Add the UWS job routes to a TAP router (``context(request)`` -> TapContext)."""
    jobs = services.jobs  # the "tap" kind: compute jobs are not TAP jobs
    settings = services.settings

    async def caller(request: Request) -> tuple[Any, int | None]:
        # Jobs belong to the stable user id, never to a name that can be re-created.
        ctx = await context(request)
        return ctx, ctx.identity.user_id

    async def body(request: Request, ctx: Any | None = None) -> TapParams:
        """The request's parameters; with ``ctx``, upload parts too (streamed to the
        data directory's tmp/, counted against the caller's upload bytes in flight);
        without, a file part is refused."""
        if ctx is None:
            return await read_params(request, max_bytes=0)
        return await read_params(request, max_bytes=settings.upload_max_bytes,
                                 spool_dir=services.scratch_dir, budget=services.upload_bytes,
                                 key=budget_key(ctx, request))

    def budget_key(ctx: Any, request: Request) -> str:
        return caller_key(ctx.identity, request.client.host if request.client else None)

    def job_url(ctx: Any, job_id: str) -> str:
        return f"{ctx.base}/async/{job_id}"

    def see_other(url: str) -> Response:
        return RedirectResponse(url, status_code=303)

    @router.get("/async")
    async def job_list(request: Request) -> Response:
        ctx, owner = await caller(request)
        params = await body(request)
        phases = [_phase(p) for p in params.getall("phase")]
        after = params.get("after")
        last = params.get("last")
        after_t = _time_param("AFTER", after) if after else None
        last_n = _int_param("LAST", last, minimum=0) if last else None
        if owner is None:
            # Anonymous callers cannot be told apart: nobody's jobs are "theirs".
            listed: list[Job] = []
        else:
            listed = await run_in_threadpool(jobs.list, owner, phases=phases, after=after_t,
                                             last=last_n)
        return Response(job_list_xml(listed, ctx.base), media_type=XML)

    @router.post("/async")
    async def create(request: Request) -> Response:
        ctx, owner = await caller(request)
        params = await body(request, ctx)
        try:
            phase = params.get("phase")
            values = _values(params)
            check_dest_scope(ctx.identity, values)
            job = await run_in_threadpool(
                functools.partial(jobs.create, owner, values, _parts(params),
                                  workspace=ctx.workspace,
                                  owner_name=ctx.identity.username,
                                  budget_key=budget_key(ctx, request)))
        finally:
            params.close()
        if phase is not None and _phase(phase) == "RUN":
            await run_in_threadpool(jobs.run, job.id, owner)
        return see_other(job_url(ctx, job.id))

    @router.get("/async/{job_id}")
    async def job_resource(request: Request, job_id: str) -> Response:
        ctx, owner = await caller(request)
        wait = _ci(request, "wait")
        if wait is not None:
            seconds = _int_param("WAIT", wait, minimum=-1)
            phase = _ci(request, "phase")
            job = await jobs.wait(job_id, owner, float(seconds),
                                  phase=_phase(phase) if phase else None)
        else:
            job = await run_in_threadpool(jobs.get, job_id, owner)
        return Response(job_xml(job, ctx.base), media_type=XML)

    @router.post("/async/{job_id}")
    async def job_post(request: Request, job_id: str) -> Response:
        ctx, owner = await caller(request)
        params = await body(request, ctx)
        try:
            action = (params.get("action") or "").strip().upper()
            if action == "DELETE":
                await run_in_threadpool(jobs.delete, job_id, owner)
                return see_other(f"{ctx.base}/async")
            if action:
                raise TapError(f"unknown ACTION {action!r}: only ACTION=DELETE is"
                               " supported")
            values = _values(params)
            values.pop("phase", None)
            check_dest_scope(ctx.identity, values)
            if values or params.parts:
                await run_in_threadpool(jobs.update_parameters, job_id, owner, values,
                                        _parts(params))
            else:
                await run_in_threadpool(jobs.get, job_id, owner)
        finally:
            params.close()
        if params.get("phase"):
            await _change_phase(jobs, job_id, owner, params.get("phase") or "")
        return see_other(job_url(ctx, job_id))

    @router.delete("/async/{job_id}")
    async def job_delete(request: Request, job_id: str) -> Response:
        ctx, owner = await caller(request)
        await run_in_threadpool(jobs.delete, job_id, owner)
        return see_other(f"{ctx.base}/async")

    @router.get("/async/{job_id}/phase")
    async def phase_get(request: Request, job_id: str) -> Response:
        _, owner = await caller(request)
        job = await run_in_threadpool(jobs.get, job_id, owner)
        return Response(job.phase, media_type=TEXT)

    @router.post("/async/{job_id}/phase")
    async def phase_post(request: Request, job_id: str) -> Response:
        ctx, owner = await caller(request)
        params = await body(request)
        phase = params.get("phase")
        if not phase:
            raise TapError("missing parameter PHASE (RUN or ABORT)")
        await _change_phase(jobs, job_id, owner, phase)
        return see_other(job_url(ctx, job_id))

    @router.get("/async/{job_id}/executionduration")
    async def duration_get(request: Request, job_id: str) -> Response:
        _, owner = await caller(request)
        job = await run_in_threadpool(jobs.get, job_id, owner)
        return Response(str(int(job.execution_duration)), media_type=TEXT)

    @router.post("/async/{job_id}/executionduration")
    async def duration_post(request: Request, job_id: str) -> Response:
        ctx, owner = await caller(request)
        params = await body(request)
        value = params.get("executionduration")
        if value is None:
            raise TapError("missing parameter EXECUTIONDURATION (seconds)")
        seconds = _int_param("EXECUTIONDURATION", value)
        await run_in_threadpool(jobs.set_execution_duration, job_id, owner, float(seconds))
        return see_other(job_url(ctx, job_id))

    @router.get("/async/{job_id}/destruction")
    async def destruction_get(request: Request, job_id: str) -> Response:
        _, owner = await caller(request)
        job = await run_in_threadpool(jobs.get, job_id, owner)
        return Response(format_time(job.destruction), media_type=TEXT)

    @router.post("/async/{job_id}/destruction")
    async def destruction_post(request: Request, job_id: str) -> Response:
        ctx, owner = await caller(request)
        params = await body(request)
        value = params.get("destruction")
        if not value:
            raise TapError("missing parameter DESTRUCTION (an ISO 8601 date-time)")
        when = _time_param("DESTRUCTION", value)
        await run_in_threadpool(jobs.set_destruction, job_id, owner, when)
        return see_other(job_url(ctx, job_id))

    @router.get("/async/{job_id}/quote")
    async def quote(request: Request, job_id: str) -> Response:
        _, owner = await caller(request)
        job = await run_in_threadpool(jobs.get, job_id, owner)
        return Response(format_time(job.quote) or "", media_type=TEXT)

    @router.get("/async/{job_id}/owner")
    async def owner_get(request: Request, job_id: str) -> Response:
        _, owner = await caller(request)
        job = await run_in_threadpool(jobs.get, job_id, owner)
        return Response(job.owner or "", media_type=TEXT)

    @router.get("/async/{job_id}/error")
    async def error(request: Request, job_id: str) -> Response:
        _, owner = await caller(request)
        job = await run_in_threadpool(jobs.get, job_id, owner)
        if job.error is None:
            raise JobNotFound(f"job {job_id} has no error (it is {job.phase})")
        from taphouse.formats import write_error

        e = job.error
        body = write_error(e.message, query=e.query, line=e.line, column=e.column)
        return Response(body, media_type="application/x-votable+xml")

    @router.get("/async/{job_id}/results")
    async def results(request: Request, job_id: str) -> Response:
        ctx, owner = await caller(request)
        job = await run_in_threadpool(jobs.get, job_id, owner)
        return Response(_HEAD + _results_xml(job, ctx.base, _NS), media_type=XML)

    @router.get("/async/{job_id}/results/{name}")
    async def result(request: Request, job_id: str, name: str) -> Response:
        _, owner = await caller(request)
        job = await run_in_threadpool(jobs.get, job_id, owner)
        for r in job.results:
            if r.name == name:
                path = jobs.jobs_dir / job.id / r.file
                if path.is_file():
                    return FileResponse(path, media_type=r.mime, filename=r.file,
                                        content_disposition_type="inline")
        raise JobNotFound(f"job {job_id} has no result {name!r} (it is {job.phase})")

    @router.get("/async/{job_id}/parameters")
    async def parameters_get(request: Request, job_id: str) -> Response:
        _, owner = await caller(request)
        job = await run_in_threadpool(jobs.get, job_id, owner)
        return Response(_HEAD + _parameters_xml(job, _NS), media_type=XML)

    @router.post("/async/{job_id}/parameters")
    async def parameters_post(request: Request, job_id: str) -> Response:
        ctx, owner = await caller(request)
        params = await body(request, ctx)
        try:
            values = _values(params)
            phase = values.pop("phase", None)
            check_dest_scope(ctx.identity, values)
            await run_in_threadpool(jobs.update_parameters, job_id, owner, values,
                                    _parts(params))
        finally:
            params.close()
        if phase:
            await _change_phase(jobs, job_id, owner, phase)
        return see_other(job_url(ctx, job_id))


async def _change_phase(jobs: JobsOfKind, job_id: str, owner: int | None, phase: str) -> None:
    value = _phase(phase)
    if value == "RUN":
        await run_in_threadpool(jobs.run, job_id, owner)
    elif value == "ABORT":
        await run_in_threadpool(jobs.abort, job_id, owner)
    else:
        raise TapError(f"PHASE={phase!r} cannot be requested: use PHASE=RUN or PHASE=ABORT")


# --- documents ---------------------------------------------------------------------------
def job_list_xml(jobs: Iterable[Job], base: str) -> str:
    """The ``uws:jobs`` document (UWS 1.1)."""
    out = [_HEAD, f'<uws:jobs {_NS} version="1.1">']
    for job in jobs:
        out.append(f'<uws:jobref id={quoteattr(job.id)}'
                   f' xlink:href={quoteattr(f"{base}/async/{job.id}")}>'
                   f"<uws:phase>{job.phase}</uws:phase>")
        if job.run_id:
            out.append(f"<uws:runId>{_text(job.run_id)}</uws:runId>")
        out.append(_owner_xml(job))
        out.append(f"<uws:creationTime>{format_time(job.created)}</uws:creationTime>"
                   "</uws:jobref>")
    out.append("</uws:jobs>")
    return "".join(out)


def job_xml(job: Job, base: str) -> str:
    """The ``uws:job`` document (UWS 1.1), elements in schema order."""
    out = [_HEAD, f'<uws:job {_NS} version="1.1">',
           f"<uws:jobId>{escape(job.id)}</uws:jobId>"]
    if job.run_id:
        out.append(f"<uws:runId>{_text(job.run_id)}</uws:runId>")
    out.append(_owner_xml(job))
    out.append(f"<uws:phase>{job.phase}</uws:phase>")
    out.append(_time_xml("quote", job.quote))
    out.append(f"<uws:creationTime>{format_time(job.created)}</uws:creationTime>")
    out.append(_time_xml("startTime", job.started))
    out.append(_time_xml("endTime", job.ended))
    out.append(f"<uws:executionDuration>{int(job.execution_duration)}"
               "</uws:executionDuration>")
    out.append(_time_xml("destruction", job.destruction))
    out.append(_parameters_xml(job))
    out.append(_results_xml(job, base))
    if job.error is not None:
        e = job.error
        where = [f"{k} {v}" for k, v in (("line", e.line), ("column", e.column)) if v]
        message = f"{e.message} (at {', '.join(where)})" if where else e.message
        out.append('<uws:errorSummary type="fatal" hasDetail="true">'
                   f"<uws:message>{_text(message)}</uws:message>"
                   "</uws:errorSummary>")
    out.append("</uws:job>")
    return "".join(out)


def _owner_xml(job: Job) -> str:
    if job.owner is None:
        return '<uws:ownerId xsi:nil="true"/>'
    return f"<uws:ownerId>{_text(job.owner)}</uws:ownerId>"


def _time_xml(name: str, t: float | None) -> str:
    if t is None:
        return f'<uws:{name} xsi:nil="true"/>'
    return f"<uws:{name}>{format_time(t)}</uws:{name}>"


def _parameters_xml(job: Job, ns: str = "") -> str:
    attrs = f" {ns}" if ns else ""
    out = [f"<uws:parameters{attrs}>"]
    for name, value in job.params.items():
        out.append(f"<uws:parameter id={_attr(name)}>{_text(value)}</uws:parameter>")
    for name in job.parts:
        out.append(f'<uws:parameter id={_attr(name)} byReference="true">'
                   f"param:{_text(name)}</uws:parameter>")
    out.append("</uws:parameters>")
    return "".join(out)


def _results_xml(job: Job, base: str, ns: str = "") -> str:
    attrs = f" {ns}" if ns else ""
    out = [f"<uws:results{attrs}>"]
    for r in job.results:
        href = f"{base}/async/{job.id}/results/{r.name}"
        out.append(f"<uws:result id={quoteattr(r.name)} xlink:href={quoteattr(href)}"
                   f" size=\"{r.size}\" mime-type={quoteattr(r.mime)}/>")
    out.append("</uws:results>")
    return "".join(out)


# --- parameter helpers ---------------------------------------------------------------------
def _values(params: TapParams) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, values in params.values.items():
        if not values:
            continue
        # Several UPLOAD parameters each add tables; otherwise the last value counts.
        out[name] = ";".join(values) if name == "upload" else values[-1]
    return out


def _parts(params: TapParams) -> dict[str, tuple[Path, str]]:
    """The upload parts as (file, content type); the job service moves the files."""
    return {name: (path, params.part_types.get(name, ""))
            for name, path in params.parts.items()}


def _ci(request: Request, name: str) -> str | None:
    for key, value in request.query_params.multi_items():
        if key.lower() == name:
            return value
    return None


def _phase(text: str) -> str:
    value = text.strip().upper()
    if value not in PHASES and value not in {"RUN", "ABORT"}:
        raise TapError(f"unknown PHASE {text!r}: one of {', '.join(PHASES)}"
                       " (RUN or ABORT to change a job's phase)")
    return value


def _int_param(name: str, text: str, *, minimum: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise TapError(f"{name} must be an integer, not {text[:40]!r}") from None
    if minimum is not None and value < minimum:
        raise TapError(f"{name} must be at least {minimum}, not {value}")
    return max(min(value, _INT_MAX), -_INT_MAX)


def _text(value: str) -> str:
    """``value`` escaped for XML element content."""
    return escape(_NOT_XML.sub("\ufffd", value))


def _attr(value: str) -> str:
    return quoteattr(_NOT_XML.sub("\ufffd", value))


def _time_param(name: str, text: str) -> float:
    try:
        return parse_time(text)
    except Exception as exc:
        raise TapError(f"{name}: {exc}") from None
