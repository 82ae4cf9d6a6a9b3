"""The Apache Spark backend: the same ADQL on a Spark cluster (``local[N]`` in tests).

SQL from ``taphouse.adql.translate(..., dialect="spark")`` runs on one long-lived
:class:`SparkSession` (one SparkContext per process, as Spark allows):

* A stored table version is a *global temporary view*, ``global_temp.th…_v<id>``, created
  on first use. A HEALPix-partitioned (HATS) version is read as its partition files; a
  cone or polygon names only the files of the partitions its coverage touches
  (:func:`taphouse.adql.rules.spark._read_files`), so Spark never opens the others. A
  single-file (DuckDB) version, which Spark cannot read, is exported once to Parquet in
  the backend's cache directory (a version never changes), e.g. small catalogue tables
  and user tables joined with a partitioned catalogue.
* Each query runs in a session of its own (``newSession()``: same cluster, its own
  temporary views), where the request's inline tables (uploads, TAP_SCHEMA) are temporary
  views, at most ``max_temp_rows`` rows each.
* The service functions (:func:`taphouse.engine.functions.service_functions`) are the
  same vectorised Arrow functions as on DuckDB, registered as Spark Arrow UDFs.
* A query's jobs run in a job group of their own (``interrupt()`` cancels it: abort,
  time limit) and in the fair-scheduler pool of its user, so one user's query cannot
  take every executor while others wait.
* A crossmatch of two partitioned versions runs partition-aligned (:func:`_pair_joins`):
  one task per aligned HEALPix pixel reads a left partition and the right partition with
  its margin, so neither table is shuffled; the rest of the query reads the pairs.
* Results stream back as Arrow record batches, a window of partitions at a time (a
  Spark job per window): the driver holds one window, and a reader that stops (MAXREC)
  stops the query (:meth:`SparkBackend.stream`).
"""

from __future__ import annotations

import logging
import math
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from taphouse.catalogue.hats import is_version_dir, partitions
from taphouse.catalogue.model import HEALPIX_COLUMN, TableMeta
from taphouse.engine.backend import capped_table
from taphouse.engine.deadlines import DEADLINES, Deadline
from taphouse.engine.errors import EngineError, QueryCancelled
from taphouse.errors import without_paths

if TYPE_CHECKING:
    from taphouse.engine.backend import TableWriter
    from taphouse.engine.duckdb import DuckDBEngine
    from taphouse.engine.functions import ServiceFunction

log = logging.getLogger(__name__)

#: Spark settings the backend always sets (the operator's ``conf`` may add others).
BASE_CONF = {
    # Fair sharing between the pools of different users (one pool per user).
    "spark.scheduler.mode": "FAIR",
    # DuckDB's answers for invalid casts (NULL, not an error); x / 0, LOG(0)... are
    # errors on every backend by the rules (taphouse.adql.rules.arithmetic)
    "spark.sql.ansi.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    # Versions name their files: list them on the driver (a listing job per view of
    # more than 32 files cost seconds)
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "4096",
}
#: Settings of every query's session, over the operator's ``conf``: Spark replaces
#: ``${env:X}``, ``${system:x}`` and ``${spark.conf.key}`` anywhere in SQL text, string
#: literals and quoted names included, so ADQL's ``'${env:HOME}'`` came back as the
#: server's environment variable (and a setting such as an object store key).
SESSION_CONF = {"spark.sql.variable.substitute": "false"}
#: Settings for a real cluster. Spark kills a cancelled query's tasks cooperatively: a
#: task stops at its next check, which a nested-loop join over a whole input batch may
#: not reach for hours (seen on local[2]: a cancelled triple CROSS JOIN's tasks ran on,
#: each taking a core, after its job was reported cancelled). The task reaper restarts
#: an executor whose killed task has not stopped within the timeout, so a cancelled or
#: timed-out query frees its cores. In local mode the executor is this process's own
#: JVM, which the reaper never kills: there, such a task runs to its end.
CLUSTER_CONF = {
    "spark.task.reaper.enabled": "true",
    "spark.task.reaper.killTimeout": "120s",
}
#: Settings for a small local cluster (tests, one machine).
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "1g",
    "spark.sql.adaptive.enabled": "true",
}
_POOL_NAME = re.compile(r"[^A-Za-z0-9_.@-]")
_DUCKDB_TYPES = {
    "BIGINT": "bigint", "INTEGER": "int", "DOUBLE": "double", "VARCHAR": "string",
    "BOOLEAN": "boolean", "SMALLINT": "smallint", "REAL": "float",
}


def spark_type(duckdb_type: str) -> str:
    """The Spark SQL type (DDL text) of a service function's DuckDB type name."""
    name = duckdb_type.upper()
    if name.endswith("]"):
        return f"array<{spark_type(name[:name.rindex('[')])}>"
    try:
        return _DUCKDB_TYPES[name]
    except KeyError:
        raise ValueError(f"no Spark type for {duckdb_type}") from None


def pool_name(user: str | None) -> str:
    """The fair-scheduler pool of a user (anonymous requests share one)."""
    if not user:
        return "anonymous"
    return "user:" + _POOL_NAME.sub("_", user)[:64]


class _View:
    __slots__ = ("name", "refs", "used", "retired")

    def __init__(self, name: str) -> None:
        self.name, self.refs, self.used, self.retired = name, 0, time.monotonic(), False


