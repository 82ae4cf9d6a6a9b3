"""Assembling the platform and its HTTP application from settings.

:class:`Platform` holds every service, built once; :func:`create_app` puts the HTTP
layer on top. Errors of every package are mapped to HTTP here, and only here.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from typing import TYPE_CHECKING, Any

import duckdb
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from taphouse.access import ScopeBuilder
from taphouse.admission import (
    ByteBudget,
    ForwardedHeaders,
    Overloaded,
    SlotPool,
    TooLarge,
    TrustedProxies,
)
from taphouse.admission.limits import RetryAfter, ThreadLane, retire_idle_threads
from taphouse.admission.memory import use_mmap_for_large_blocks
from taphouse.auth.authenticator import Authenticator
from taphouse.auth.challenges import challenge_headers
from taphouse.auth.errors import AuthError
from taphouse.auth.guards import RequestGuard
from taphouse.auth.identity import Identity
from taphouse.auth.policy import ReadPolicy
from taphouse.auth.routes import admin_router, auth_router
from taphouse.catalogue.store import CatalogueStore, Retention
from taphouse.compute.service import ComputeService
from taphouse.engine.duckdb import DuckDBEngine
from taphouse.engine.postgres import postgres_backends
from taphouse.engine.routing import BackendRouter
from taphouse.errors import ServiceError
from taphouse.hub.link import HubForwarding, HubLink, service_token_path
from taphouse.jobs import JobService
from taphouse.jobs.service import WorkerPool
from taphouse.metadata import MetadataDB
from taphouse.observability import Metrics, RequestLog, metrics_router
from taphouse.outbound import Outbound, policy_from
from taphouse.query.audit import QueryAudit
from taphouse.query.job import TapQueryRunner
from taphouse.query.service import QueryService
from taphouse.remotes.catalog import RemoteSchemas
from taphouse.remotes.registry import RemoteConfig, RemoteRegistry
from taphouse.remotes.routes import admin_remotes_router, remotes_router
from taphouse.secrets import SecretStore
from taphouse.settings import Settings
from taphouse.storage import StorageFull, datadir, is_disk_full
from taphouse.tap.errors import TapError
from taphouse.tap.routes import (
    Endpoint,
    SyncResponder,
    TapContext,
    TapServices,
    tap_error_response,
    tap_router,
)
from taphouse.tap.vosi import Interface
from taphouse.userspace import UserSpace, Workspaces
from taphouse.userspace.shares import Shares
from taphouse.web import add_web_routes

if TYPE_CHECKING:
    from taphouse.engine.spark import SparkBackend

log = logging.getLogger("taphouse")


class Platform:
    """Every service of one taphouse server, built once from settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Storage first (taphouse.storage): private files, the metadata upgraded (after
        # a backup) or refused if newer than this code, permissions checked, what
        # crashed processes left in tmp/ removed, then this process's own tmp/ area.
        datadir.prepare(settings.data_dir)
        # Large result slices go back to the system when freed (admission/memory.py).
        use_mmap_for_large_blocks()
        self.meta = MetadataDB(settings.meta_path)
        datadir.enforce_permissions(settings.data_dir)
        datadir.clean_tmp(settings.tmp_dir)
        self.scratch = datadir.TmpArea(settings.tmp_dir)
        self.catalogue = CatalogueStore(self.meta, settings.tables_dir, Retention(
            grace=settings.maintenance_grace, catalogue=settings.version_retention,
            user=settings.user_version_retention))
        self.engine = DuckDBEngine(settings.tables_dir, threads=settings.engine_threads,
                                   memory_limit=settings.engine_memory_limit,
                                   temp_dir=self.scratch.path,
                                   temp_limit=settings.engine_temp_limit,
                                   max_attached=settings.engine_max_attached,
                                   idle_detach=settings.engine_idle_detach)
        self.policy = ReadPolicy(self.meta)
        # Remote TAP services (remotes): registrations, cached metadata, health.
        # Credentials (remotes, backends) encrypted at rest; keys read on first use.
        self.secrets = SecretStore.from_settings(self.meta, settings)
        self.remotes = RemoteRegistry(
            self.meta, RemoteConfig.from_settings(settings),
            local_database=lambda name: self.catalogue.database(name) is not None,
            secrets=self.secrets)
        self.authenticator = Authenticator(self.meta, settings)
        self.shares = Shares(self.meta, self.catalogue, self.authenticator.accounts,
                             self.remotes)
        self.scopes = ScopeBuilder(self.catalogue, self.engine, self.policy, self.shares,
                                   remote_schemas=RemoteSchemas(self.remotes))
        # The one way out for server-side fetches (URL uploads; remote services later).
        self.outbound = Outbound(policy_from(settings))
        # User space (userspace): schemas user_<name>, DEST, job_<id> tables, workspaces.
        self.userspace = UserSpace(self.meta, self.catalogue, self.engine,
                                   quota_rows=settings.quota_rows,
                                   quota_bytes=settings.quota_bytes)
        # Prometheus metrics (taphouse.observability), counted here and read at /metrics.
        self.metrics = Metrics()
        # The query path (taphouse.query): every collaborator passed explicitly.
        self.query_audit = QueryAudit(self.authenticator.audit_log, self.catalogue,
                                      observe=self.metrics.query_done)
        # Which backend serves each database (engine.routing): DuckDB by default.
        self.backends = BackendRouter(self.engine)
        if settings.spark_master:  # [spark] made on the first query of a Spark database
            self.backends.register("spark", self._spark_backend)
        self.backends.register("postgres", postgres_backends(
            self.secrets, pool_size=settings.postgres_pool_size,
            statement_timeout=settings.exec_duration_limit,
            temp_max_rows=settings.postgres_temp_max_rows))
        self.query_service = QueryService(
            settings, engine=self.engine, scopes=self.scopes, userspace=self.userspace,
            audit=self.query_audit, outbound=self.outbound, scratch_dir=self.scratch.path,
            remotes=self.remotes, backends=self.backends)
        # Admission (taphouse.admission): sync queries, downloads and uploads run in slots
        # of sync_slots and threads of their own; TAP_SCHEMA queries in their own.
        share = settings.anonymous_sync_share
        self.sync_slots = SlotPool(
            "synchronous queries", total=settings.sync_max_concurrent,
            per_key=settings.sync_max_per_caller,
            group_total=max(1, int(settings.sync_max_concurrent * share)),
            retry_after=settings.retry_after)
        self.metadata_slots = SlotPool(
            "metadata queries", total=settings.metadata_max_concurrent,
            per_key=max(1, settings.metadata_max_concurrent // 4),
            group_total=max(2, int(settings.metadata_max_concurrent * share)),
            retry_after=settings.retry_after)
        self.query_lane = ThreadLane(settings.sync_max_concurrent)
        self.metadata_lane = ThreadLane(settings.metadata_max_concurrent)
        self.upload_bytes = ByteBudget(settings.upload_max_bytes_per_caller)
        self.sync = SyncResponder(self.query_service, settings, sync_slots=self.sync_slots,
                                  query_lane=self.query_lane,
                                  metadata_slots=self.metadata_slots,
                                  metadata_lane=self.metadata_lane)
        # Sandboxed user code (compute): its own job kind with its own worker pool.
        self.compute = ComputeService(settings, self.authenticator, self.userspace)
        tap_jobs = TapQueryRunner(self.query_service, settings,
                                  identity_for=self.authenticator.identity_for,
                                  userspace=self.userspace,
                                  file_room=lambda job: self.jobs.file_room(job))
        self.jobs = JobService(
            self.meta, settings, {"tap": tap_jobs, "compute": self.compute},
            pools={"tap": WorkerPool(settings.workers, settings.max_jobs_per_user),
                   "compute": WorkerPool(settings.compute_workers,
                                         settings.compute_max_jobs_per_user)})
        # A workspace selects databases and remotes (taphouse.remotes.catalog) alike.
        self.workspaces = Workspaces(
            self.meta, lambda ident: {d.name for d in self.scopes.visible_databases(ident)}
            | {r.name for r in self.remotes.visible(ident)})
        self.jobs.on_destroyed = self.userspace.drop_job_table
        # The platform's JupyterHub: its service token (written by `taphouse hub`).
        self.hub_link = HubLink(service_token_path(settings.data_dir))
        # Jobs, slots, disk: read when scraped.
        self.metrics.watch(self.jobs.store, self.sync_slots, settings.data_dir)

    def delete_account(self, name: str, archive: bool, by: str | None = None) -> dict[str, Any]:
        """Delete an account and everything it owns (see :mod:`taphouse.lifecycle`)."""
        from taphouse.lifecycle import delete_account

        return delete_account(name, archive=archive, by=by, authenticator=self.authenticator,
                              userspace=self.userspace, workspaces=self.workspaces,
                              jobs=self.jobs)

    def identity_for(self, user_id: int | None) -> Identity:
        """The identity a background job runs as (its owner, by user id, with current
        groups); raises AuthError when the account was disabled or deleted since."""
        return self.authenticator.identity_for(user_id)

    def health(self) -> tuple[bool, str]:
        """Whether the service can answer queries, with a note for VOSI availability: the
        metadata database (accounts, catalogue, jobs) must be readable."""
        import sqlite3

        try:
            # A fresh read-only connection: an open one may keep answering from its
            # cache after the file became unreadable.
            uri = self.settings.meta_path.resolve().as_uri() + "?mode=ro"
            with closing(sqlite3.connect(uri, uri=True, timeout=5)) as con:
                con.execute("SELECT COUNT(*) FROM schema_version").fetchone()
        except Exception as exc:  # noqa: BLE001  (any failure means: not available)
            log.error("availability: the metadata database cannot be read: %s", exc)
            return False, ("the service cannot read its metadata database; the operator"
                           " finds details in the server log")
        return True, "service is accepting queries"

    def start(self) -> None:
        """Background work that runs while the server serves (job workers, clean-up)."""
        self.compute.start()  # before the workers: kills leftover sandboxes
        self.jobs.start()
        self._stopping = threading.Event()
        self._maintenance = threading.Thread(target=self._maintain, name="maintenance",
                                             daemon=True)
        self._maintenance.start()
        threading.Thread(target=self._release_memory, name="memory-release",
                         daemon=True).start()
        threading.Thread(target=self._refresh_remotes, name="remote-refresh",
                         daemon=True).start()

    def _refresh_remotes(self, period: float = 60.0) -> None:
        """Refresh the metadata of remotes whose ``remote_refresh_interval`` has passed."""
        while not self._stopping.wait(period):
            try:
                for name, error in self.remotes.refresh_due().items():
                    if error:
                        log.warning("remote %s: refresh failed: %s", name, error)
            except Exception:  # keep going; the next round tries again
                log.exception("refreshing remotes failed")

    def stop(self) -> None:
        stopping = getattr(self, "_stopping", None)
        if stopping is not None:
            stopping.set()
        self.jobs.stop()
        self.compute.stop()  # removes the server's memory cgroup
        self.backends.close()  # connection pools of PostgreSQL-served databases
        self.meta.close()
        self.scratch.close()

    def _spark_backend(self, ref: str | None) -> SparkBackend:
        from taphouse.engine.spark import SparkBackend

        return SparkBackend(self.settings.tables_dir, master=self.settings.spark_master,
                            cache_dir=self.settings.data_dir / "spark-cache",
                            max_temp_rows=self.settings.spark_max_temp_rows)

    def maintain(self) -> int:
        """One maintenance round: detach retired table versions once the grace period
        is over and delete the files whose time is up (see
        :meth:`CatalogueStore.collect_garbage`), and purge the records of tokens dead
        for a week (:meth:`TokenService.purge`). Returns the number of files removed."""
        # A request that resolved a table just before it was replaced may still start
        # its query on the old version: detach only after the grace period.
        grace = self.settings.maintenance_grace
        for version_id in self.catalogue.retired_version_ids(older_than=grace):
            self.engine.forget(version_id)
        removed = self.catalogue.collect_garbage()
        if removed:
            log.info("removed %d retired table files", removed)
        # Records of tokens expired or revoked long ago (a week) serve nobody.
        purged = self.authenticator.tokens.purge()
        if purged:
            log.info("purged %d dead token records", purged)
        return removed

    def _release_memory(self, period: float = 5.0) -> None:
        """Every few seconds: detach table versions idle for ``engine_idle_detach``, close
        the metadata connections of ended threads, and return memory freed by finished queries to the system (queries also do it as
        they end, but their last bytes are freed after)."""
        from taphouse.admission.memory import release_memory

        while not self._stopping.wait(period):
            try:
                self.engine.detach_idle()
            except Exception:  # keep going; the next round tries again
                log.exception("detaching idle table versions failed")
            self.meta.close_ended_threads()  # threads of ended worker pools
            release_memory(0.0)

    def _maintain(self) -> None:
        while not self._stopping.wait(self.settings.maintenance_interval):
            try:
                self.maintain()
            except Exception:  # keep serving; the next round tries again
                log.exception("maintenance failed")


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> FastAPI:
    """The ASGI application serving TAP, auth and the platform API."""
    settings = settings or (platform.settings if platform else Settings.from_env())
    platform = platform or Platform(settings)
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform.start()
        retiring = asyncio.create_task(retire_idle_threads())
        listener = None
        sock = platform.compute.socket
        if platform.compute.available and sock is not None:  # bound once available
            from taphouse.compute.listener import SandboxListener

            listener = SandboxListener(app, sock, platform.compute.socket_path)
            listener.start()
        try:
            yield
        finally:
            retiring.cancel()
            if listener is not None:
                listener.stop()
            platform.stop()

    app = FastAPI(title="taphouse", version=_version(), docs_url=None,
                  openapi_url="/api/openapi.json", redoc_url=None, lifespan=lifespan)
    app.state.platform = platform
    # The hub's logins count against the browser's address it forwards (taphouse.hub).
    app.add_middleware(HubForwarding, link=platform.hub_link, refuse=_refusal)
    app.add_middleware(ForwardedHeaders, trusted=TrustedProxies(settings.trusted_proxies))
    app.add_middleware(RequestGuard, public_url=settings.public_url, refuse=_refusal,
                       frame_ancestors=settings.frame_ancestors)
    app.add_middleware(RetryAfter, seconds=settings.retry_after)  # on every 503
    # Outermost: every request is logged and counted, refusals of the layers above too.
    app.add_middleware(RequestLog, trusted=TrustedProxies(settings.trusted_proxies),
                       metrics=platform.metrics)
    app.include_router(metrics_router(platform.metrics, authenticator=platform.authenticator,
                                      metrics_allow=platform.settings.metrics_allow,
                                      compute_uid_base=platform.settings.compute_uid_base))

    _add_tap_routes(app, platform)
    app.include_router(auth_router(platform.authenticator), prefix="/auth")
    app.include_router(admin_router(platform.authenticator, platform.catalogue,
                                    platform.delete_account), prefix="/api/admin")
    app.include_router(admin_remotes_router(platform.authenticator, platform.remotes),
                       prefix="/api/admin/remotes")
    app.include_router(remotes_router(platform.authenticator, platform.remotes,
                                      user_registration=settings.remote_user_registration),
                       prefix="/api/remotes")
    _add_userspace_routes(app, platform)
    _add_error_handlers(app, platform)

    # The query page (taphouse.web): / and /static/<asset>.
    add_web_routes(app)

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs() -> Response:
        import warnings

        from taphouse.api.docs import DOCS_CSP, docs_html

        with warnings.catch_warnings():
            # GET and POST of one TAP route share an operation id; harmless here.
            warnings.simplefilter("ignore", UserWarning)
            schema = app.openapi()
        return Response(docs_html(schema, title="taphouse", base=settings.public_url),
                        media_type="text/html", headers={"Content-Security-Policy": DOCS_CSP})

    @app.get("/tap", include_in_schema=False)
    async def tap_home() -> Response:
        return Response("<html><body><p>TAP service; see <a href='tap/capabilities'>"
                        "capabilities</a>.</p></body></html>", media_type="text/html")

    return app


#: A TAP endpoint's login twin: ``<base>/auth`` answers like ``<base>`` but challenges
#: every anonymous request, its capabilities included. Java clients (TOPCAT, STILTS
#: before 3.4-9) send credentials only after a challenge and cannot resend a streamed
#: upload after one: once the capabilities at ``<base>/auth`` were challenged, Java sends
#: the credentials with every later request below ``<base>/auth/`` before the body.
LOGIN_SUFFIX = "/auth"
_LOGIN_METHODS = ("basic", "token")


def _login_required() -> AuthError:
    return AuthError("this is a login endpoint: send HTTP Basic credentials (TOPCAT and"
                     " STILTS send them when challenged) or a bearer token")


def _tap_services(platform: Platform) -> TapServices:
    return TapServices(settings=platform.settings, sync=platform.sync, scopes=platform.scopes,
                       jobs=platform.jobs.of_kind("tap"), scratch_dir=platform.scratch.path,
                       upload_bytes=platform.upload_bytes, health=platform.health)


def _add_tap_routes(app: FastAPI, platform: Platform) -> None:
    """The main TAP service /tap and its login endpoint /tap/auth."""
    auth = platform.authenticator
    base = platform.settings.public_url + "/tap"
    anonymous = ("anonymous",) if platform.settings.anonymous_read else ()
    interfaces = (Interface(base, (*anonymous, *_LOGIN_METHODS)),
                  Interface(base + LOGIN_SUFFIX, _LOGIN_METHODS))

    async def main_context(request: Request) -> TapContext:
        identity = await auth.identify_async(request)
        return TapContext(identity=identity, workspace=None, base=base)

    async def main_endpoint(request: Request) -> Endpoint:
        identity = await auth.identify_async(request)
        return Endpoint(base, interfaces, username=identity.username)

    async def login_context(request: Request) -> TapContext:
        identity = await auth.identify_async(request)
        if identity.anonymous:
            raise _login_required()
        return TapContext(identity=identity, workspace=None, base=base + LOGIN_SUFFIX)

    async def login_endpoint(request: Request) -> Endpoint:
        identity = await auth.identify_async(request)
        if identity.anonymous:
            raise _login_required()
        return Endpoint(base + LOGIN_SUFFIX, interfaces[1:], username=identity.username)

    services = _tap_services(platform)
    app.include_router(tap_router(services, login_context, login_endpoint),
                       prefix="/tap" + LOGIN_SUFFIX)
    app.include_router(tap_router(services, main_context, main_endpoint), prefix="/tap")


def _add_userspace_routes(app: FastAPI, platform: Platform) -> None:
    """/api (user tables, quota, workspaces) and each workspace's TAP endpoint
    /ws/<user>/<workspace>/tap."""
    from taphouse.api.routes import ApiServices, api_router
    from taphouse.compute.routes import compute_router
    from taphouse.compute.service import KIND as COMPUTE_KIND
    from taphouse.hub.routes import hub_router
    from taphouse.tap.errors import NotFound

    settings = platform.settings
    app.include_router(api_router(ApiServices(
        settings=settings, authenticator=platform.authenticator, scopes=platform.scopes,
        catalogue=platform.catalogue, userspace=platform.userspace,
        workspaces=platform.workspaces, shares=platform.shares,
        remotes=platform.remotes,
        jobs=platform.jobs, sync=platform.sync, query_service=platform.query_service,
        scratch_dir=platform.scratch.path, upload_bytes=platform.upload_bytes)),
        prefix="/api")
    app.include_router(compute_router(settings, authenticator=platform.authenticator,
                                      jobs=platform.jobs.of_kind(COMPUTE_KIND),
                                      compute=platform.compute,
                                      scratch_dir=platform.scratch.path,
                                      upload_bytes=platform.upload_bytes),
                       prefix="/api/compute")
    app.include_router(hub_router(settings, authenticator=platform.authenticator,
                                  compute=platform.compute), prefix="/api/hub")

    def workspace_base(request: Request) -> tuple[str, str, str]:
        user = request.path_params.get("user", "")
        name = request.path_params.get("workspace", "")
        return user, name, f"{settings.public_url}/ws/{user}/{name}/tap"

    async def workspace_context(request: Request, login: bool = False) -> TapContext:
        # Unauthenticated: 401 with both challenges whether or not the workspace exists
        # (TOPCAT and STILTS send credentials only after a challenge); someone else's
        # workspace answers 404 like one that does not exist.
        identity = await platform.authenticator.identify_async(request)
        if identity.anonymous:
            raise AuthError("workspaces need a login: send HTTP Basic credentials or a"
                            " bearer token (POST /auth/token)")
        user, name, base = workspace_base(request)
        ws = None
        if user == identity.username and identity.user_id is not None:
            ws = await run_in_threadpool(platform.workspaces.get, identity.user_id, name)
        if ws is None:
            raise NotFound(f"no workspace {user}/{name} here")
        return TapContext(identity=identity, workspace=list(ws.databases),
                          base=base + LOGIN_SUFFIX if login else base)

    async def workspace_endpoint(request: Request, login: bool = False) -> Endpoint:
        # Public, and the same for every /ws/<user>/<name>: which users and workspaces
        # exist is not told (only bad credentials are refused).
        identity = await platform.authenticator.identify_async(request)
        _, _, base = workspace_base(request)
        if login:
            if identity.anonymous:
                raise _login_required()
            return Endpoint(base + LOGIN_SUFFIX, (Interface(base + LOGIN_SUFFIX,
                                                            _LOGIN_METHODS),),
                            username=identity.username)
        return Endpoint(base, (Interface(base, _LOGIN_METHODS),
                               Interface(base + LOGIN_SUFFIX, _LOGIN_METHODS)),
                        username=identity.username)

    async def login_context(request: Request) -> TapContext:
        return await workspace_context(request, login=True)

    async def login_endpoint(request: Request) -> Endpoint:
        return await workspace_endpoint(request, login=True)

    services = _tap_services(platform)
    app.include_router(tap_router(services, login_context, login_endpoint),
                       prefix="/ws/{user}/{workspace}/tap" + LOGIN_SUFFIX)
    app.include_router(tap_router(services, workspace_context, workspace_endpoint),
                       prefix="/ws/{user}/{workspace}/tap")

    @app.api_route("/ws/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"],
                   include_in_schema=False)
    async def ws_other(request: Request, rest: str) -> Response:
        parts = rest.split("/")
        if len(parts) >= 2:
            request.scope["path_params"] = {"user": parts[0], "workspace": parts[1]}
        await workspace_context(request)
        raise NotFound(f"nothing at /ws/{rest}: a workspace's TAP service is at"
                       " /ws/<user>/<workspace>/tap")


def _wants_votable(request: Request) -> bool:
    return _votable_path(request.url.path)


def _votable_path(path: str) -> bool:
    return "/tap" in path and not path.startswith("/api")


def _refusal(path: str, message: str) -> Response:
    """The 403 of a request refused by :class:`RequestGuard` (cross-site)."""
    if _votable_path(path):
        return tap_error_response(TapError(message, 403))
    return JSONResponse({"error": message}, status_code=403)


def _add_error_handlers(app: FastAPI, platform: Platform) -> None:
    @app.exception_handler(TapError)
    async def _tap_error(request: Request, exc: TapError) -> Response:
        return tap_error_response(exc)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        headers: dict[str, str] = {}
        if exc.status == 401:
            headers = challenge_headers(exc)
        retry = getattr(exc, "retry_after", None)
        if retry is not None:
            headers["Retry-After"] = str(retry)
        if _wants_votable(request):
            resp = tap_error_response(TapError(exc.message, exc.status))
            resp.headers.update(headers)
            return resp
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> Response:
        headers = {"Retry-After": str(exc.retry_after)}
        if _wants_votable(request):
            resp = tap_error_response(TapError(exc.message, 503))
            resp.headers.update(headers)
            return resp
        return JSONResponse({"error": exc.message}, status_code=503, headers=headers)

    @app.exception_handler(TooLarge)
    async def _too_large(request: Request, exc: TooLarge) -> Response:
        if _wants_votable(request):
            return tap_error_response(TapError(exc.message, 413))
        return JSONResponse({"error": exc.message}, status_code=413)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        # Catalogue, job and user-space errors: a DALI error document on TAP endpoints
        # (where a quota refusal is a plain 400), JSON elsewhere.
        if isinstance(exc, StorageFull):
            log.error("disk full: %s %s refused with 507 (free space in %s)", request.method,
                      request.url.path, platform.settings.data_dir)
        if _wants_votable(request):
            status = 400 if exc.status == 413 else exc.status
            return tap_error_response(TapError(exc.message, status))
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        msg = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
                        for e in exc.errors())
        if _wants_votable(request):
            return tap_error_response(TapError(msg or "invalid request", 400))
        return JSONResponse({"error": msg or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_votable(request):
            resp = tap_error_response(TapError(str(exc.detail), exc.status_code))
        else:
            resp = JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    async def _storage_error(request: Request, exc: Exception) -> Response:
        # Anything that hit a full disk (a job's parameters, a login's token, a schema
        # created on first use): 507, and the operator is told. Handled here rather than
        # by the catch-all below, which would also drop the client's connection.
        if is_disk_full(exc):
            return await _service_error(request, StorageFull())
        log.error("internal error on %s %s", request.method, request.url.path,
                  exc_info=exc)
        msg = "internal server error; the operator can find details in the server log"
        if _wants_votable(request):
            return tap_error_response(TapError(msg, 500))
        return JSONResponse({"error": msg}, status_code=500)

    for storage_error in (OSError, sqlite3.Error, duckdb.IOException):
        app.add_exception_handler(storage_error, _storage_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if is_disk_full(exc):
            return await _service_error(request, StorageFull())
        log.exception("internal error on %s %s", request.method, request.url.path)
        msg = "internal server error; the operator can find details in the server log"
        if _wants_votable(request):
            return tap_error_response(TapError(msg, 500))
        return JSONResponse({"error": msg}, status_code=500)


def _version() -> str:
    from taphouse import __version__

    return __version__
