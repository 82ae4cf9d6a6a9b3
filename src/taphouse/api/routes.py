"""The platform REST API (JSON) under ``/api``: discovery, user tables, quotas, shares and
workspaces. The contract is docs/api.md; handlers only translate HTTP to the
services of :mod:`taphouse.userspace` (errors are mapped to HTTP in ``taphouse.server``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from taphouse.access import ScopeBuilder
from taphouse.admission import ByteBudget, Slot, caller_key, read_body, spool_body
from taphouse.admission.limits import ThreadLane
from taphouse.auth.authenticator import Authenticator, require_scope
from taphouse.auth.errors import Forbidden
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import ColumnMeta, TableMeta, TableSummary
from taphouse.catalogue.store import CatalogueStore
from taphouse.jobs.model import ACTIVE_PHASES, PHASES, Job, JobError, format_time, now
from taphouse.jobs.service import JobService
from taphouse.query.errors import QueryError
from taphouse.query.request import parse_query_spec
from taphouse.query.service import QueryService
from taphouse.remotes.registry import RemoteRegistry
from taphouse.settings import Settings
from taphouse.tap.routes import SyncResponder
from taphouse.userspace import UserSpace, Workspaces
from taphouse.userspace.errors import UnknownTable, UserSpaceError
from taphouse.userspace.names import MYDB
from taphouse.userspace.shares import Shares

#: ``format=`` of an upload -> a content type ``read_upload`` understands.
_UPLOAD_TYPES = {
    "votable": "application/x-votable+xml", "vot": "application/x-votable+xml",
    "xml": "application/x-votable+xml", "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet", "fits": "application/fits",
}


def column_dict(c: ColumnMeta) -> dict[str, Any]:
    return {"name": c.name, "adql_name": c.adql_name, "datatype": c.datatype,
            "arraysize": c.arraysize, "xtype": c.xtype, "unit": c.unit, "ucd": c.ucd,
            "utype": c.utype, "description": c.description, "principal": c.principal,
            "indexed": c.indexed, "bad_unit": c.bad_unit,
            "frame": dataclasses.asdict(c.coosys) if c.coosys is not None else None,
            "time_system": dataclasses.asdict(c.timesys) if c.timesys is not None else None}


def table_dict(t: TableMeta, *, columns: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": t.name, "database": t.database, "qualified_name": t.qualified_name,
        "description": t.description, "nrows": t.nrows, "ra_column": t.ra_column,
        "dec_column": t.dec_column, "epoch": t.epoch}
    if columns:
        out["columns"] = [column_dict(c) for c in t.columns]
    return out


def summary_dict(t: TableSummary) -> dict[str, Any]:
    """A table in a listing: :func:`table_dict` without columns, plus their number."""
    return {"name": t.name, "database": t.database, "qualified_name": t.qualified_name,
            "description": t.description, "nrows": t.nrows, "ra_column": t.ra_column,
            "dec_column": t.dec_column, "epoch": t.epoch, "ncolumns": t.ncolumns}


#: Most tables one search answers with (``limit`` may ask for fewer).
SEARCH_LIMIT = 200
#: Longest search text.
SEARCH_MAX_CHARS = 200

#: Most jobs ``GET /api/jobs`` lists at once (``last`` may ask for fewer).
JOBS_LIST_LIMIT = 1000


def job_dict(job: Job) -> dict[str, Any]:
    """One job as the JSON jobs API shows it (docs/api.md): times in ISO 8601 UTC,
    ``elapsed`` in seconds (so far, while it runs), ``error`` with line and column."""
    p = job.params
    elapsed = None
    if job.started is not None:
        elapsed = round((job.ended if job.ended is not None else now()) - job.started, 3)
    error = None
    if job.error is not None:
        error = {"message": job.error.message, "line": job.error.line,
                 "column": job.error.column}
    result = job.result
    return {
        "id": job.id, "kind": job.kind, "phase": job.phase, "run_id": job.run_id,
        "query": p.get("query"), "lang": p.get("lang"),
        "responseformat": p.get("responseformat") or p.get("format"),
        "maxrec": p.get("maxrec"), "dest": p.get("dest"),
        "workspace": job.workspace,
        "created": format_time(job.created), "queued": format_time(job.queued),
        "started": format_time(job.started), "ended": format_time(job.ended),
        "destruction": format_time(job.destruction),
        "execution_duration": job.execution_duration, "elapsed": elapsed,
        "rows": result.rows if result else None,
        "overflow": result.overflow if result else None,
        "result": {"name": result.name, "mime": result.mime, "size": result.size}
        if result else None,
        "error": error,
    }


def _stored_id(t: TableMeta) -> int:
    if t.table_id is None:  # user tables always have one; an upload has none
        raise UnknownTable(f"{t.qualified_name} is not a stored table")
    return t.table_id


@dataclass(frozen=True)
class ApiServices:
    """What the ``/api`` endpoints work with (each passed explicitly by the server)."""

    settings: Settings
    authenticator: Authenticator
    #: Who sees which databases and tables (discovery, shared tables).
    scopes: ScopeBuilder
    catalogue: CatalogueStore
    userspace: UserSpace
    workspaces: Workspaces
    shares: Shares
    #: Registered remotes (a restricted remote's rows in a table refuse some shares).
    remotes: RemoteRegistry
    #: Every job kind (the JSON view of the caller's jobs).
    jobs: JobService
    #: Admission of uploads and downloads (sync slots and their threads).
    sync: SyncResponder
    #: ``/api/explain``.
    query_service: QueryService
    #: Where upload bodies are spooled (the data directory's tmp/ area).
    scratch_dir: Path
    #: Upload bytes in flight, per caller.
    upload_bytes: ByteBudget


def api_router(services: ApiServices) -> APIRouter:
    """Every ``/api`` endpoint of the platform except the admin ones."""
    router = APIRouter()
    space = services.userspace
    workspaces = services.workspaces
    settings = services.settings
    authenticator = services.authenticator
    scopes = services.scopes
    catalogue = services.catalogue
    shares_ = services.shares

    async def caller(request: Request) -> Identity:
        return await authenticator.identify_async(request)

    async def reader(request: Request) -> Identity:
        identity = await caller(request)
        require_scope(identity, "read")
        return identity

    async def writer(request: Request) -> Identity:
        identity = await caller(request)
        require_scope(identity, "write")
        return identity

    def user_table_dict(t: TableMeta, *, columns: bool = False,
                        shares: dict[str, list[str]] | None = None) -> dict[str, Any]:
        extra = t.extra or {}
        out = {"name": t.name, "schema": t.database, "qualified_name": t.qualified_name,
               "description": t.description, "nrows": t.nrows, "nbytes": t.nbytes,
               "created": t.created, "provenance": extra.get("provenance") or {},
               "shared_with": shares if shares is not None
               else shares_.of(_stored_id(t)),
               "job_id": (extra.get("provenance") or {}).get("job_id")
               if t.name.startswith("job_") else None,
               "ra_column": t.ra_column, "dec_column": t.dec_column, "epoch": t.epoch}
        if columns:
            out["columns"] = [column_dict(c) for c in t.columns]
        return out

    # --- discovery (anonymous callers see what anonymous may read) ---------------------
    # Lists come from table summaries (no column metadata parsed), so a service with
    # 10,000 tables answers in milliseconds; columns come one table at a time.
    def _db_name(identity: Identity, db: str) -> str:
        db = db.lower()
        if db == MYDB and identity.user_schema:
            return identity.user_schema
        return db

    @router.get("/databases")
    async def databases(request: Request) -> Response:
        identity = await caller(request)
        counted = await run_in_threadpool(scopes.visible_counts, identity)
        return JSONResponse([{"name": d.name, "description": d.description, "kind": d.kind,
                              "tables": n} for d, n in counted])

    @router.get("/databases/{db}/tables")
    async def database_tables(request: Request, db: str) -> Response:
        identity = await caller(request)
        offset, limit = _paging(request, default_limit=None)
        name = _db_name(identity, db)

        def work() -> list[dict[str, Any]]:
            if name not in {d.name for d in scopes.visible_databases(identity)}:
                raise UnknownTable(f"unknown database {db!r}")
            return [summary_dict(t) for t in scopes.visible_summaries(
                identity, [name], offset=offset, limit=limit)]

        return JSONResponse(await run_in_threadpool(work))

    @router.get("/tables")
    async def search_tables(request: Request) -> Response:
        """Tables whose name or description, or a column's, holds ``q``."""
        identity = await caller(request)
        q = (request.query_params.get("q") or "").strip()
        if not q:
            raise UserSpaceError("give the text to search for as q=")
        if len(q) > SEARCH_MAX_CHARS:
            raise UserSpaceError(f"search text longer than {SEARCH_MAX_CHARS} characters")
        offset, limit = _paging(request, default_limit=SEARCH_LIMIT)
        dbs = request.query_params.getlist("database")
        names = [_db_name(identity, d) for d in dbs] if dbs else None

        def work() -> list[dict[str, Any]]:
            found = scopes.visible_summaries(identity, names, search=q,
                                                      offset=offset, limit=limit)
            return [dict(summary_dict(t), matched_columns=list(t.matched_columns))
                    for t in found]

        return JSONResponse(await run_in_threadpool(work))

    @router.get("/tables/{db}/{table}")
    async def table(request: Request, db: str, table: str) -> Response:
        identity = await caller(request)
        found = await run_in_threadpool(scopes.visible_table, identity,
                                        _db_name(identity, db), table)
        if found is None:
            raise UnknownTable(f"unknown table {db}.{table}")
        return JSONResponse(table_dict(found, columns=True))

    # --- user tables ------------------------------------------------------------------
    @router.get("/usertables")
    async def user_tables(request: Request) -> Response:
        identity = await reader(request)

        def work() -> list[dict[str, Any]]:
            tables = space.tables(identity)
            shares = shares_.of_many([t.table_id for t in tables if t.table_id is not None])
            return [user_table_dict(t, shares=shares.get(t.table_id or 0)) for t in tables]

        return JSONResponse(await run_in_threadpool(work))

    def readable_user_table(identity: Identity, name: str) -> TableMeta:
        """The caller's table ``name`` (or ``mydb.name``), or ``user_x.name`` when that
        user shared it with the caller (read-only uses: describe, download)."""
        schema, dot, bare = name.partition(".")
        if not dot:
            return space.table(identity, name)
        schema = schema.lower()
        if schema in {MYDB, identity.user_schema}:
            return space.table(identity, bare)
        found = scopes.visible_table(identity, schema, bare)
        db = catalogue.database(schema) if found is not None else None
        if found is None or db is None or db.kind != "user":
            raise UnknownTable(f"unknown table {name}: not yours and not shared with you")
        return found

    @router.get("/usertables/{name}")
    async def user_table(request: Request, name: str) -> Response:
        identity = await reader(request)

        def work() -> dict[str, Any]:
            return user_table_dict(readable_user_table(identity, name), columns=True)

        return JSONResponse(await run_in_threadpool(work))

    @router.put("/usertables/{name}")
    async def upload(request: Request, name: str) -> Response:
        identity = await writer(request)
        mode = (request.query_params.get("mode") or "create").lower()
        fmt = (request.query_params.get("format") or "").lower()
        if fmt and fmt not in _UPLOAD_TYPES:
            raise UserSpaceError(f"unknown format {fmt!r}: use votable, csv, parquet or fits")
        ctype = _UPLOAD_TYPES.get(fmt) or request.headers.get("content-type")
        description = request.query_params.get("description")
        # Reading and storing a table is query-sized work: it runs in a sync slot.
        slot, lane = services.sync.admit(identity, request)
        key = caller_key(identity, request.client.host if request.client else None)
        path: Path | None = None
        held = 0
        try:
            path, held = await spool_body(request, settings.upload_max_bytes,
                                          services.scratch_dir, services.upload_bytes, key)
            if not held:
                raise UserSpaceError("empty upload: send the table file as the request body")

            def work() -> dict[str, Any]:
                t = space.store_upload(identity, name, path, content_type=ctype, mode=mode,
                                       max_rows=settings.upload_max_rows,
                                       description=description)
                return user_table_dict(t, columns=True)

            return JSONResponse(await lane.run(work), status_code=201)
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
            if held:
                services.upload_bytes.give_back(key, held)
            slot.release()

    @router.get("/usertables/{name}/data")
    async def download(request: Request, name: str) -> Response:
        identity = await reader(request)
        fmt = request.query_params.get("format") or request.query_params.get(
            "responseformat") or "votable"
        slot, lane = services.sync.admit(identity, request)
        try:
            t = await lane.run(readable_user_table, identity, name)
            writer_, chunks = await lane.run(
                functools.partial(space.download, t, fmt,
                                  max_bytes=settings.result_max_bytes))
            first = await lane.run(next, chunks, None)
        except BaseException:
            slot.release()
            raise
        ext = getattr(writer_, "extension", "") or "dat"
        return StreamingResponse(_chunks_in(lane, first, chunks, slot),
                                 media_type=writer_.mime,
                                 headers={"Content-Disposition":
                                          f'attachment; filename="{t.name}.{ext}"'})

    @router.patch("/usertables/{name}")
    async def patch_table(request: Request, name: str) -> Response:
        identity = await writer(request)
        body = await _json_object(request)

        def work() -> dict[str, Any]:
            t = space.table(identity, name)
            if "description" in body and not isinstance(body["description"], str):
                raise UserSpaceError('"description" must be a string')
            # Rename first: it is the step that can fail (name taken or invalid), and a
            # failure then leaves the table as it was.
            if body.get("name") is not None and body["name"] != t.name:
                t = space.rename(identity, t.name, body["name"])
            if "description" in body:
                t = space.set_description(identity, t.name, body["description"])
            return user_table_dict(t, columns=True)

        return JSONResponse(await run_in_threadpool(work))

    @router.delete("/usertables/{name}")
    async def drop(request: Request, name: str) -> Response:
        identity = await writer(request)
        await run_in_threadpool(space.drop, identity, name)
        return Response(status_code=204)

    @router.get("/usertables/{name}/shares")
    async def shares(request: Request, name: str) -> Response:
        identity = await reader(request)

        def work() -> dict[str, list[str]]:
            return shares_.of(_stored_id(space.table(identity, name)))

        return JSONResponse(await run_in_threadpool(work))

    @router.put("/usertables/{name}/shares")
    async def put_shares(request: Request, name: str) -> Response:
        identity = await writer(request)
        body = await _json_object(request)
        users, groups = body.get("users", []), body.get("groups", [])
        if not isinstance(users, list) or not isinstance(groups, list):
            raise UserSpaceError('"users" and "groups" must be lists of names')

        allow = body.get("allow_restricted", False)
        if not isinstance(allow, bool):
            raise UserSpaceError('"allow_restricted" must be true or false')

        def work() -> dict[str, list[str]]:
            t = space.table(identity, name)
            audit = authenticator.audit_log
            client = request.client.host if request.client else None
            restricted = restricted_sources(t)
            what = f"{t.database}.{t.name}"
            note = f"; holds rows of restricted {', '.join(sorted(restricted))}" \
                if restricted else ""
            if restricted:
                outside = grantees_outside(restricted, users, groups)
                if outside and not (allow and identity.is_admin):
                    message = (f"{what} holds rows of the restricted source(s)"
                               f" {', '.join(sorted(restricted))}, which {', '.join(outside)}"
                               " may not read: an administrator must give them access to"
                               " the database first (or, as an administrator, share with"
                               ' "allow_restricted": true)')
                    audit.record("share", username=identity.username,
                                 user_id=identity.user_id, client=client,
                                 outcome="refused", detail=f"{what} with {outside}{note}")
                    raise Forbidden(message)
                if outside:
                    note += f"; allowed by administrator {identity.username} for {outside}"
            result = shares_.replace(_stored_id(t), users, groups,
                                     owner=identity.username or "")
            shared = "unshared" if not result["users"] and not result["groups"] else \
                f"shared with users {result['users']} groups {result['groups']}"
            audit.record("share", username=identity.username, user_id=identity.user_id,
                         client=client, detail=f"{what} {shared}{note}")
            return result

        return JSONResponse(await run_in_threadpool(work))

    @router.post("/explain")
    async def explain(request: Request) -> Response:
        """What a query would run where: {"query", "parts": [{"runs_on", "remote_adql" |
        "sql", "maxrec", "tables"}]}; nothing runs (body {"query": ADQL, "maxrec": N})."""
        identity = await caller(request)
        body = await _json_object(request)
        query = body.get("query")
        if not isinstance(query, str):
            return JSONResponse({"error": "missing field 'query' (ADQL text)"},
                                status_code=400)
        values = {"lang": "ADQL", "query": query}
        if body.get("maxrec") is not None:
            values["maxrec"] = str(body["maxrec"])
        try:
            spec = parse_query_spec(values, settings)
            plan = await run_in_threadpool(services.query_service.explain, identity, spec)
        except QueryError as exc:  # a JSON error here, not TAP's VOTable
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return JSONResponse(plan)

    def restricted_sources(t: TableMeta) -> dict[str, frozenset[str]]:
        """Restricted sources (catalogue databases, ``remote:NAME``) whose rows a user
        table holds -> the groups that may read them (taphouse.userspace.lineage)."""
        from taphouse.userspace.lineage import restricted_sources as of

        return of(t, catalogue, services.remotes)

    def grantees_outside(sources: dict[str, frozenset[str]], users: list[object],
                         groups: list[object]) -> list[str]:
        """The users and groups among the grantees who may not read every one of
        ``sources`` (administrators read everything)."""
        from taphouse.userspace.lineage import outside_groups

        accounts = authenticator.accounts
        outside = []
        for name in users:
            user = accounts.user(str(name)) if isinstance(name, str) and name.strip() else None
            if user is None or user.is_admin:
                continue  # no such account: the share grants nothing (see shares.py)
            if outside_groups(sources, accounts.groups_of(user.id)):
                outside.append(f"user {user.name}")
        for group in groups:
            if isinstance(group, str) and outside_groups(sources, {group.strip().lower()}):
                outside.append(f"group {group.strip().lower()}")
        return outside

    @router.get("/quota")
    async def quota(request: Request) -> Response:
        identity = await reader(request)
        usage = await run_in_threadpool(space.usage, identity)
        return JSONResponse(usage.to_dict())

    # --- jobs (the JSON view of the caller's UWS jobs; created and run through /tap) ----
    jobs = services.jobs

    @router.get("/jobs")
    async def list_jobs(request: Request) -> Response:
        identity = await reader(request)
        q = request.query_params
        last_text = q.get("last") or str(JOBS_LIST_LIMIT)
        if not last_text.isdigit() or not 0 < int(last_text) <= JOBS_LIST_LIMIT:
            raise JobError(f"last must be a whole number from 1 to {JOBS_LIST_LIMIT},"
                           f" not {last_text!r}")
        phases = [p.strip().upper() for p in q.getlist("phase")]
        for p in phases:
            if p not in PHASES:
                raise JobError(f"unknown phase {p!r}: use one of {', '.join(PHASES)}")
        kind = q.get("kind")
        listed = await run_in_threadpool(jobs.list, identity.user_id, phases=phases,
                                         last=int(last_text))
        return JSONResponse([job_dict(j) for j in listed if kind is None or j.kind == kind])

    # One job by id: like /tap/async/<id>, anonymous callers reach anonymous jobs (the
    # id is unguessable); ``wait`` blocks while the job is active (UWS WAIT).
    @router.get("/jobs/{job_id}")
    async def get_job(request: Request, job_id: str) -> Response:
        identity = await caller(request)
        wait = request.query_params.get("wait")
        if wait is not None:
            if not wait.isdigit():
                raise JobError(f"wait must be a whole number of seconds, not {wait!r}")
            phase = (request.query_params.get("phase") or "").strip().upper() or None
            if phase is not None and phase not in ACTIVE_PHASES:
                phase = None
            job = await jobs.wait(job_id, identity.user_id, float(wait), phase=phase)
        else:
            job = await run_in_threadpool(jobs.get, job_id, identity.user_id)
        return JSONResponse(job_dict(job))

    @router.post("/jobs/{job_id}/abort")
    async def abort_job(request: Request, job_id: str) -> Response:
        """ABORT a job of any kind (a compute job's sandbox is killed)."""
        identity = await caller(request)
        if not identity.anonymous:
            require_scope(identity, "write")
        job = await run_in_threadpool(jobs.abort, job_id, identity.user_id)
        return JSONResponse(job_dict(job))

    @router.delete("/jobs/{job_id}")
    async def delete_job(request: Request, job_id: str) -> Response:
        identity = await caller(request)
        if not identity.anonymous:
            require_scope(identity, "write")
        await run_in_threadpool(jobs.delete, job_id, identity.user_id)
        return Response(status_code=204)

    # --- workspaces -------------------------------------------------------------------
    base = settings.public_url

    @router.get("/workspaces")
    async def list_workspaces(request: Request) -> Response:
        identity = await reader(request)
        items = await run_in_threadpool(workspaces.list, identity)
        return JSONResponse([w.to_dict(base) for w in items])

    @router.post("/workspaces")
    async def create_workspace(request: Request) -> Response:
        identity = await writer(request)
        body = await _json_object(request)

        def work() -> dict[str, Any]:
            return workspaces.create(identity, body.get("name"), body.get("databases", []),
                                     body.get("description") or "").to_dict(base)

        return JSONResponse(await run_in_threadpool(work), status_code=201)

    @router.get("/workspaces/{name}")
    async def get_workspace(request: Request, name: str) -> Response:
        identity = await reader(request)
        ws = await run_in_threadpool(workspaces.get_own, identity, name)
        return JSONResponse(ws.to_dict(base))

    @router.patch("/workspaces/{name}")
    async def patch_workspace(request: Request, name: str) -> Response:
        identity = await writer(request)
        body = await _json_object(request)

        def work() -> dict[str, Any]:
            return workspaces.update(identity, name, databases=body.get("databases"),
                                     description=body.get("description"),
                                     new_name=body.get("name")).to_dict(base)

        return JSONResponse(await run_in_threadpool(work))

    @router.delete("/workspaces/{name}")
    async def delete_workspace(request: Request, name: str) -> Response:
        identity = await writer(request)
        await run_in_threadpool(workspaces.delete, identity, name)
        return Response(status_code=204)

    return router