class SparkLease:
    """The table versions one request reads (their views stay until released)."""

    def __init__(self, backend: SparkBackend) -> None:
        self._backend = backend
        self._held: dict[int, str] = {}
        self._lock = threading.Lock()

    def relation(self, table: TableMeta) -> str:
        with self._lock:
            name = self._held.get(table.version_id)  # type: ignore[arg-type]
            if name is None:
                name = self._backend._acquire(table)
                self._held[table.version_id] = name  # type: ignore[index]
        return name

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, {}
        for version_id in held:
            self._backend._release(version_id)

    def __enter__(self) -> SparkLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class SparkCursor:
    """One query's session: its temporary views, job group and scheduler pool.

    ``interrupt()`` (from any thread) cancels the running Spark jobs of the query and
    any it would start later."""

    def __init__(self, backend: SparkBackend, session: Any, pool: str) -> None:
        self.backend = backend
        self.session = session
        self.pool = pool
        self.group = "taphouse-" + secrets.token_hex(8)
        self.cancelled = False
        self.running = False
        self.deadline: Deadline | None = None
        #: The request's tables shipped to the session (view name -> rows), for
        #: service functions computed on the driver (:func:`_precompute`).
        self.tables: dict[str, pa.Table] = {}
        #: Per-pixel tasks of the partition-aligned crossmatches run (:func:`_pair_joins`).
        self.pair_tasks = 0
        #: ... and the Spark tasks they ran in (pixels grouped up to PAIR_TASK_BYTES).
        self.pair_groups = 0
        self._lock = threading.Lock()
        self._repeater: threading.Thread | None = None

    def interrupt(self) -> None:
        self.cancelled = True
        self._cancel_group()
        with self._lock:
            if self.running and self._repeater is None:
                # Belt and braces: cancel the group again until the query's jobs block
                # ends (a job being submitted as the cancel arrives).
                self._repeater = threading.Thread(target=self._keep_cancelling,
                                                  name="spark-cancel", daemon=True)
                self._repeater.start()

    def _cancel_group(self) -> None:
        # The group's running jobs and every job submitted in it later (the group is
        # this query's alone): a plain cancelJobGroup misses a job submitted after it,
        # which then ran to its end (seen: a nested-loop COUNT running 13 min after its
        # cancel, the query blocked in runJob).
        self.backend.context._jsc.sc().cancelJobGroupAndFutureJobs(self.group)

    def _keep_cancelling(self, period: float = 0.2) -> None:
        try:
            while self.running:
                self._cancel_group()
                time.sleep(period)
        finally:
            with self._lock:
                self._repeater = None  # a later jobs block gets its own repeater

    @contextmanager
    def jobs(self, description: str) -> Iterator[None]:
        """Jobs started in this block (in this thread) belong to the cursor's group and
        run in its pool."""
        sc = self.backend.context
        if self.cancelled:
            raise QueryCancelled("query cancelled")
        sc.setJobGroup(self.group, description[:200], interruptOnCancel=True)
        sc.setLocalProperty("spark.scheduler.pool", self.pool)
        with self._lock:
            self.running = True
        try:
            if self.cancelled:  # cancelled while the group was being set
                raise QueryCancelled("query cancelled")
            yield
        finally:
            with self._lock:
                self.running = False
            # None removes a thread's property (the stubs say str)
            for key in ("spark.scheduler.pool", "spark.jobGroup.id",
                        "spark.job.description", "spark.job.interruptOnCancel"):
                sc.setLocalProperty(key, None)  # type: ignore[arg-type]
        if self.cancelled:
            raise QueryCancelled("query cancelled")

    def sql(self, sql: str) -> Any:
        """The DataFrame of ``sql`` in this cursor's session (nothing runs yet)."""
        return self.session.sql(sql)


