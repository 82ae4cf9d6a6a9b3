"""Running one query, shared by sync requests and async jobs: prepare (scope built,
uploads read, ADQL translated) and execute (stream the formatted result, DEST stored
first). Nothing here knows about HTTP; every collaborator is passed in."""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from taphouse.access import ScopeBuilder
from taphouse.admission.memory import release_memory
from taphouse.adql import AdqlError, translate
from taphouse.adql.scope import Scope, inline_name
from taphouse.adql.translator import Translation
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import ColumnMeta, TableMeta, position_columns
from taphouse.engine.backend import Backend, Lease
from taphouse.engine.routing import BackendRouter, BackendUnavailable, MixedBackends
from taphouse.errors import ServiceError
from taphouse.formats import FormatError, ResultInfo, get_writer, read_upload
from taphouse.formats.registry import Writer
from taphouse.formats.result import BATCH_BYTES
from taphouse.outbound import Outbound
from taphouse.query.audit import QueryAudit
from taphouse.query.cancel import CancelHandle
from taphouse.query.errors import QueryError
from taphouse.query.request import QuerySpec
from taphouse.settings import Settings
from taphouse.userspace import UserSpace

if TYPE_CHECKING:
    from taphouse.remotes.registry import RemoteRegistry

log = logging.getLogger("taphouse")

BATCH_ROWS = 65536
#: Batches a result may run ahead of its copies (:class:`_Tee`).
_QUEUED = 4
#: A three-part name (REMOTE.schema.table) somewhere in the text: only such queries are
#: parsed once more to look for remote tables.
_REMOTE_NAME = re.compile(r'[\w"]\s*\.\s*[\w"]+\s*\.\s*[\w"]')


@dataclass
class PreparedQuery:
    """A translated query with everything needed to run it."""

    spec: QuerySpec
    identity: Identity
    scope: Scope
    sql: str
    columns: list[ColumnMeta]
    tables: list[TableMeta]
    limit: int
    inline: dict[str, Any]
    writer: Writer
    #: The audit record written before the query ran (restricted databases), if any.
    audit_id: int | None = None
    #: With DEST: the rows written and the table (the audit counts them, not MAXREC's).
    dest_rows: int | None = None
    dest_table: str | None = None
    #: The table versions the query holds attached.
    lease: Lease | None = None
    #: A query whose tables are all on one remote service: what runs there
    #: (:class:`taphouse.remotes.pushdown.RemotePlan`); ``sql`` is then empty.
    remote: Any = None
    #: [postgres] The backend that runs ``sql`` (engine.routing); None: the service's
    #: default engine.
    backend: Backend | None = None
    #: A query joining local tables with a remote's (taphouse.federation.FederatedQuery):
    #: its remote part runs first in execute(), which then fills ``sql`` and ``columns``.
    federated: Any = None

    def relation(self, table: TableMeta) -> str:
        """Backend relation of a stored table, held as long as this query's versions."""
        if self.lease is None:
            raise RuntimeError("this prepared query holds no table versions")
        return self.lease.relation(table)

    def close(self) -> None:
        """Let go of the table versions (after the last query of the request; safe to
        call more than once)."""
        if self.lease is not None:
            self.lease.release()


