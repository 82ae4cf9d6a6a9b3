"""Running one TAP query, shared by sync requests and async jobs.

``parse_query_spec`` turns DALI parameters into a :class:`QuerySpec`; ``QueryService``
prepares it against the caller's scope (uploads read, ADQL translated) and streams the
formatted result. Nothing here knows about HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from taphouse.admission.memory import release_memory
from taphouse.adql import AdqlError, translate
from taphouse.adql.scope import Scope, inline_name
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import TableMeta, check_name, position_columns
from taphouse.errors import without_paths
from taphouse.formats import FormatError, ResultInfo, get_writer, read_upload
from taphouse.formats.result import BATCH_BYTES
from taphouse.settings import Settings
from taphouse.tap.errors import TapError

LANGS = {"adql", "adql-2.0", "adql-2.1"}
BATCH_ROWS = 65536


@dataclass
class QuerySpec:
    """A validated query request (the parameters that matter, normalised)."""

    query: str
    maxrec: int
    responseformat: str = "votable"
    uploads: list[tuple[str, str]] = field(default_factory=list)  # (table name, URI)
    runid: str | None = None
    dest: str | None = None
    dest_mode: str = "create"

    def to_params(self) -> dict[str, str]:
        out = {"LANG": "ADQL", "QUERY": self.query, "MAXREC": str(self.maxrec),
               "RESPONSEFORMAT": self.responseformat}
        if self.uploads:
            out["UPLOAD"] = ";".join(f"{n},{u}" for n, u in self.uploads)
        if self.runid:
            out["RUNID"] = self.runid
        if self.dest:
            out["DEST"] = self.dest
            out["DEST_MODE"] = self.dest_mode
        return out


def parse_query_spec(values: dict[str, str], settings: Settings, *,
                     require_query: bool = True) -> QuerySpec:
    """Validate DALI/TAP parameters (``values`` keyed lower-case)."""
    lang = values.get("lang")
    if lang is None and require_query:
        raise TapError("missing parameter LANG (use LANG=ADQL)")
    if lang is not None and lang.strip().lower() not in LANGS:
        raise TapError(f"unsupported LANG {lang!r}: this service speaks ADQL, ADQL-2.0, ADQL-2.1")
    query = values.get("query")
    if (query is None or not query.strip()) and require_query:
        raise TapError("missing parameter QUERY")
    if query is not None and len(query) > settings.query_max_chars:
        raise TapError(f"QUERY has {len(query)} characters; the limit is"
                       f" {settings.query_max_chars}: upload long value lists as a table"
                       " (UPLOAD) and join with it")
    maxrec_text = values.get("maxrec")
    if maxrec_text is None or maxrec_text.strip() == "":
        maxrec = settings.maxrec_default
    else:
        try:
            maxrec = int(maxrec_text)
        except ValueError:
            raise TapError(f"MAXREC must be a non-negative integer, not {maxrec_text!r}") from None
        if maxrec < 0:
            raise TapError(f"MAXREC must be a non-negative integer, not {maxrec_text!r}")
        maxrec = min(maxrec, settings.maxrec_limit)
    fmt = values.get("responseformat") or values.get("format") or "votable"
    try:
        get_writer(fmt)
    except FormatError as exc:
        raise TapError(str(exc)) from None
    uploads = parse_upload_param(values.get("upload"))
    dest = values.get("dest") or None
    dest_mode = (values.get("dest_mode") or "create").lower()
    if dest_mode not in {"create", "replace", "append"}:
        raise TapError(f"DEST_MODE must be create, replace or append, not {dest_mode!r}")
    return QuerySpec(query=query or "", maxrec=maxrec, responseformat=fmt, uploads=uploads,
                     runid=values.get("runid"), dest=dest, dest_mode=dest_mode)


_METADATA_QUERY_CHARS = 4000


def reads_only_metadata(spec: QuerySpec) -> bool:
    """Whether a query reads TAP_SCHEMA and nothing else (no catalogue table, upload or
    DEST): such queries are admitted apart from data queries, so that browsing the
    metadata never waits behind them. Decided from the parsed query (cheap for the short
    texts clients send; longer ones count as data queries)."""
    if spec.uploads or spec.dest or len(spec.query) > _METADATA_QUERY_CHARS \
            or "tap_schema" not in spec.query.lower():
        return False  # (decided without parsing: this runs on the event loop)
    from sqlglot import exp

    from taphouse.adql import parse

    try:
        tree = parse(spec.query)
    except AdqlError:
        return False
    tables = list(tree.find_all(exp.Table))
    return bool(tables) and all(t.db.lower() == "tap_schema" for t in tables)


def check_dest_scope(identity: Identity, values: dict[str, str]) -> None:
    """``DEST`` writes a table: refuse it to credentials without the ``write`` scope
    (a read-only token). Checked when a request names DEST, because an async job runs
    later with its owner's full rights."""
    if values.get("dest") and not identity.anonymous:
        from taphouse.auth.authenticator import require_scope

        require_scope(identity, "write")