class SparkBackend:
    """Runs SQL produced by :mod:`taphouse.adql` (dialect ``spark``) on Apache Spark.

    Parameters
    ----------
    tables_dir
        The catalogue's tables directory (only versions inside it are read).
    master
        The Spark master URL: ``local[2]``, ``spark://host:7077``, ``yarn``,
        ``k8s://...``. On a cluster, ``tables_dir`` and ``cache_dir`` must be on a
        filesystem every executor reads at the same path (or an object store URL
        mounted there).
    cache_dir
        Where single-file versions are exported to Parquet for Spark (default:
        ``tables_dir/../spark-cache``).
    conf
        More Spark settings (``spark.executor.memory``...), applied over the defaults.
    max_temp_rows
        Most rows of a table shipped to Spark for one request (an upload, a user table
        of the request, TAP_SCHEMA).
    stream_window
        Partitions of a result computed and held on the driver at once (default: the
        cluster's default parallelism); see :meth:`stream`.
    precompute_rows
        Service functions over a request's table of at most this many rows are
        computed on the driver before the query (:func:`_precompute`).
    """

    dialect = "spark"

    def __init__(self, tables_dir: Path, *, master: str = "local[2]",
                 cache_dir: Path | None = None, conf: dict[str, str] | None = None,
                 app_name: str = "taphouse", max_temp_rows: int = 1_000_000,
                 idle_drop: float = 600.0, stream_window: int | None = None,
                 precompute_rows: int = 200_000) -> None:
        from pyspark.sql import SparkSession

        self.tables_dir = Path(tables_dir).resolve()
        self.cache_dir = Path(cache_dir).resolve() if cache_dir is not None else \
            self.tables_dir.parent / "spark-cache"
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.master = master
        self.max_temp_rows = max_temp_rows
        #: Partitions of a result fetched (and held by the driver) at once; None: the
        #: cluster's default parallelism.
        self.stream_window = stream_window
        self.precompute_rows = precompute_rows
        self.idle_drop = idle_drop
        settings = dict(BASE_CONF)
        if master.startswith("local"):
            settings.update(LOCAL_CONF)
            # The Python workers of the Arrow UDFs: this interpreter (its packages)
            settings["spark.pyspark.python"] = sys.executable
        else:
            settings.update(CLUSTER_CONF)
        settings.update(conf or {})
        settings.update(SESSION_CONF)
        builder = SparkSession.builder.master(master).appName(app_name)
        for key, value in settings.items():
            builder = builder.config(key, value)
        started = time.monotonic()
        self.spark = builder.getOrCreate()
        self.start_seconds = time.monotonic() - started
        self.context = self.spark.sparkContext
        self.context.setLogLevel("ERROR")
        if settings.get("spark.pyspark.python"):
            # PySpark itself reads only $PYSPARK_PYTHON for the workers' interpreter
            self.context.pythonExec = settings["spark.pyspark.python"]
        self._views: dict[int, _View] = {}
        #: View name -> version directory, for partitioned versions (:func:`_pair_joins`).
        self._dirs: dict[str, Path] = {}
        # View names of this backend (several backends may share the one SparkSession
        # of the process, each over its own catalogue)
        self._prefix = "th" + secrets.token_hex(4)
        self._lock = threading.Lock()
        self._export_lock = threading.Lock()
        self._duck: DuckDBEngine | None = None
        self._register_functions(self.spark)

    def close(self) -> None:
        """Drop this backend's views (the process's SparkSession, which other backends
        may share, stays until the process ends)."""
        with self._lock:
            for version_id in list(self._views):
                self._drop(version_id)

    # --- functions -------------------------------------------------------------------
    def functions(self) -> tuple[ServiceFunction, ...]:
        from taphouse.engine.functions import service_functions

        return service_functions()

    def _register_functions(self, session: Any) -> None:
        for f in self.functions():
            session.udf.register(f.name, _arrow_udf(f))

    # --- relations -------------------------------------------------------------------
    def lease(self) -> SparkLease:
        return SparkLease(self)

    def relation(self, table: TableMeta) -> str:
        name = self._acquire(table)
        self._release(table.version_id)  # type: ignore[arg-type]
        return name

    def forget(self, version_id: int) -> None:
        with self._lock:
            view = self._views.get(version_id)
            if view is None:
                return
            view.retired = True
            if view.refs == 0:
                self._drop(version_id)

    def detach_idle(self, idle_seconds: float | None = None) -> int:
        idle = self.idle_drop if idle_seconds is None else idle_seconds
        cutoff = time.monotonic() - idle
        with self._lock:
            old = [v for v, w in self._views.items() if w.refs == 0 and w.used <= cutoff]
            for v in old:
                self._drop(v)
            return len(old)

    def views(self) -> dict[int, int]:
        """Versions with a view and how many leases hold each (monitoring, tests)."""
        with self._lock:
            return {v: w.refs for v, w in self._views.items()}

    def _acquire(self, table: TableMeta) -> str:
        if table.path is None or table.version_id is None:
            raise EngineError(f"table {table.database}.{table.name} has no stored version")
        path = Path(table.path).resolve()
        if self.tables_dir not in path.parents:
            raise EngineError("table file outside the tables directory")
        with self._lock:
            view = self._views.get(table.version_id)
            if view is None:
                files = list(partitions(path).files) if is_version_dir(path) else \
                    [str(self._exported(path, table.version_id))]
                name = f"{self._prefix}_v{table.version_id}"
                self.spark.read.parquet(*files).createOrReplaceGlobalTempView(name)
                view = _View(f"global_temp.{name}")
                self._views[table.version_id] = view
                if is_version_dir(path):
                    self._dirs[view.name] = path
            view.refs += 1
            view.used = time.monotonic()
            return view.name

    def _release(self, version_id: int) -> None:
        with self._lock:
            view = self._views.get(version_id)
            if view is None:
                return
            view.refs -= 1
            view.used = time.monotonic()
            if view.refs <= 0 and view.retired:
                self._drop(version_id)

    def _drop(self, version_id: int) -> None:
        view = self._views.pop(version_id)
        self._dirs.pop(view.name, None)
        self.spark.catalog.dropGlobalTempView(view.name.split(".", 1)[1])

    def _exported(self, path: Path, version_id: int) -> Path:
        """A single-file (DuckDB) version as Parquet in the cache (written once)."""
        import duckdb

        target = self.cache_dir / f"v{version_id}.parquet"
        with self._export_lock:
            if target.exists():
                return target
            tmp = target.with_name(target.name + f".{secrets.token_hex(4)}.tmp")
            con = duckdb.connect(":memory:", config={"threads": 1})
            try:
                con.execute(f"ATTACH '{_sql_str(str(path))}' AS src (READ_ONLY)")
                con.execute(f"COPY (SELECT * FROM src.main.data) TO '{_sql_str(str(tmp))}'"
                            " (FORMAT parquet, COMPRESSION snappy)")
            finally:
                con.close()
            tmp.rename(target)
            return target

    # --- execution -------------------------------------------------------------------
    @contextmanager
    def cursor(self, inline: dict[str, Any] | None = None, *,
               pool: str | None = None) -> Iterator[SparkCursor]:
        """A session of its own for one query, with the request's tables as temporary
        views; ``pool`` is the fair-scheduler pool (:func:`pool_name` of the user)."""
        session = self.spark.newSession()
        for key, value in SESSION_CONF.items():  # a new session starts from the defaults
            session.conf.set(key, value)
        self._register_functions(session)
        cur = SparkCursor(self, session, pool or pool_name(None))
        try:
            for name, data in (inline or {}).items():
                self.load_temp_table(cur, name, data, self.max_temp_rows)
            yield cur
        finally:
            if cur.deadline is not None:
                cur.deadline.cancelled = True

    def load_temp_table(self, cur: SparkCursor, name: str,
                        data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
                        max_rows: int) -> int:
        """Ship ``data`` to the query's session as the temporary view ``name`` (seen by
        that query only); returns its rows. More than ``max_rows``:
        :class:`TempTableTooLarge`, nothing shipped."""
        table = capped_table(data, name, max_rows)
        df = cur.session.createDataFrame(table) if table.num_columns else \
            cur.session.sql("SELECT 1 AS _empty WHERE false")
        df.createOrReplaceTempView(name)
        cur.tables[name] = table
        return int(table.num_rows)

    def user_cursor(self, inline: dict[str, Any] | None, user: str | None
                    ) -> AbstractContextManager[SparkCursor]:
        """:meth:`cursor` in the fair-scheduler pool of ``user``."""
        return self.cursor(inline, pool=pool_name(user))

    def interrupt(self, cur: SparkCursor) -> None:
        """Cancel the Spark jobs of the query on ``cur`` (and any it would start)."""
        cur.interrupt()

    def limit(self, cur: SparkCursor, *, seconds: float | None = None,
              memory_bytes: int | None = None) -> None:
        """Cancel the query's jobs after ``seconds``. Memory is bounded per executor by
        the cluster's settings (``spark.executor.memory``), not per query."""
        if seconds is None:
            return
        if cur.deadline is not None:
            cur.deadline.cancelled = True
        cur.deadline = DEADLINES.add(seconds, lambda _reason: cur.interrupt(), "time limit")

    def describe_error(self, exc: BaseException) -> str:
        """A user's message for an exception from Spark, by its type (no file path,
        class name or stack trace)."""
        return describe_spark_error(exc)

    def stream(self, cur: SparkCursor, sql: str, batch_rows: int = 65536,
               batch_bytes: int | None = None) -> SparkStream:
        """Run ``sql`` and return its rows as Arrow record batches (at most
        ``batch_rows`` rows each), in order, fetched a window of partitions at a time.

        The driver holds one window (``stream_window`` partitions, default the cluster's
        parallelism) of the result at once, whatever its size. The first window runs
        now (errors of planning and of its partitions are raised here); the next one
        runs when the reader gets there, so a reader that stops early (MAXREC) stops
        the query: an outermost ``LIMIT`` without ``ORDER BY`` is applied here while
        reading instead of by Spark (which would compute every partition's share).
        """
        limit = None
        sql = _pair_joins(self, cur, sql)
        if cur.tables:
            sql = _precompute(self, cur, sql)
        stripped = _strip_outer_limit(sql)
        if stripped is not None:
            sql, limit = stripped
        df = cur.sql(sql)
        from pyspark.sql.pandas.types import to_arrow_schema

        schema = to_arrow_schema(df.schema, error_on_duplicated_field_names_in_struct=True,
                                 timezone="UTC")
        # positional names: Spark resolves mapInArrow's input by name (a column named
        # after an expression with dots, two columns of one name)
        positional = df.toDF(*(f"c{i}" for i in range(len(df.columns))))
        packed = positional.mapInArrow(_pack_batches, "ipc binary")
        with cur.jobs(sql):
            rdd = packed.rdd  # (adaptive plans run their shuffle stages here)
            parts = rdd.getNumPartitions()
        out = SparkStream(self, cur, sql, rdd, parts, schema, limit, max(1, batch_rows),
                          self.stream_window or max(1, self.context.defaultParallelism))
        out.prefetch()
        return out

    def _writer(self) -> DuckDBEngine:
        # User tables and stored results are single DuckDB files whichever backend
        # computed them: written by a private DuckDB engine over the same tables_dir.
        from taphouse.engine.duckdb import DuckDBEngine

        with self._export_lock:
            if self._duck is None:
                self._duck = DuckDBEngine(self.tables_dir, threads=1, memory_limit="1GB")
            return self._duck

    def open_writer(self, schema: pa.Schema, path: Path, *, order_by: str | None = None,
                    max_bytes: int | None = None, cursor: Any = None) -> TableWriter:
        """A new single-file version written from Arrow batches (as DuckDB writes it)."""
        return self._writer().open_writer(schema, path, order_by=order_by,
                                          max_bytes=max_bytes)

    def write_arrow(self, batches: Iterable[pa.RecordBatch], schema: pa.Schema,
                    path: Path, *, order_by: str | None = None,
                    max_bytes: int | None = None, cursor: Any = None) -> int:
        return self._writer().write_arrow(batches, schema, path, order_by=order_by,
                                          max_bytes=max_bytes)

    def write_table(self, sql: str, path: Path, *, order_by: str | None = None,
                    inline: dict[str, Any] | None = None, cursor: Any = None,
                    max_bytes: int | None = None) -> int:
        """Store every row of ``sql`` (run on Spark, sorted there by ``order_by``) as a
        new single-file version at ``path``."""
        ordered = f"SELECT * FROM ({sql}) AS q ORDER BY {order_by}" if order_by else sql
        if cursor is not None:
            return self._write_from(cursor, ordered, path, max_bytes)
        with self.cursor(inline) as cur:
            return self._write_from(cur, ordered, path, max_bytes)

    def _write_from(self, cur: SparkCursor, sql: str, path: Path,
                    max_bytes: int | None) -> int:
        reader = self.stream(cur, sql)
        try:
            return self.write_arrow(reader, reader.schema, path, max_bytes=max_bytes)
        finally:
            reader.close()


