"""Query execution backends. The embedded default is DuckDB (:mod:`.duckdb`)."""

from taphouse.engine.duckdb import DuckDBEngine, EngineError, QueryCancelled

__all__ = ["DuckDBEngine", "EngineError", "QueryCancelled"]
