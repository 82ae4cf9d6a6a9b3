"""Backend implementations of ADQL user-defined functions (see ``taphouse.adql.udf``)."""

from __future__ import annotations

from typing import Any


def register_functions(con: Any) -> None:
    """Register the UDFs the translated SQL may call on a DuckDB connection."""