class QueryService:
    """Prepares and runs queries on one engine, in the scope each caller may see."""

    def __init__(self, settings: Settings, *, engine: Backend, scopes: ScopeBuilder,
                 userspace: UserSpace, audit: QueryAudit, outbound: Outbound,
                 scratch_dir: Path, remotes: RemoteRegistry,
                 backends: BackendRouter | None = None) -> None:
        self.settings = settings
        #: [postgres] The backend serving each database (engine.routing); None: every
        #: query runs on ``engine``.
        self.backends = backends
        #: Registered remote services (:class:`taphouse.remotes.RemoteRegistry`).
        self.remotes = remotes
        self.engine = engine
        self.scopes = scopes
        self.userspace = userspace
        self.audit = audit
        self.outbound = outbound
        self.scratch_dir = scratch_dir

    # --- preparation -------------------------------------------------------------
    def read_uploads(self, spec: QuerySpec, parts: Mapping[str, bytes | Path],
                     part_types: dict[str, str]) -> dict[str, tuple[pa.Table, TableMeta]]:
        """The TAP_UPLOAD tables of a request; ``parts`` maps part names to their files
        (or bytes)."""
        tables: dict[str, tuple[pa.Table, TableMeta]] = {}
        for name, uri in spec.uploads:
            if uri.startswith("param:"):
                part = uri[len("param:"):]
                if part not in parts:
                    raise QueryError(f"UPLOAD {name}: no request part named {part!r}")
                data = parts[part]
                ctype = part_types.get(part)
            elif uri.startswith(("http:", "https:")):
                data, ctype = self._fetch_upload(name, uri)
            else:
                raise QueryError(f"UPLOAD {name}: unsupported URI {uri!r} (use param:NAME)")
            try:
                arrow, columns = read_upload(data, content_type=ctype, name=name,
                                             max_rows=self.settings.upload_max_rows)
            except FormatError as exc:
                raise QueryError(str(exc)) from None
            tables[name] = (arrow, _upload_meta(name, columns, arrow.num_rows))
        return tables

    def _fetch_upload(self, name: str, uri: str) -> tuple[bytes, str | None]:
        from taphouse.outbound import OutboundError, OutboundTooLarge

        if not self.settings.upload_urls:
            raise QueryError(f"UPLOAD {name}: URL uploads are disabled on this service;"
                           " send the table inline (param:NAME)")
        try:
            fetched = self.outbound.fetch(uri)
        except OutboundError as exc:
            status = 413 if isinstance(exc, OutboundTooLarge) else 400
            raise QueryError(f"UPLOAD {name}: {exc.message}", status) from None
        if fetched.status != 200:
            raise QueryError(f"UPLOAD {name}: {uri} answered HTTP {fetched.status}")
        return fetched.body, fetched.content_type

    def prepare(self, identity: Identity, spec: QuerySpec, *,
                workspace: Sequence[str] | None = None,
                uploads: dict[str, tuple[pa.Table, TableMeta]] | None = None) -> PreparedQuery:
        """Build the scope and translate; raises QueryError with the ADQL position.

        The tables the query reads stay attached until :meth:`execute` ends (or the
        caller calls ``prepared.close()`` if it does not execute it)."""
        if _REMOTE_NAME.search(spec.query):
            remote = self._prepare_remote(identity, spec, uploads, workspace)
            if remote is not None:
                return remote
        lease = self.backends.lease() if self.backends is not None else self.engine.lease()
        try:
            scope = self.scopes.build(identity, workspace, uploads,
                                               relation=lease.relation)
            # DEST stores every row (userspace): MAXREC limits only the response, which
            # is read back from the stored table.
            tr = translate(spec.query, scope, maxrec=None if spec.dest else spec.maxrec,
                           choose_dialect=self._dialect_for)  # [postgres]
            if self.backends is not None and mixed_backends(tr.tables):  # federation hook
                return self._prepare_cross_backend(identity, spec, scope, lease)
            backend, tr = self._route_backend(spec, scope, tr)
        except AdqlError as exc:
            lease.release()
            message = str(exc.message)
            if identity.anonymous and message.startswith("unknown table"):
                # TOPCAT and STILTS send credentials only when challenged, which this
                # service never does while anonymous reading is on.
                message += ("; if it is one of your own tables (mydb) or in a database"
                            " that needs a login, log in: send credentials, or use the"
                            f" login endpoint {self.settings.public_url}/tap/auth as the"
                            " TAP URL (TOPCAT, STILTS)")
            error = QueryError(message, line=exc.line, column=exc.column, query=spec.query)
            self.audit.rejected(identity, spec.query, error)
            raise error from None
        except BaseException:
            lease.release()
            raise
        inline = {}
        for t in tr.tables:
            key = (t.database, t.name)
            if key in scope.inline:
                data = scope.inline[key]
                inline[inline_name(t)] = data() if callable(data) else data
        writer = get_writer(spec.responseformat)
        limit = spec.maxrec if tr.limit is None else min(tr.limit, spec.maxrec)
        return PreparedQuery(spec=spec, identity=identity, scope=scope, sql=tr.sql,
                             columns=tr.columns, tables=tr.tables, limit=limit,
                             inline=inline, writer=writer, lease=lease, backend=backend)

    def _route_backend(self, spec: QuerySpec, scope: Scope, tr: Translation
                       ) -> tuple[Backend, Translation]:
        """[postgres] The backend serving the query's tables (engine.routing), and the
        translation for its dialect; AdqlError for tables of two backends."""
        if self.backends is None:
            return self.engine, tr
        try:
            backend = self.backends.choose(tr.tables)
        except (MixedBackends, BackendUnavailable) as exc:
            raise AdqlError(exc.message) from None
        if backend is self.engine:
            if tr.dialect != "duckdb":  # guessed wrong: the default engine's SQL
                tr = translate(spec.query, scope, maxrec=None if spec.dest else spec.maxrec)
            return backend, tr
        # user tables (stored with the default engine) go along as temporary tables
        moved = {(t.database, t.name): self._local_rows(t, scope)
                 for t in tr.tables if t.kind == "user" and (t.database, t.name)
                 not in scope.inline}
        if moved:
            scope.inline.update(moved)
        if backend.dialect != tr.dialect or moved:  # not the first translation's
            tr = translate(spec.query, scope, dialect=backend.dialect,
                           maxrec=None if spec.dest else spec.maxrec)
        return backend, tr

    def _dialect_for(self, tables: list[TableMeta]) -> str:
        """[postgres] The dialect of the backend that will run a query over ``tables``
        (translate's ``choose_dialect``: one translation, in that backend's dialect);
        the default engine's where that cannot be told yet (user tables to be copied,
        tables of two backends): :meth:`_route_backend` then translates again."""
        if self.backends is None or any(t.kind == "user" for t in tables):
            return "duckdb"
        try:
            return self.backends.choose(tables).dialect
        except ServiceError:
            return "duckdb"

    def _local_rows(self, table: TableMeta, scope: Scope) -> Any:
        """[postgres] The rows of a user table, read when the query runs on another
        backend (at most ``postgres_temp_max_rows`` + 1: the backend refuses more)."""
        relation = scope.relation(table)
        cap = int(getattr(self.settings, "postgres_temp_max_rows", 1_000_000)) + 1

        def read() -> pa.Table:
            with self.engine.cursor() as cur:
                got = self.engine.stream(cur, f"SELECT * FROM {relation} LIMIT {cap}")
                if isinstance(got, pa.RecordBatchReader):
                    return got.read_all()
                batches = list(got)
                return pa.Table.from_batches(batches) if batches else pa.table({})
        return read

    def explain(self, identity: Identity, spec: QuerySpec, *,
                workspace: Sequence[str] | None = None) -> dict[str, Any]:
        """What would run where for ``spec`` (nothing runs): for a query on a remote
        service, the exact ADQL sent there and its MAXREC; for a local one, the backend
        SQL and the tables. Errors are those the query itself would get."""
        prepared = self.prepare(identity, spec, workspace=workspace)
        try:
            if prepared.federated is not None:  # federation: remote and local parts
                return {"query": spec.query, "parts": prepared.federated.explain()}
            if prepared.remote is not None:
                part = prepared.remote.explain()
            else:
                part = {"runs_on": "local", "sql": prepared.sql, "maxrec": prepared.limit,
                        "backend": (prepared.backend or self.engine).dialect,
                        "tables": [f"{t.database}.{t.name}" for t in prepared.tables]}
            return {"query": spec.query, "parts": [part]}
        finally:
            prepared.close()

    def _prepare_remote(self, identity: Identity, spec: QuerySpec,
                        uploads: dict[str, tuple[pa.Table, TableMeta]] | None,
                        workspace: Sequence[str] | None = None) -> PreparedQuery | None:
        """A query naming REMOTE.schema.table: planned to run whole on that remote
        (taphouse.remotes.pushdown); None for a query without three-part table names."""
        from taphouse.adql.safety import check_statement, check_tree
        from taphouse.adql.translator import parse
        from taphouse.remotes.pushdown import catalog_names, plan_remote

        try:
            tree = parse(spec.query)
            remotes = catalog_names(tree)
            if not remotes:
                return None
            outside = sorted(remotes - set(workspace)) if workspace is not None else []
            if outside:  # remotes hook: a workspace reaches the remotes it selects only
                raise AdqlError(f"the remote service {outside[0]!r} is not in this"
                                " workspace: add it to the workspace's databases, or query"
                                " it through the main /tap endpoint")
            check_statement(tree)
            check_tree(tree, spec.query)
            from taphouse.federation import mixes_sources

            if mixes_sources(tree):  # federation hook: local tables joined with a remote's
                return self._prepare_federated(identity, spec, tree, workspace, uploads)
            if uploads:
                raise AdqlError("TAP_UPLOAD tables cannot be joined with a remote service's"
                                " tables yet")
            # DEST stores every row: ask the remote for up to its hard limit (an answer
            # it truncates is refused at execution, never stored in part).
            plan = plan_remote(tree, identity, self.remotes,
                               maxrec=self.settings.maxrec_limit if spec.dest else spec.maxrec)
        except AdqlError as exc:
            error = QueryError(str(exc.message), line=exc.line, column=exc.column,
                               query=spec.query)
            self.audit.rejected(identity, spec.query, error)
            raise error from None
        limit = spec.maxrec if plan.maxrec is None else min(plan.maxrec, spec.maxrec)
        if spec.dest:  # remotes hook: stored as a local DEST is (see _fetch_remote_rows)
            lease = self.engine.lease()
            try:
                scope = self.scopes.build(identity, workspace, relation=lease.relation)
            except BaseException:
                lease.release()
                raise
            return PreparedQuery(spec=spec, identity=identity, scope=scope, sql="",
                                 columns=[], tables=[], limit=limit, inline={},
                                 writer=get_writer(spec.responseformat), remote=plan,
                                 lease=lease, backend=self.engine)
        return PreparedQuery(spec=spec, identity=identity,
                             scope=Scope(tables={}, relation=_no_relation), sql="",
                             columns=[], tables=[], limit=limit, inline={},
                             writer=get_writer(spec.responseformat), remote=plan)

    def _prepare_federated(self, identity: Identity, spec: QuerySpec, tree: Any,
                           workspace: Sequence[str] | None,
                           uploads: dict[str, tuple[pa.Table, TableMeta]] | None
                           ) -> PreparedQuery:
        """federation hook: plan a join of local tables with a remote table."""
        from taphouse.federation import FederationLimits, prepare_federated

        lease = self.backends.lease() if self.backends is not None else self.engine.lease()
        try:
            scope = self.scopes.build(identity, workspace, uploads, relation=lease.relation)
            fed = prepare_federated(tree, identity, scope, self.remotes, self.scopes.catalogue,
                                    FederationLimits.from_settings(self.settings))
            backend = self.engine
            if self.backends is not None:
                try:
                    backend = self.backends.choose(fed.local_tables)
                except (MixedBackends, BackendUnavailable) as exc:
                    raise AdqlError(exc.message) from None
        except BaseException:
            lease.release()
            raise
        return PreparedQuery(spec=spec, identity=identity, scope=scope, sql="", columns=[],
                             tables=fed.local_tables, limit=spec.maxrec, inline={},
                             writer=get_writer(spec.responseformat), lease=lease,
                             backend=backend, federated=fed)

    def _prepare_cross_backend(self, identity: Identity, spec: QuerySpec, scope: Scope,
                               lease: Lease) -> PreparedQuery:
        """federation hook: catalogue tables of two backends; those of the smaller are
        read first, the query runs on the other (taphouse.federation.backends)."""
        from taphouse.adql.translator import parse
        from taphouse.federation import FederationLimits
        from taphouse.federation.backends import prepare_cross_backend
        from taphouse.federation.query import lookup_local

        assert self.backends is not None
        cross = prepare_cross_backend(parse(spec.query), scope, self.backends,
                                      FederationLimits.from_settings(self.settings),
                                      lookup_local)
        backend = self.backends.backend(cross.main)
        if spec.dest and backend is not self.engine:
            raise AdqlError("DEST is not available yet for a query run by the"
                            f" {backend.dialect} backend: run the query, then upload its"
                            " result to your user space")
        return PreparedQuery(spec=spec, identity=identity, scope=scope, sql="", columns=[],
                             tables=cross.local_tables, limit=spec.maxrec, inline={},
                             writer=get_writer(spec.responseformat), lease=lease,
                             backend=backend, federated=cross)

    def _run_federated(self, prepared: PreparedQuery, cancel: CancelHandle,
                       started: float) -> None:
        """federation hook: run the remote part; the local part becomes this query
        (after audit.start: the local side read first may be restricted)."""
        from taphouse.federation import FederationError
        from taphouse.remotes.errors import RemoteError

        try:
            part = prepared.federated.materialize(
                registry=self.remotes, engine=prepared.backend or self.engine,
                scope=prepared.scope,
                maxrec=None if prepared.spec.dest else prepared.spec.maxrec,
                cancelled=lambda: bool(cancel.reason),
                max_bytes=self.settings.remote_max_bytes)
        except (RemoteError, FederationError) as exc:
            error = QueryError(exc.message, exc.status, query=prepared.spec.query)
            self.audit.finish(prepared, time.monotonic() - started, cancel, error)
            raise error from None
        except AdqlError as exc:
            error = QueryError(f"the local part of the join failed: {exc.message}",
                               query=prepared.spec.query)
            self.audit.finish(prepared, time.monotonic() - started, cancel, error)
            raise error from None
        prepared.sql, prepared.columns, prepared.inline = part.sql, part.columns, part.inline
        prepared.tables = part.tables
        if part.limit is not None:
            prepared.limit = min(part.limit, prepared.spec.maxrec)

    def _fetch_remote_rows(self, prepared: PreparedQuery, cancel: CancelHandle,
                           started: float) -> None:
        """remotes hook (DEST): run the plan on its remote, whole (an answer the remote
        truncated is an error: nothing is stored), and make its rows this query's local
        input, so they are stored like any DEST result (provenance names the remote)."""
        from taphouse.remotes.errors import RemoteError
        from taphouse.remotes.pushdown import run_remote

        try:
            answer = run_remote(prepared.remote, self.remotes,
                                cancelled=lambda: bool(cancel.reason),
                                max_bytes=self.settings.remote_max_bytes).require_complete()
        except RemoteError as exc:
            error = QueryError(exc.message + ("; nothing was stored" if exc.status == 400
                                              else ""), exc.status, query=prepared.spec.query)
            self.audit.finish(prepared, time.monotonic() - started, cancel, error)
            raise error from None
        prepared.sql = f"SELECT * FROM {_REMOTE_ROWS}"
        prepared.inline = {_REMOTE_ROWS: answer.table}
        prepared.columns = answer.columns

    def _execute_remote(self, prepared: PreparedQuery, cancel: CancelHandle,
                        infos: list[tuple[str, str]], max_bytes: int | None
                        ) -> Iterator[bytes]:
        from taphouse.remotes.errors import RemoteError
        from taphouse.remotes.pushdown import run_remote

        plan = prepared.remote
        self.audit.start(prepared)
        started = time.monotonic()
        try:
            try:
                answer = run_remote(plan, self.remotes, cancelled=lambda: bool(cancel.reason),
                                    max_bytes=self.settings.remote_max_bytes)
            except RemoteError as exc:
                raise QueryError(exc.message, exc.status, query=prepared.spec.query) from None
            cancel.rows += answer.rows
            cap = self.settings.result_max_bytes if max_bytes is None else max_bytes
            info = ResultInfo(query=prepared.spec.query, limit=prepared.limit,
                              infos=[*infos, ("REMOTE", plan.remote.name),
                                     ("REMOTE_QUERY", plan.adql)],
                              spool_dir=self.scratch_dir, max_bytes=cap,
                              overflow=answer.overflow)
            try:
                yield from prepared.writer.write(answer.batches(), answer.columns, info)
            except FormatError as exc:
                raise QueryError(str(exc), 400, query=prepared.spec.query) from None
        finally:
            self.audit.finish(prepared, time.monotonic() - started, cancel)

    # --- execution ---------------------------------------------------------------
    def execute(self, prepared: PreparedQuery, *, cancel: CancelHandle | None = None,
                infos: list[tuple[str, str]] | None = None,
                max_bytes: int | None = None,
                copies: Sequence[BatchCopy] = ()) -> Generator[bytes, None, None]:
        """Run the query and stream the formatted result.

        ``copies`` (e.g. a user table being written) receive the same batches as the
        result, from the same single run of the query: its first ``limit`` rows, also
        those past a result cut short by ``max_bytes``. A copy that fails is dropped
        (``abort``), the result goes on; closing them is the caller's (after success).

        The query runs (and fails, with a QueryError) before the first chunk is yielded,
        so a caller that pulls the first chunk before answering can still send a 400.
        The document is at most ``max_bytes`` long (default: the ``result_max_bytes``
        setting); see :mod:`taphouse.formats.result` for how each format ends early.
        """
        try:
            yield from self._execute(prepared, cancel, infos, max_bytes, copies)
        finally:
            prepared.close()

    def _execute(self, prepared: PreparedQuery, cancel: CancelHandle | None,
                 infos: list[tuple[str, str]] | None,
                 max_bytes: int | None, copies: Sequence[BatchCopy] = ()
                 ) -> Iterator[bytes]:
        engine = prepared.backend or self.engine  # [postgres] routed backend
        cancel = cancel or CancelHandle()
        if prepared.remote is not None and not prepared.spec.dest:
            yield from self._execute_remote(prepared, cancel, list(infos or []), max_bytes)
            return
        self.audit.start(prepared)  # reads of restricted data: recorded first
        started = time.monotonic()
        if prepared.federated is not None:  # federation hook: the remote part runs first
            self._run_federated(prepared, cancel, started)
            infos = [*(infos or []), *prepared.federated.infos()]
        if prepared.remote is not None:  # remotes hook: DEST of a remote query
            self._fetch_remote_rows(prepared, cancel, started)
            infos = [*(infos or []), ("REMOTE", prepared.remote.remote.name),
                     ("REMOTE_QUERY", prepared.remote.adql)]
        sql, inline, infos = prepared.sql, prepared.inline, list(infos or [])
        if prepared.spec.dest:
            # taphouse extension DEST: all rows go to the user table first (quota and
            # conflicts fail here, before any byte); the response is read back from it.
            sql, inline, infos = self._store_dest(prepared, cancel, infos)
            engine = self.engine  # [postgres] the response is read from the user table
        # [spark] a shared cluster runs each user's queries in the user's own pool
        user_cursor = getattr(engine, "user_cursor", None)
        with (user_cursor(inline, prepared.identity.username) if user_cursor is not None
              else engine.cursor(inline)) as cur:
            cancel.attach(lambda: engine.interrupt(cur))
            try:
                if cancel.reason:
                    raise QueryError(f"query cancelled: {cancel.reason}", 400)
                try:
                    reader = engine.stream(cur, sql, BATCH_ROWS, BATCH_BYTES)
                except Exception as exc:
                    raise _engine_error(engine, exc, cancel) from None
                cap = self.settings.result_max_bytes if max_bytes is None else max_bytes
                info = ResultInfo(query=prepared.spec.query, limit=prepared.limit,
                                  infos=infos, spool_dir=self.scratch_dir,
                                  max_bytes=cap)
                batches: Iterator[pa.RecordBatch] = _batches(engine, reader, cancel)
                tee = None
                if copies:
                    tee = _Tee(batches, copies, prepared.limit,
                               getattr(reader, "schema", None))
                    batches = tee
                stream = prepared.writer.write(batches, prepared.columns, info)
                try:
                    yield from stream
                    if tee is not None:
                        tee.drain()
                except FormatError as exc:
                    # A value the format cannot hold (SUM overflowing a long, a row value):
                    # the caller's error, 400 when no byte has been sent yet.
                    raise QueryError(str(exc), 400, query=prepared.spec.query) from None
                finally:
                    if tee is not None:
                        tee.close()
            finally:
                cancel.detach()
                self.audit.finish(prepared, time.monotonic() - started, cancel)
                release_memory()  # at most once a second


    def _store_dest(self, prepared: PreparedQuery, cancel: CancelHandle,
                    infos: list[tuple[str, str]]
                    ) -> tuple[str, dict[str, Any], list[tuple[str, str]]]:
        from taphouse.userspace import UserSpaceError

        try:
            table, added, sql = self.userspace.store_query(prepared, cancel)
        except UserSpaceError as exc:
            status = 400 if exc.status == 413 else exc.status
            raise QueryError(exc.message, status, query=prepared.spec.query) from None
        infos = infos + [("DEST_TABLE", f"{table.database}.{table.name}"),
                         ("DEST_ROWS", str(added))]
        prepared.dest_rows, prepared.dest_table = added, f"{table.database}.{table.name}"
        return sql, {}, infos