class SparkStream:
    """The batches of one query's result, a window of partitions (one Spark job) at a
    time, in partition order (a sorted result's order); :meth:`close` stops it."""

    def __init__(self, backend: SparkBackend, cur: SparkCursor, sql: str, rdd: Any,
                 parts: int, schema: pa.Schema, limit: int | None, batch_rows: int,
                 window: int) -> None:
        self.schema = schema
        self._backend, self._cur, self._sql, self._rdd = backend, cur, sql, rdd
        self._parts, self._limit, self._rows = parts, limit, batch_rows
        self._window, self._next_part, self._sent = window, 0, 0
        self._pending: list[bytes] = []
        self._closed = False
        #: Spark jobs run so far (one per window; monitoring, tests).
        self.jobs = 0

    def prefetch(self) -> None:
        """Run the next window's job (if any is left) and keep its batches."""
        if self._next_part >= self._parts or self._closed:
            return
        part_ids = list(range(self._next_part, min(self._parts,
                                                   self._next_part + self._window)))
        self._next_part = part_ids[-1] + 1
        with self._cur.jobs(self._sql):
            got = self._backend.context.runJob(self._rdd, _blobs, part_ids)
        self.jobs += 1
        self._pending.extend(got)

    def __iter__(self) -> SparkStream:
        return self

    def __next__(self) -> pa.RecordBatch:
        while not self._closed:
            if self._limit is not None and self._sent >= self._limit:
                break
            if not self._pending:
                if self._next_part >= self._parts:
                    break
                self.prefetch()
                continue
            blob = self._pending.pop(0)
            batch = pa.ipc.open_stream(blob).read_next_batch()
            if batch.num_rows == 0:
                continue
            batch = pa.RecordBatch.from_arrays(
                [c if c.type == f.type else c.cast(f.type)
                 for c, f in zip(batch.columns, self.schema, strict=True)],
                schema=self.schema)
            if self._limit is not None:
                batch = batch.slice(0, self._limit - self._sent)
            if batch.num_rows > self._rows:  # the rest goes back, read next
                rest = batch.slice(self._rows)
                self._pending.insert(0, _ipc(rest))
                batch = batch.slice(0, self._rows)
            self._sent += batch.num_rows
            return batch
        self.close()
        raise StopIteration

    def close(self) -> None:
        """Stop: no further window runs; the batches held are dropped."""
        self._closed = True
        self._pending = []


