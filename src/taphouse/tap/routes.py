"""The TAP 1.1 HTTP endpoints, mountable at ``/tap`` and at each workspace's
``/ws/<user>/<workspace>/tap``. Handlers only translate HTTP to service calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from taphouse.access import ScopeBuilder
from taphouse.admission import ByteBudget, SlotPool, caller_key
from taphouse.admission.limits import Slot, ThreadLane
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import DatabaseMeta, TableMeta
from taphouse.jobs.service import JobsOfKind
from taphouse.query.cancel import CancelHandle
from taphouse.query.request import (
    QuerySpec,
    check_dest_scope,
    parse_query_spec,
    reads_only_metadata,
)
from taphouse.query.service import PreparedQuery, QueryService
from taphouse.settings import Settings
from taphouse.tap import vosi
from taphouse.tap.errors import NotFound, TapError
from taphouse.tap.params import TapParams, read_params

XML = "text/xml; charset=utf-8"
log = logging.getLogger("taphouse.tap")
#: Time limit (seconds) of a sync query that reads only TAP_SCHEMA.
METADATA_TIMEOUT = 30.0


@dataclass
class TapContext:
    """Who calls, which scope, and the public base URL of the endpoint called."""

    identity: Identity
    workspace: list[str] | None
    base: str


ContextFactory = Callable[[Request], Awaitable[TapContext]]


@dataclass(frozen=True)
class Endpoint:
    """What the VOSI documents of one TAP endpoint say, known from its URL alone (a
    workspace's are the same whether or not it exists): its base URL, the interfaces
    (base URL and security methods) its capabilities list, whether an anonymous caller
    is told by a challenge that logging in is possible, and who is logged in (None)."""

    base: str
    interfaces: tuple[vosi.Interface, ...]
    challenge: bool = True
    username: str | None = None


EndpointFactory = Callable[[Request], Awaitable[Endpoint]]


@dataclass(frozen=True)
class TapServices:
    """What the TAP endpoints of every service (main, login, workspaces) work with."""

    settings: Settings
    sync: SyncResponder
    scopes: ScopeBuilder
    jobs: JobsOfKind
    #: Where request bodies are spooled (the data directory's tmp/ area).
    scratch_dir: Path
    #: Upload bytes in flight, per caller.
    upload_bytes: ByteBudget
    #: Whether the service can answer queries, and a note (VOSI availability).
    health: Callable[[], tuple[bool, str]]


def tap_router(services: TapServices, context: ContextFactory,
               describe: EndpointFactory) -> APIRouter:
    """All TAP endpoints of one service (main, login endpoint or a workspace).

    ``context(request)`` establishes who calls and what they may see (raising for an
    unknown or foreign workspace); ``describe(request)`` answers the public VOSI
    capabilities and availability without that (it may still refuse bad credentials,
    and a login endpoint refuses anonymous callers)."""
    router = APIRouter()
    settings = services.settings

    @router.api_route("/sync", methods=["GET", "POST"])
    async def sync(request: Request) -> Response:
        ctx = await context(request)
        if _large_request(request):
            # Too long to be a TAP_SCHEMA query, which alone could still be admitted:
            # refuse before reading the body when a query would be refused anyway (a
            # flood of refused 100 kB queries must cost little).
            services.sync.check(ctx.identity, request)
        params = await read_params(request, max_bytes=settings.upload_max_bytes,
                                   spool_dir=services.scratch_dir,
                                   budget=services.upload_bytes,
                                   key=caller_key(ctx.identity, _host(request)))
        try:
            spec = parse_query_spec(params.flat(), settings)
            if spec.dest and request.method != "POST":
                # GET must be safe (a link or an image can make a browser send it).
                raise TapError("DEST writes a table: send it with POST, not GET")
            check_dest_scope(ctx.identity, {"dest": spec.dest or "",
                                            "upload": params.flat().get("upload", "")})
            # The uploads are read into the query before the first byte is answered.
            return await services.sync.respond(ctx, spec, params, request)
        finally:
            params.close()

    # Public (VOSI 1.1, TAP 1.1): clients read how to log in here. GET and HEAD, as
    # AuthVO's clients probe with HEAD; a 200 to an anonymous caller carries the login
    # challenges (AuthVO "optional authentication"; TOPCAT then offers to log in).
    @router.api_route("/capabilities", methods=["GET", "HEAD"])
    async def capabilities(request: Request) -> Response:
        endpoint = await describe(request)
        body = vosi.capabilities(settings, endpoint.base, interfaces=endpoint.interfaces)
        return Response(body, media_type=XML, headers=_login_headers(endpoint))

    @router.api_route("/availability", methods=["GET", "HEAD"])
    async def availability(request: Request) -> Response:
        endpoint = await describe(request)
        up, note = await run_in_threadpool(services.health)
        return Response(vosi.availability(note, available=up), media_type=XML,
                        headers=_login_headers(endpoint))

    @router.get("/tables")
    async def tables(request: Request) -> Response:
        ctx = await context(request)
        detail = (request.query_params.get("detail") or "max").lower()
        dbs, tabs = await run_in_threadpool(_visible, services.scopes, ctx)
        wanted = request.query_params.get("tables")
        if wanted:
            # TAP+ extension (astroquery's TapPlus.load_table): only the named tables.
            names = {n.strip().lower() for n in wanted.split(",")}
            tabs = [t for t in tabs if _table_names(t) & names]
        return Response(vosi.tableset(dbs, tabs, detail, tapplus=_is_tapplus(request)),
                        media_type=XML)

    @router.get("/tables/{name}")
    async def table(request: Request, name: str) -> Response:
        ctx = await context(request)
        found = await run_in_threadpool(_visible_one, services.scopes, ctx, name)
        if found is None:
            raise NotFound(f"unknown table {name!r}")
        return Response(vosi.single_table(found, tapplus=_is_tapplus(request)),
                        media_type=XML)

    @router.get("/examples")
    async def examples(request: Request) -> Response:
        await context(request)
        from taphouse.tap.examples import EXAMPLES

        return Response(vosi.examples(EXAMPLES), media_type="application/xhtml+xml")

    from taphouse.tap.uws import add_uws_routes

    add_uws_routes(router, services, context)
    return router


def _login_headers(endpoint: Endpoint) -> dict[str, str]:
    from taphouse.auth.challenges import challenge_headers

    if endpoint.username is not None:
        return {"X-VO-Authenticated": endpoint.username}
    return challenge_headers() if endpoint.challenge else {}


def _large_request(request: Request) -> bool:
    length = request.headers.get("content-length", "")
    return (length.isdigit() and int(length) > 8192) or \
        len(request.scope.get("query_string", b"")) > 8192


def _host(request: Request) -> str | None:
    return request.client.host if request.client else None


def _table_names(t: TableMeta) -> set[str]:
    return {t.qualified_name.lower(), f"{t.database}.{t.name}".lower()}


def _is_tapplus(request: Request) -> bool:
    # astroquery's TapPlus needs a non-standard attribute in /tables (see vosi.py). Its
    # GET requests (plain http.client) carry no User-Agent; its POSTs say astroquery/.
    agent = request.headers.get("user-agent")
    return agent is None or agent.startswith("astroquery/")


def _visible_one(scopes: ScopeBuilder, ctx: TapContext, name: str) -> TableMeta | None:
    """The table ``schema.table`` if the caller sees it: looked up alone (a service
    with 10,000 tables must not build them all for one)."""
    from taphouse.tap.tap_schema import tap_schema_meta

    schema, dot, table = name.lower().partition(".")
    if not dot:
        return None
    schema, table = schema.strip('"'), table.strip('"')
    if schema == "tap_schema":
        found = next((t for t in tap_schema_meta() if t.name == table), None)
    elif ctx.workspace is not None and schema in ctx.workspace and table.count(".") >= 1:
        # REMOTE.schema.table of a remote the workspace selects (taphouse.remotes.catalog)
        remote = scopes.remote_metadata(ctx.identity, [schema])[1]
        found = next((t for t in remote if name.lower() in _table_names(t)), None)
    else:
        found = scopes.visible_table(ctx.identity, schema, table, ctx.workspace)
    return found if found is not None and name.lower() in _table_names(found) else None


def _visible(scopes: ScopeBuilder, ctx: TapContext
             ) -> tuple[list[DatabaseMeta], list[TableMeta]]:
    from taphouse.tap.tap_schema import tap_schema_meta

    dbs = scopes.visible_databases(ctx.identity, ctx.workspace)
    # visible_tables, not every table of the visible databases: in another user's
    # schema only the tables shared with the caller exist (userspace).
    tabs = scopes.visible_tables(ctx.identity, ctx.workspace)
    own = tap_schema_meta()
    dbs = dbs + [DatabaseMeta(name="tap_schema", description="TAP 1.1 metadata tables")]
    return dbs, tabs + own


class SyncResponder:
    """Runs a sync query and answers with a streamed result (400 before the first byte
    if the query fails; the client going away cancels the query).

    Admission first: a query is admitted only while the caller (account, or address
    when anonymous), all anonymous callers together and the whole service are under
    their caps (``sync_slots``), otherwise it is refused at once with a 503. Queries
    reading only TAP_SCHEMA have caps and worker threads of their own
    (``metadata_slots``, ``metadata_lane``), so browsing metadata never waits behind
    queries.
    """

    def __init__(self, service: QueryService, settings: Settings, *, sync_slots: SlotPool,
                 query_lane: ThreadLane, metadata_slots: SlotPool,
                 metadata_lane: ThreadLane) -> None:
        self.service = service
        self.settings = settings
        self.sync_slots = sync_slots
        self.query_lane = query_lane
        self.metadata_slots = metadata_slots
        self.metadata_lane = metadata_lane

    def check(self, identity: Identity, request: Request | None) -> None:
        """Raise :class:`~taphouse.admission.Overloaded` if a (data) query of this caller
        would be refused now."""
        self.sync_slots.check(caller_key(identity, _host(request) if request else None),
                              grouped=identity.anonymous)

    def admit(self, identity: Identity, request: Request | None, *,
              metadata: bool = False) -> tuple[Slot, ThreadLane]:
        """A slot (and the thread lane to run in) for one unit of work of ``identity``,
        or :class:`~taphouse.admission.Overloaded`."""
        host = request.client.host if request is not None and request.client else None
        slots, lane = (self.metadata_slots, self.metadata_lane) if metadata else \
            (self.sync_slots, self.query_lane)
        return slots.acquire(caller_key(identity, host), grouped=identity.anonymous), lane

    async def respond(self, ctx: TapContext, spec: QuerySpec, params: TapParams,
                      request: Request | None = None) -> Response:
        slot, lane = self.admit(ctx.identity, request, metadata=reads_only_metadata(spec))
        try:
            return await self._respond(ctx, spec, params, request, slot, lane)
        except BaseException:
            slot.release()
            raise

    async def _respond(self, ctx: TapContext, spec: QuerySpec, params: TapParams,
                       request: Request | None, slot: Slot, lane: ThreadLane) -> Response:
        cancel = CancelHandle()
        # One trip to a worker thread for uploads, translation, execution and the first
        # chunk: a small result is answered without further thread hops. Meanwhile a
        # client that goes away cancels the query (once the response streams, Starlette
        # watches for that itself).
        # Metadata queries have slots of their own; a short time limit keeps a heavy
        # one (a join of TAP_SCHEMA tables) from holding them.
        limit = self.settings.sync_timeout
        if lane is self.metadata_lane:
            limit = min(limit, METADATA_TIMEOUT)
        work = asyncio.ensure_future(lane.run(self._start, ctx, spec, params, cancel, limit))
        watch = asyncio.ensure_future(_watch_disconnect(request, cancel)) if request else None
        try:
            prepared, gen, first = await work
        finally:
            if watch is not None:
                watch.cancel()
        if isinstance(first, _Whole):  # the whole result fitted in the first piece
            slot.release()
            return Response(first.body, media_type=prepared.writer.mime,
                            headers=_disposition(prepared))
        return StreamingResponse(_stream(first, gen, cancel, slot, lane),
                                 media_type=prepared.writer.mime,
                                 headers=_disposition(prepared))

    def _start(self, ctx: TapContext, spec: QuerySpec, params: TapParams,
               cancel: CancelHandle, limit: float
               ) -> tuple[PreparedQuery, Generator[bytes, None, None], Any]:
        service = self.service
        uploads = service.read_uploads(spec, params.parts, params.part_types)
        prepared = service.prepare(ctx.identity, spec, workspace=ctx.workspace,
                                   uploads=uploads)
        cancel.deadline(limit, f"the synchronous time limit of {limit:g} s was reached;"
                               " use the async endpoint for long queries")
        gen = service.execute(prepared, cancel=cancel)
        try:
            first = _next_chunks(gen)
            if first is not _DONE and len(first) < _CHUNK_BYTES:
                # _next_chunks stops early only when the output ended: answer in one go.
                cancel.finish()
                return prepared, gen, _Whole(first)
        except BaseException:
            cancel.finish()
            gen.close()
            raise
        return prepared, gen, first


async def _watch_disconnect(request: Request, cancel: CancelHandle) -> None:
    """Cancel the query when the client disconnects (the body is already read, so the
    next ASGI message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.cancel("client disconnected")
            return


def _disposition(prepared: PreparedQuery) -> dict[str, str]:
    ext = getattr(prepared.writer, "extension", "")
    return {"Content-Disposition": f'inline; filename="result.{ext}"'} if ext else {}


_DONE = object()


class _Whole:
    """A complete small result, sent as one response instead of a stream."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body
_CHUNK_BYTES = 256 * 1024


def _next_chunks(gen: Iterator[bytes]) -> Any:
    """The next ~256 KiB of output (fewer thread hops for many small chunks), or _DONE."""
    parts: list[bytes] = []
    size = 0
    for chunk in gen:
        parts.append(chunk)
        size += len(chunk)
        if size >= _CHUNK_BYTES:
            break
    return b"".join(parts) if parts else _DONE


async def _stream(first: Any, gen: Generator[bytes, None, None], cancel: CancelHandle,
                  slot: Slot, lane: ThreadLane) -> AsyncIterator[bytes]:
    finished = False
    sent = 0
    reason = "client disconnected"
    try:
        chunk = first
        while chunk is not _DONE:
            yield chunk
            sent += len(chunk)
            try:
                chunk = await lane.run(_next_chunks, gen)
            except Exception as exc:
                # Headers are gone: the only way left to say "incomplete" is to end the
                # chunked stream without its last chunk (clients then raise).
                reason = "result stream aborted"
                log.warning("sync result aborted after %d bytes: %s", sent,
                            getattr(exc, "message", None) or exc)
                raise
        finished = True
    finally:
        if not finished:
            cancel.cancel(reason)
            # Close the query's cursor now rather than when the garbage collector gets to
            # the generator: the slot released below must not outlive it.
            try:
                gen.close()
            except ValueError:  # still running in a thread that was abandoned
                pass
        else:
            cancel.finish()
        slot.release()


def tap_error_response(exc: TapError) -> Response:
    from taphouse.formats import write_error

    body = write_error(exc.message, query=exc.query, line=exc.line, column=exc.column)
    return Response(body, status_code=exc.status,
                    media_type="application/x-votable+xml")


__all__ = ["tap_router", "TapContext", "TapServices", "Endpoint", "SyncResponder",
           "tap_error_response", "TapError"]