def _paging(request: Request, *, default_limit: int | None) -> tuple[int, int | None]:
    """``offset`` and ``limit`` of a listing (whole numbers; ``limit`` at most
    :data:`SEARCH_LIMIT` when the listing has a default limit)."""
    values = []
    for key, default in (("offset", 0), ("limit", default_limit)):
        text = request.query_params.get(key)
        if text is None:
            values.append(default)
            continue
        if not text.isdigit() or len(text) > 9:
            raise UserSpaceError(f"{key} must be a whole number, not {text!r}")
        values.append(int(text))
    offset, limit = values
    if default_limit is not None and limit is not None:
        limit = min(limit, default_limit)
    return offset or 0, limit


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await read_body(request)
    try:
        body = json.loads(raw)
    except Exception:  # noqa: BLE001  (any malformed body)
        raise UserSpaceError("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise UserSpaceError("the request body must be a JSON object")
    return body


async def _chunks_in(lane: ThreadLane, first: bytes | None, rest: Iterator[bytes],
                    slot: Slot) -> AsyncIterator[bytes]:
    """``first`` then the rest of ``rest``, each read in ``lane``; the slot is given
    back (and the table's cursor closed) when the stream ends or the client goes."""
    try:
        chunk = first
        while chunk is not None:
            yield chunk
            chunk = await lane.run(next, rest, None)
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # still running in an abandoned thread
                pass
        slot.release()