def _ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def _pack_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """(On the executors) each Arrow batch of a partition as one row of IPC bytes."""
    for batch in batches:
        if batch.num_rows:
            yield pa.record_batch([pa.array([_ipc(batch)], pa.binary())], names=["ipc"])


def _blobs(rows: Iterable[Any]) -> list[bytes]:
    """(On the executors) a partition's packed batches."""
    return [bytes(row[0]) for row in rows]


def _precompute(backend: SparkBackend, cur: SparkCursor, sql: str) -> str:
    """``sql`` with each ``SELECT *, f(...) AS c FROM t AS a`` (or ``EXPLODE(f(...))``)
    over a table of the request ``t`` (an upload: the HEALPix cells of its positions
    that a crossmatch joins on) replaced by a new temporary view of ``t`` with ``c``
    computed on the driver by the same Arrow function. On the cluster each such
    function is a Python UDF stage of its own (a Python worker, Arrow both ways): for
    2,000 uploaded rows that cost more than the join itself. Only service functions
    whose arguments are literals and columns of ``t``; anything else is left as it is.
    """
    import sqlglot
    from sqlglot import exp

    if not any(t.num_rows <= backend.precompute_rows for t in cur.tables.values()):
        return sql
    if not any(f.name.lower() in sql.lower() for f in backend.functions()):
        return sql
    try:
        tree = sqlglot.parse_one(sql, read="spark")
    except sqlglot.errors.ParseError:
        return sql
    functions = {f.name.lower(): f for f in backend.functions()}
    changed = False
    for sub in reversed(list(tree.find_all(exp.Subquery))):
        made = _computed_view(backend, cur, sub, functions)
        if made is not None:
            sub.replace(made)
            changed = True
    return tree.sql(dialect="spark") if changed else sql