class BatchCopy(Protocol):
    """Where a copy of a result's batches goes (a user table being written:
    :class:`taphouse.userspace.writer.UserTableWriter`)."""

    def start(self, schema: pa.Schema) -> None: ...

    def write(self, batch: pa.RecordBatch) -> None: ...

    def abort(self) -> None: ...


class _Tee:
    """The batches of one run of a query, passed on to the result writer and copied to
    each of ``copies`` (its first ``limit`` rows). A failing copy is aborted and
    dropped; the result is unaffected.

    The copies are written by a thread of their own (at most ``_QUEUED`` batches
    behind), so a user table being written (HEALPix index, engine inserts) overlaps
    with the formatting of the result instead of adding to it. :meth:`close` (always
    called) waits for that thread: the copies are complete or aborted once it returns.
    """

    def __init__(self, batches: Iterator[pa.RecordBatch], copies: Sequence[BatchCopy],
                 limit: int, schema: pa.Schema | None) -> None:
        self._batches = batches
        self.copies = list(copies)
        self.room = max(int(limit), 0)
        self._queue: queue.Queue[pa.RecordBatch | None] | None = None
        self._thread: threading.Thread | None = None
        if schema is not None:
            for copy in list(self.copies):
                self._guard(copy, copy.start, schema)

    def __iter__(self) -> _Tee:
        return self

    def __next__(self) -> pa.RecordBatch:
        batch = next(self._batches)
        self._copy(batch)
        return batch

    def drain(self) -> None:
        """The result has all it takes: read on for the copies, up to ``limit`` rows."""
        while self.copies and self.room > 0:
            try:
                batch = next(self._batches)
            except StopIteration:
                return
            self._copy(batch)

    def _copy(self, batch: pa.RecordBatch) -> None:
        if not self.copies or self.room <= 0:
            return
        part = batch if batch.num_rows <= self.room else batch.slice(0, self.room)
        self.room -= part.num_rows
        if self._thread is None:
            self._queue = queue.Queue(_QUEUED)
            self._thread = threading.Thread(target=self._write_copies, daemon=True,
                                            name="result-copy")
            self._thread.start()
        assert self._queue is not None
        self._queue.put(part)

    def _write_copies(self) -> None:
        assert self._queue is not None
        while (part := self._queue.get()) is not None:
            for copy in list(self.copies):
                try:
                    self._guard(copy, copy.write, part)
                except BaseException:  # (not Exception): still never block the result
                    log.warning("a copy of a query result was dropped: interrupted")
                    if copy in self.copies:
                        self.copies.remove(copy)
                    copy.abort()

    def close(self) -> None:
        """Wait until the copies have every batch sent to them (safe to repeat)."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _guard(self, copy: BatchCopy, action: Any, arg: Any) -> None:
        try:
            action(arg)
        except Exception as exc:
            log.warning("a copy of a query result was dropped: %s",
                        getattr(exc, "message", None) or type(exc).__name__)
            self.copies.remove(copy)
            copy.abort()


def _batches(engine: Backend, reader: Iterable[pa.RecordBatch], cancel: CancelHandle
             ) -> Iterator[pa.RecordBatch]:
    try:
        for batch in reader:
            cancel.rows += batch.num_rows
            yield batch
    except Exception as exc:
        raise _engine_error(engine, exc, cancel) from None


def _engine_error(engine: Backend, exc: Exception, cancel: CancelHandle) -> QueryError:
    """The backend's error as the user's: a cancel says why; otherwise the backend's
    message for the error's type (``Backend.describe_error``)."""
    if cancel.reason:
        return QueryError(f"query cancelled: {cancel.reason}", 400)
    if isinstance(exc, QueryError):
        return exc
    if isinstance(exc, ServiceError):
        return QueryError(exc.message, exc.status)
    return QueryError(f"query failed: {engine.describe_error(exc)}", 400)


#: The name a remote answer being stored (DEST) has in the local query that stores it.
_REMOTE_ROWS = "_remote_rows"



def mixed_backends(tables: list[TableMeta]) -> bool:
    """federation hook: catalogue tables of two backends meet in the query."""
    from taphouse.federation.backends import mixed_backends as mixed

    return mixed(tables)


def _no_relation(table: TableMeta) -> str:
    raise AssertionError("a query that runs on a remote reads no local table")


def _upload_meta(name: str, columns: list[ColumnMeta], nrows: int) -> TableMeta:
    ra, dec = position_columns(columns)
    return TableMeta(database="tap_upload", name=name, columns=columns, kind="upload",
                     description=f"table uploaded with this request as {name}",
                     ra_column=ra, dec_column=dec, nrows=nrows)