def parse_upload_param(text: str | None) -> list[tuple[str, str]]:
    """``UPLOAD=name,uri;name2,uri2`` -> [(name, uri), ...] with names checked."""
    if not text:
        return []
    result = []
    for item in text.split(";"):
        if not item.strip():
            continue
        name, sep, uri = item.partition(",")
        if not sep or not uri.strip():
            raise TapError(f"bad UPLOAD item {item!r}: expected NAME,URI (e.g. t1,param:t1)")
        try:
            lname = check_name(name.strip(), "upload table")
        except Exception as exc:
            raise TapError(str(exc)) from None
        result.append((lname, uri.strip()))
    return result


@dataclass
class PreparedQuery:
    """A translated query with everything needed to run it."""

    spec: QuerySpec
    identity: Identity
    scope: Scope
    sql: str
    columns: list
    tables: list[TableMeta]
    limit: int
    inline: dict[str, Any]
    writer: Any
    #: The audit record written before the query ran (restricted databases), if any.
    audit_id: int | None = None
    lease: Any = None  # the table versions the query holds attached (engine VersionLease)

    def relation(self, table: TableMeta) -> str:
        """Backend relation of a stored table, held as long as this query's versions."""
        return self.lease.relation(table)

    def close(self) -> None:
        """Let go of the table versions (after the last query of the request; safe to
        call more than once)."""
        if self.lease is not None:
            self.lease.release()