def _computed_view(backend: SparkBackend, cur: SparkCursor, sub: Any,
                   functions: dict[str, ServiceFunction]) -> Any:
    from sqlglot import exp

    select = sub.this
    if (not isinstance(select, exp.Select) or not sub.alias
            or len(select.expressions) != 2
            or not isinstance(select.expressions[0], exp.Star)
            or not isinstance(select.expressions[1], exp.Alias)
            or any(select.args.get(k) for k in ("joins", "where", "group", "having",
                                                  "order", "limit", "distinct",
                                                  "laterals"))):
        return None
    source = select.args.get("from_") or select.args.get("from")
    table_node = source.this if source is not None else None
    if not isinstance(table_node, exp.Table) or table_node.args.get("db") \
            or table_node.name not in cur.tables:
        return None
    data = cur.tables[table_node.name]
    if data.num_rows > backend.precompute_rows:
        return None
    alias = select.expressions[1]
    value, explode = alias.this, False
    if isinstance(value, exp.Explode | exp.Unnest):
        inner = value.this if isinstance(value, exp.Explode) else \
            (value.expressions[0] if len(value.expressions) == 1 else None)
        value, explode = inner, True
    if not isinstance(value, exp.Anonymous) or str(value.this).lower() not in functions:
        return None
    f = functions[str(value.this).lower()]
    if len(value.expressions) != len(f.params):
        return None
    names = {n.lower(): n for n in data.column_names}
    args = []
    for arg, declared in zip(value.expressions, f.params, strict=True):
        typ = _arrow_type(declared)
        if isinstance(arg, exp.Literal) and not arg.is_string:
            args.append(pa.array([float(arg.this) if "." in arg.this or "e" in
                                  arg.this.lower() else int(arg.this)] * data.num_rows
                                 ).cast(typ))
        elif isinstance(arg, exp.Column) and arg.name.lower() in names:
            column = data.column(names[arg.name.lower()]).combine_chunks()
            args.append(column if column.type == typ else column.cast(typ))
        else:
            return None
    out = f.impl(*args)
    if isinstance(out, pa.ChunkedArray):
        out = out.combine_chunks()
    if isinstance(out, pa.FixedSizeListArray):
        out = out.cast(pa.list_(out.type.value_type))
    column_name = alias.alias
    if explode:
        import pyarrow.compute as pc

        data = data.take(pc.list_parent_indices(out))
        out = pc.list_flatten(out)
    out = out.cast(_arrow_type(f.returns[:f.returns.rindex("[")] if explode else f.returns))
    result = data.append_column(column_name, out)
    name = f"_th_pre{len(cur.tables)}"
    cur.session.createDataFrame(result).createOrReplaceTempView(name)
    cur.tables[name] = result
    return exp.Table(this=exp.to_identifier(name, quoted=True),
                     alias=exp.TableAlias(this=exp.to_identifier(sub.alias, quoted=True)))


def _pair_joins(backend: SparkBackend, cur: SparkCursor, sql: str) -> str:
    """``sql`` with each crossmatch of two partitioned versions
    (:data:`taphouse.adql.spatial.PAIR_FUNCTION`) replaced by a temporary view of its
    candidate pairs computed partition by partition: one task per aligned pixel
    (:func:`taphouse.catalogue.hats.pair_tasks`) reads its left partition's rows and the
    right partition's rows and margin, and joins them on HEALPix cells (``mapInArrow``
    over the list of tasks: no shuffle of either table). The view's two columns are
    structs named after the tables' aliases (only the columns the query names), so the
    rest of the query, and its exact test, read ``a.ra`` as before."""
    from taphouse.adql.spatial import PAIR_FUNCTION

    if PAIR_FUNCTION not in sql.lower():
        return sql
    import sqlglot
    from sqlglot import exp

    from taphouse.adql.spatial import pair_of

    tree = sqlglot.parse_one(sql, read="spark")
    for table in list(tree.find_all(exp.Table)):
        pair = pair_of(table.this)
        if pair is not None:
            table.set("this", exp.to_identifier(_pair_view(backend, cur, tree, pair),
                                                quoted=True))
    return tree.sql(dialect="spark")


