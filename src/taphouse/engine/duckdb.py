"""The embedded DuckDB backend.

One in-process DuckDB instance per server, locked down at start: no file access
outside the tables directory, no extension install or auto-load, configuration locked,
bounded memory, threads and temp space. Table versions are attached read-only on first
use under an alias derived from their version id; each query runs on its own cursor,
so a query can be cancelled on its own (``interrupt``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import duckdb

from taphouse.catalogue.model import TableMeta


class EngineError(Exception):
    """The backend failed to run a query; the message is safe to show a user."""


class QueryCancelled(EngineError):
    """The query was cancelled (abort, time limit or client gone)."""


class DuckDBEngine:
    """Runs SQL produced by :mod:`taphouse.adql` on attached table version files."""

    def __init__(self, tables_dir: Path, *, threads: int = 2, memory_limit: str = "4GB",
                 temp_dir: Path | None = None, temp_limit: str = "10GB") -> None:
        self.tables_dir = Path(tables_dir).resolve()
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "threads": threads,
            "memory_limit": memory_limit,
        }
        self._con = duckdb.connect(":memory:", config=config)
        if temp_dir is not None:
            Path(temp_dir).mkdir(parents=True, exist_ok=True)
            self._con.execute(f"SET temp_directory='{_sql_str(str(Path(temp_dir).resolve()))}'")
            self._con.execute(f"SET max_temp_directory_size='{_sql_str(temp_limit)}'")
        self._con.execute(f"SET allowed_directories=['{_sql_str(str(self.tables_dir))}/']")
        self._con.execute("SET enable_external_access=false")
        self._register_functions()
        self._con.execute("SET lock_configuration=true")
        self._attached: dict[int, str] = {}
        self._lock = threading.Lock()

    def _register_functions(self) -> None:
        # The ADQL user-defined functions that need backend support register here.
        from taphouse.engine.functions import register_functions

        register_functions(self._con)

    # --- relations -------------------------------------------------------------------
    def relation(self, table: TableMeta) -> str:
        """SQL relation of a stored table version, attaching its file on first use."""
        if table.path is None or table.version_id is None:
            raise EngineError(f"table {table.database}.{table.name} has no stored version")
        with self._lock:
            alias = self._attached.get(table.version_id)
            if alias is None:
                alias = f"v{table.version_id}"
                path = Path(table.path).resolve()
                if self.tables_dir not in path.parents:
                    raise EngineError("table file outside the tables directory")
                self._con.execute(f"ATTACH '{_sql_str(str(path))}' AS {alias} (READ_ONLY)")
                self._attached[table.version_id] = alias
        return f"{alias}.main.data"

    def forget(self, version_id: int) -> None:
        """Detach a retired version (best effort: a running query may still hold it)."""
        with self._lock:
            alias = self._attached.pop(version_id, None)
            if alias is not None:
                try:
                    self._con.execute(f"DETACH {alias}")
                except duckdb.Error:
                    self._attached[version_id] = alias

    # --- execution -------------------------------------------------------------------
    @contextmanager
    def cursor(self, inline: dict[str, Any] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one query, with per-request tables registered."""
        cur = self._con.cursor()
        try:
            for name, data in (inline or {}).items():
                cur.register(name, data)
            yield cur
        finally:
            cur.close()

    @staticmethod
    def stream(cur: Any, sql: str, batch_rows: int = 65536) -> Any:
        """Run ``sql`` on ``cur`` and return its rows as an Arrow RecordBatchReader that
        streams: the result is never materialised whole (a DB-API ``execute`` would be)."""
        return cur.sql(sql).to_arrow_reader(batch_rows)

    def write_table(self, sql: str, path: Path, *, order_by: str | None = None,
                    inline: dict[str, Any] | None = None, cursor: Any = None) -> int:
        """Run ``sql`` and store all its rows as a new version file at ``path``.

        The file is written under a temporary name and renamed when complete, so a
        crash leaves no file that looks finished. Returns the number of rows.
        """
        path = Path(path).resolve()
        if self.tables_dir not in path.parents:
            raise EngineError("table file outside the tables directory")
        tmp = path.with_name(path.name + ".tmp")
        alias = "w_" + path.stem.replace("-", "_")
        ordered = f"SELECT * FROM ({sql}) AS q ORDER BY {order_by}" if order_by else sql
        # A caller-supplied cursor lets it interrupt the write (cancel, time limit).
        ctx = self.cursor(inline) if cursor is None else nullcontext(cursor)
        with ctx as cur:
            cur.execute(f"ATTACH '{_sql_str(str(tmp))}' AS {alias}")
            try:
                cur.execute(f"CREATE TABLE {alias}.main.data AS {ordered}")
                nrows = cur.execute(f"SELECT count(*) FROM {alias}.main.data").fetchone()[0]
            except BaseException:
                cur.execute(f"DETACH {alias}")
                for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
                    leftover.unlink(missing_ok=True)
                raise
            cur.execute(f"DETACH {alias}")
        tmp.rename(path)
        return int(nrows)


def _sql_str(text: str) -> str:
    return text.replace("'", "''")