class QueryService:
    """Prepares and runs queries on the engine for one platform."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.settings: Settings = platform.settings

    # --- preparation -------------------------------------------------------------
    def read_uploads(self, spec: QuerySpec, parts: dict[str, Any],
                     part_types: dict[str, str]) -> dict[str, tuple[Any, TableMeta]]:
        """The TAP_UPLOAD tables of a request; ``parts`` maps part names to their files
        (or bytes)."""
        tables: dict[str, tuple[Any, TableMeta]] = {}
        for name, uri in spec.uploads:
            if uri.startswith("param:"):
                part = uri[len("param:"):]
                if part not in parts:
                    raise TapError(f"UPLOAD {name}: no request part named {part!r}")
                data = parts[part]
                ctype = part_types.get(part)
            elif uri.startswith(("http:", "https:")):
                data, ctype = self._fetch_upload(name, uri)
            else:
                raise TapError(f"UPLOAD {name}: unsupported URI {uri!r} (use param:NAME)")
            try:
                arrow, columns = read_upload(data, content_type=ctype, name=name,
                                             max_rows=self.settings.upload_max_rows)
            except FormatError as exc:
                raise TapError(str(exc)) from None
            tables[name] = (arrow, _upload_meta(name, columns, arrow.num_rows))
        return tables

    def _fetch_upload(self, name: str, uri: str) -> tuple[bytes, str | None]:
        from taphouse.outbound import OutboundError

        if not self.settings.upload_urls:
            raise TapError(f"UPLOAD {name}: URL uploads are disabled on this service;"
                           " send the table inline (param:NAME)")
        try:
            fetched = self.platform.outbound.fetch(uri)
        except OutboundError as exc:
            status = 413 if "limit is" in exc.message else 400
            raise TapError(f"UPLOAD {name}: {exc.message}", status) from None
        if fetched.status != 200:
            raise TapError(f"UPLOAD {name}: {uri} answered HTTP {fetched.status}")
        return fetched.body, fetched.content_type

    def prepare(self, identity: Identity, spec: QuerySpec, *,
                workspace: Sequence[str] | None = None,
                uploads: dict[str, tuple[Any, TableMeta]] | None = None) -> PreparedQuery:
        """Build the scope and translate; raises TapError with the ADQL position.

        The tables the query reads stay attached until :meth:`execute` ends (or the
        caller calls ``prepared.close()`` if it does not execute it)."""
        lease = self.platform.engine.lease()
        try:
            scope = self.platform.scopes.build(identity, workspace, uploads,
                                               relation=lease.relation)
            # DEST stores every row (userspace): MAXREC limits only the response, which
            # is read back from the stored table.
            tr = translate(spec.query, scope, maxrec=None if spec.dest else spec.maxrec)
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
            error = TapError(message, line=exc.line, column=exc.column, query=spec.query)
            self.platform.audit_rejected(identity, spec.query, error)
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
                             inline=inline, writer=writer, lease=lease)

    # --- execution ---------------------------------------------------------------
    def execute(self, prepared: PreparedQuery, *, cancel: CancelHandle | None = None,
                infos: list[tuple[str, str]] | None = None,
                max_bytes: int | None = None) -> Iterator[bytes]:
        """Run the query and stream the formatted result.

        The query runs (and fails, with a TapError) before the first chunk is yielded,
        so a caller that pulls the first chunk before answering can still send a 400.
        The document is at most ``max_bytes`` long (default: the ``result_max_bytes``
        setting); see :mod:`taphouse.formats.result` for how each format ends early.
        """
        try:
            yield from self._execute(prepared, cancel, infos, max_bytes)
        finally:
            prepared.close()

    def _execute(self, prepared: PreparedQuery, cancel: CancelHandle | None,
                 infos: list[tuple[str, str]] | None,
                 max_bytes: int | None) -> Iterator[bytes]:
        engine = self.platform.engine
        cancel = cancel or CancelHandle()
        self.platform.audit_start(prepared)  # reads of restricted data: recorded first
        started = time.monotonic()
        sql, inline, infos = prepared.sql, prepared.inline, list(infos or [])
        if prepared.spec.dest:
            # taphouse extension DEST: all rows go to the user table first (quota and
            # conflicts fail here, before any byte); the response is read back from it.
            sql, inline, infos = self._store_dest(prepared, cancel, infos)
        with engine.cursor(inline) as cur:
            cancel.attach(cur)
            try:
                if cancel.reason:
                    raise TapError(f"query cancelled: {cancel.reason}", 400)
                try:
                    reader = engine.stream(cur, sql, BATCH_ROWS, BATCH_BYTES)
                except Exception as exc:
                    raise _engine_error(exc, cancel) from None
                cap = self.settings.result_max_bytes if max_bytes is None else max_bytes
                info = ResultInfo(query=prepared.spec.query, limit=prepared.limit,
                                  infos=infos, spool_dir=self.platform.scratch.path,
                                  max_bytes=cap)
                stream = prepared.writer.write(_batches(reader, cancel), prepared.columns, info)
                try:
                    yield from stream
                except FormatError as exc:
                    # A value the format cannot hold (SUM overflowing a long, a row value):
                    # the caller's error, 400 when no byte has been sent yet.
                    raise TapError(str(exc), 400, query=prepared.spec.query) from None
            finally:
                cancel.detach()
                self.platform.audit(prepared, time.monotonic() - started, cancel)
                release_memory()  # at most once a second


    def _store_dest(self, prepared: PreparedQuery, cancel: CancelHandle,
                    infos: list[tuple[str, str]]
                    ) -> tuple[str, dict[str, Any], list[tuple[str, str]]]:
        from taphouse.userspace import UserSpaceError

        try:
            table, added, sql = self.platform.userspace.store_query(prepared, cancel)
        except UserSpaceError as exc:
            status = 400 if exc.status == 413 else exc.status
            raise TapError(exc.message, status, query=prepared.spec.query) from None
        infos = infos + [("DEST_TABLE", f"{table.database}.{table.name}"),
                         ("DEST_ROWS", str(added))]
        return sql, {}, infos


def _batches(reader: Any, cancel: CancelHandle) -> Iterator[Any]:
    try:
        for batch in reader:
            cancel.rows += batch.num_rows
            yield batch
    except Exception as exc:
        raise _engine_error(exc, cancel) from None


def _engine_error(exc: Exception, cancel: CancelHandle) -> TapError:
    if cancel.reason:
        return TapError(f"query cancelled: {cancel.reason}", 400)
    text = str(exc)
    # DuckDB prefixes messages with the error class ("Binder Error: ..."): keep the
    # sentence, drop internal detail after the first line.
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    first = without_paths(first)
    return TapError(f"query failed: {first}", 400)


class CancelHandle:
    """Lets another thread cancel a running query (abort, time limit, client gone)."""

    def __init__(self) -> None:
        self._cursor: Any = None
        self._lock = threading.Lock()
        self.reason: str | None = None
        self.rows = 0
        self._deadline: _Deadline | None = None

    def attach(self, cursor: Any) -> None:
        with self._lock:
            self._cursor = cursor
            if self.reason:
                cursor.interrupt()

    def detach(self) -> None:
        """The cursor's query is over (the time limit still runs: one request may run
        several queries, e.g. a DEST write and the read-back)."""
        with self._lock:
            self._cursor = None

    def finish(self) -> None:
        """The request is over: detach, and drop the time limit."""
        with self._lock:
            self._cursor = None
            if self._deadline is not None:
                self._deadline.cancelled = True

    def cancel(self, reason: str) -> None:
        with self._lock:
            first = self.reason is None
            if first:
                self.reason = reason
            if self._cursor is not None:
                self._cursor.interrupt()
        if first:
            # DuckDB ignores an interrupt that arrives before the query starts running on
            # the cursor: keep interrupting until the query lets go of the cursor.
            threading.Thread(target=self._keep_interrupting, daemon=True).start()

    def _keep_interrupting(self, period: float = 0.05, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(period)
            with self._lock:
                if self._cursor is None:
                    return
                self._cursor.interrupt()

    def deadline(self, seconds: float, reason: str | None = None) -> None:
        """Cancel automatically after ``seconds``."""
        msg = reason or f"execution duration limit of {seconds:g} s reached"
        self._deadline = _DEADLINES.add(seconds, self.cancel, msg)


class _Deadline:
    __slots__ = ("when", "action", "reason", "cancelled")

    def __init__(self, when: float, action: Any, reason: str) -> None:
        self.when, self.action, self.reason, self.cancelled = when, action, reason, False

    def __lt__(self, other: _Deadline) -> bool:
        return self.when < other.when


class _DeadlineClock:
    """One thread for the time limits of all running queries (a thread per query would
    cost more than a small query itself)."""

    def __init__(self) -> None:
        self._heap: list[_Deadline] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, action: Any, reason: str) -> _Deadline:
        import heapq

        item = _Deadline(time.monotonic() + seconds, action, reason)
        with self._wake:
            if len(self._heap) > 4096:  # drop the limits of queries that ended long ago
                self._heap = [i for i in self._heap if not i.cancelled]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="query-deadlines",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()
        return item

    def _run(self) -> None:
        import heapq

        while True:
            with self._wake:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                delay = self._heap[0].when - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                item = heapq.heappop(self._heap)
            if not item.cancelled:
                item.action(item.reason)


_DEADLINES = _DeadlineClock()


def _upload_meta(name: str, columns: list, nrows: int) -> TableMeta:
    ra, dec = position_columns(columns)
    return TableMeta(database="tap_upload", name=name, columns=columns, kind="upload",
                     description=f"table uploaded with this request as {name}",
                     ra_column=ra, dec_column=dec, nrows=nrows)