def _pair_view(backend: SparkBackend, cur: SparkCursor, tree: Any, pair: Any) -> str:
    import dataclasses
    import json
    from functools import partial

    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructField, StructType
    from sqlglot import exp

    from taphouse.catalogue.hats import pair_tasks

    with backend._lock:
        dirs = backend._dirs.get(pair.left), backend._dirs.get(pair.right)
    if dirs[0] is None or dirs[1] is None:
        raise EngineError("crossmatch of a table that is not a partitioned version")
    tasks = pair_tasks(dirs[0], dirs[1], pair.radius, pair.depth)
    if tasks is None:
        raise EngineError("the crossmatch radius exceeds the margin of the partitioned table")
    sides = []
    for relation, alias, ra, dec in ((pair.left, pair.left_alias, pair.left_ra,
                                      pair.left_dec),
                                     (pair.right, pair.right_alias, pair.right_ra,
                                      pair.right_dec)):
        wanted = {ra.lower(), dec.lower(), HEALPIX_COLUMN.lower()}
        everything = False
        for col in tree.find_all(exp.Column):
            if col.table == alias:
                if isinstance(col.this, exp.Star):
                    everything = True
                else:
                    wanted.add(col.name.lower())
        schema = backend.spark.table(relation).schema
        fields = [f for f in schema.fields if everything or f.name.lower() in wanted]
        sides.append((alias, StructType(fields), ra, dec))
    out = StructType([StructField(alias, struct) for alias, struct, _, _ in sides])
    spec = {"radius": pair.radius, "depth": pair.depth,
            "arrow": to_arrow_schema(out, error_on_duplicated_field_names_in_struct=True,
                                     timezone="UTC"),
            "sides": [([f.name for f in struct.fields], ra, dec)
                      for _, struct, ra, dec in sides]}
    # pixels in Spark tasks of at least PAIR_TASK_BYTES of left partition files (one
    # pixel a task for partitions of that size; small ones grouped: a Spark task and its
    # Python worker round trip cost ~0.1 s), and at least two Spark tasks a core
    sizes = [os.stat(t.left).st_size for t in tasks]
    share = min(PAIR_TASK_BYTES, sum(sizes) // (2 * max(1, backend.context.defaultParallelism)))
    groups: list[list[dict[str, Any]]] = [[]]
    weight = 0
    for t, size in zip(tasks, sizes, strict=True):
        if weight >= max(1, share):
            groups.append([])
            weight = 0
        groups[-1].append(dataclasses.asdict(t))
        weight += size
    rdd = backend.context.parallelize([(json.dumps(g),) for g in groups], len(groups))
    listed = cur.session.createDataFrame(rdd, "tasks string")
    name = f"_th_xm{cur.pair_tasks}_{len(tasks)}"
    listed.mapInArrow(partial(_pair_batches, spec), out).createOrReplaceTempView(name)
    cur.pair_tasks += len(tasks)
    cur.pair_groups += len(groups)
    return name


def _pair_batches(spec: dict[str, Any], batches: Iterator[pa.RecordBatch]
                  ) -> Iterator[pa.RecordBatch]:
    """(On the executors) the candidate pairs of each task of a list
    (:func:`_pair_view`)."""
    import json

    for batch in batches:
        for text in batch.column(0).to_pylist():
            for task in json.loads(text):
                yield from _pair_task(spec, task)


#: Left partition bytes a Spark task of a partition-aligned crossmatch reads at least
#: (its pixels' tasks run one after the other in it).
PAIR_TASK_BYTES = 32 << 20
#: Right rows whose 3x3 blocks are joined at once (bounds a task's memory).
PAIR_CHUNK = 50_000
#: Most rows of a batch of pairs.
PAIR_BATCH = 65_536


def _pair_task(spec: dict[str, Any], task: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    """Rows of the task's left partition and its right rows joined on the cells of
    ``depth`` (each right row's 3x3 block), kept when within the radius (and a hair:
    the query's exact test decides)."""
    import numpy as np
    from cdshealpix import nested

    arrow: pa.Schema = spec["arrow"]
    (lcols, lra, ldec), (rcols, rra, rdec) = spec["sides"]
    left = _read_rows([task["left"]], lcols, task["left_in"], task["left_out"])
    if left.num_rows == 0:
        return
    right = _read_rows(task["right"], rcols, task["right_in"], [])
    if right.num_rows == 0:
        return
    depth = int(spec["depth"])
    shift = 2 * (29 - depth)
    lcell = _column(left, HEALPIX_COLUMN, np.int64) >> shift
    order = np.argsort(lcell, kind="stable")
    lcell = lcell[order]
    la, ld = (np.radians(_column(left, c, np.float64)) for c in (lra, ldec))
    rcell_all = _column(right, HEALPIX_COLUMN, np.int64) >> shift
    ra_all, rd_all = (np.radians(_column(right, c, np.float64)) for c in (rra, rdec))
    limit = math.radians(float(spec["radius"])) * (1 + 1e-9) + 1e-15
    for lo in range(0, right.num_rows, PAIR_CHUNK):
        rcell = rcell_all[lo:lo + PAIR_CHUNK]
        block = nested.neighbours(rcell.astype(np.uint64), depth,
                                  num_threads=1).astype(np.int64).ravel()
        owner = np.repeat(np.arange(len(rcell)), 9)
        ok = block >= 0
        block, owner = block[ok], owner[ok]
        start = np.searchsorted(lcell, block, side="left")
        count = np.searchsorted(lcell, block, side="right") - start
        total = int(count.sum())
        if total == 0:
            continue
        ri = np.repeat(owner, count) + lo
        li = order[np.repeat(start - np.cumsum(count) + count, count) + np.arange(total)]
        h = (np.sin((rd_all[ri] - ld[li]) / 2) ** 2 + np.cos(ld[li]) * np.cos(rd_all[ri])
             * np.sin((ra_all[ri] - la[li]) / 2) ** 2)
        near = 2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))) <= limit
        li, ri = li[near], ri[near]
        for at in range(0, len(li), PAIR_BATCH):
            cut = slice(at, at + PAIR_BATCH)
            yield pa.record_batch([
                _struct(left.take(li[cut]), arrow.field(0).type),
                _struct(right.take(ri[cut]), arrow.field(1).type)], schema=arrow)


def _read_rows(files: list[str], columns: list[str], keep: list[list[int]] | None,
               drop: list[list[int]]) -> pa.Table:
    """Rows of Parquet files with a position index, those in the inclusive index ranges
    ``keep`` (all when None) and not in ``drop``."""
    import numpy as np
    import pyarrow.dataset as ds

    index = ds.field(HEALPIX_COLUMN)
    cond = index.is_valid()
    if keep:
        cond = cond & (index >= min(r[0] for r in keep)) & (index <= max(r[1] for r in keep))
    table = ds.dataset(files, format="parquet").to_table(columns=columns, filter=cond)
    if table.num_rows == 0 or (not drop and (keep is None or len(keep) == 1)):
        return table
    values = _column(table, HEALPIX_COLUMN, np.int64)
    mask = np.ones(len(values), dtype=bool)
    if keep is not None and len(keep) > 1:
        mask &= _in_ranges(values, keep)
    if drop:
        mask &= ~_in_ranges(values, drop)
    return table.filter(pa.array(mask))


