"""The scope of a request: the tables one ADQL query may see, and how to reach them.

The HTTP layer builds a scope from the caller's identity (catalogue databases they may
read, narrowed to a workspace if any; their own user space; TAP_UPLOAD tables;
TAP_SCHEMA filtered to what they may see). ``adql`` resolves every name against it and
asks it for the backend relation of each table it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taphouse.catalogue.model import TableMeta


@dataclass
class Scope:
    """Tables visible to one request.

    Attributes
    ----------
    tables
        ``{(schema, table): TableMeta}``, keys lower-case.
    relation
        Returns the SQL relation text of a table for the backend, e.g.
        ``"t42".main.data`` for an attached version file. Called only for tables a
        query really uses (so the engine attaches lazily).
    schema_aliases
        ``{"mydb": "user_alice"}``: names that stand for another schema.
    search_path
        Schemas searched, in order, for an unqualified table name; a name found in
        more than one of them is ambiguous (an error).
    inline
        ``{(schema, table): pyarrow.Table}`` for tables that exist only for this request
        (TAP_UPLOAD, TAP_SCHEMA); the engine registers them under ``inline_name``. A
        value may also be a function returning the table, called only when a query
        reads it (TAP_SCHEMA is built that way).
    """

    tables: dict[tuple[str, str], TableMeta]
    relation: Callable[[TableMeta], str]
    schema_aliases: dict[str, str] = field(default_factory=dict)
    search_path: list[str] = field(default_factory=list)
    inline: dict[tuple[str, str], Any] = field(default_factory=dict)

    def schemas(self) -> list[str]:
        return sorted({s for s, _ in self.tables})


def inline_name(table: TableMeta) -> str:
    """The name under which an inline (per-request) table is registered in the backend."""
    return f"_inline_{table.database}_{table.name}"