def _in_ranges(values: Any, ranges: list[list[int]]) -> Any:
    import numpy as np

    ordered = sorted(ranges)
    lows = np.array([r[0] for r in ordered], dtype=np.int64)
    highs = np.array([r[1] for r in ordered], dtype=np.int64)
    at = np.searchsorted(highs, values, side="left")
    inside = at < len(highs)
    found = np.zeros(len(values), dtype=bool)
    found[inside] = lows[at[inside]] <= values[inside]
    return found


def _column(table: pa.Table, name: str, dtype: Any) -> Any:
    import numpy as np

    return np.asarray(table.column(name).to_numpy(), dtype=dtype)


def _struct(rows: pa.Table, typ: pa.DataType) -> pa.StructArray:
    """``rows`` as a struct array of type ``typ`` (its fields, cast as Spark reads them)."""
    arrays = []
    for field in typ:
        column = rows.column(field.name).combine_chunks()
        arrays.append(column if column.type == field.type else column.cast(field.type))
    return pa.StructArray.from_arrays(arrays, fields=list(typ))


_OUTER_LIMIT = re.compile(r"\s+LIMIT\s+(\d+)\s*$", re.IGNORECASE)


def _strip_outer_limit(sql: str) -> tuple[str, int] | None:
    """``sql`` without its outermost ``LIMIT n`` (and ``n``) when the outermost query
    has no ORDER BY and no OFFSET (the rows are then any ``n``: read while streaming);
    None otherwise."""
    match = _OUTER_LIMIT.search(sql)
    if match is None:
        return None
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="spark")
    except sqlglot.errors.ParseError:
        return None
    limit = tree.args.get("limit")
    if (not isinstance(tree, exp.Query) or limit is None or tree.args.get("order")
            or tree.args.get("offset") or not isinstance(limit.expression, exp.Literal)
            or str(limit.expression.this) != match.group(1)):
        return None
    return sql[:match.start()], int(match.group(1))


def describe_spark_error(exc: BaseException) -> str:
    """See :meth:`SparkBackend.describe_error`."""
    from pyspark.errors import (
        AnalysisException,
        ParseException,
        PythonException,
        QueryExecutionException,
    )

    text = str(exc)
    if isinstance(exc, QueryCancelled) or "cancelled" in text.lower():
        return "the query was interrupted (cancelled, or over its time limit)"
    if isinstance(exc, EngineError):
        return exc.message
    from taphouse.adql.rules.arithmetic import arithmetic_error

    arithmetic = arithmetic_error(_spark_sentence(text))  # raise_error: x / 0, LOG(0)...
    if arithmetic:
        return arithmetic
    if isinstance(exc, ParseException | AnalysisException):
        return f"the query cannot be run: {_spark_sentence(text)}"
    if isinstance(exc, PythonException):
        # a service function refused a value (e.g. a region in a column): its own words
        last = [ln for ln in text.splitlines() if re.match(r"\s*\w*Error: ", ln)]
        if last:
            return ("the query failed while computing a function: "
                    + without_paths(last[-1].split("Error: ", 1)[1].strip())[:300])
        return "the query failed while computing a function"
    if isinstance(exc, QueryExecutionException):
        return f"the query failed: {_spark_sentence(text)}"
    log.error("query failed on Spark: %s: %s", type(exc).__name__,
              without_paths(text.splitlines()[0] if text else ""))
    return "the query failed on the Spark cluster (logged for the operators)"


def _spark_sentence(text: str) -> str:
    """Spark's first line without its error class tag, SQL state and paths."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = re.sub(r"^\[[A-Z_.]+\]\s*", "", first)
    first = re.sub(r"\s*SQLSTATE: \w+\.?", "", first)
    return without_paths(first)[:300]


_ARROW_TYPES = {
    "BIGINT": pa.int64(), "INTEGER": pa.int32(), "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "SMALLINT": pa.int16(),
    "REAL": pa.float32(),
}


def _arrow_type(duckdb_type: str) -> pa.DataType:
    name = duckdb_type.upper()
    if name.endswith("]"):
        return pa.list_(_arrow_type(name[:name.rindex("[")]))
    return _ARROW_TYPES[name]


def _arrow_udf(f: ServiceFunction) -> Any:
    """A Spark Arrow UDF calling the same vectorised function as DuckDB's, with its
    arguments cast to the declared types first (as DuckDB does: Spark passes a NULL
    literal as Arrow's null type, an integer where a double is declared)."""
    from pyspark.sql.functions import arrow_udf

    returns = spark_type(f.returns)
    params = [_arrow_type(t) for t in f.params]
    impl = f.impl

    def call(*arrays: pa.Array) -> pa.Array:
        args = [a if a.type == t else a.cast(t) for a, t in zip(arrays, params, strict=True)]
        out = impl(*args)
        if isinstance(out, pa.FixedSizeListArray):
            out = out.cast(pa.list_(out.type.value_type))
        return out

    call.__name__ = f.name
    return arrow_udf(call, returns)  # type: ignore[call-overload]


def _sql_str(text: str) -> str:
    return text.replace("'", "''")
