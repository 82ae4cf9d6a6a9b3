"""The scope of a request: the tables one ADQL query may see, and how to reach them.

The HTTP layer builds a scope from the caller's identity (catalogue databases they may
read, narrowed to a workspace if any; their own user space; TAP_UPLOAD tables;
TAP_SCHEMA filtered to what they may see). ``adql`` resolves every name against it and
asks it for the backend relation of each table it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from taphouse.catalogue.model import TableMeta


class TableSource(Protocol):
    """Tables of a scope looked up when a query names them (a service with 10,000
    tables must not build them all for every query)."""

    def table(self, schema: str, name: str) -> TableMeta | None:
        """The table ``schema.name`` (lower-case), if visible."""

    def named(self, name: str) -> list[TableMeta]:
        """Every visible table called ``name`` (lower-case), in any schema."""

    def names(self) -> list[tuple[str, str]]:
        """``(schema, table)`` of every visible table (for error messages)."""

    def schemas(self) -> set[str]:
        """Schemas holding at least one visible table."""


@dataclass
class Scope:
    """Tables visible to one request.

    Attributes
    ----------
    tables
        ``{(schema, table): TableMeta}``, keys lower-case: tables known up front
        (TAP_SCHEMA, TAP_UPLOAD; every table, in tests).
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
    source
        The other tables, looked up by name when a query names them (stored tables).
    """

    tables: dict[tuple[str, str], TableMeta]
    relation: Callable[[TableMeta], str]
    schema_aliases: dict[str, str] = field(default_factory=dict)
    search_path: list[str] = field(default_factory=list)
    inline: dict[tuple[str, str], Any] = field(default_factory=dict)
    source: TableSource | None = None

    def table(self, schema: str, name: str) -> TableMeta | None:
        """The table ``schema.name`` (real schema name, lower-case), or None."""
        found = self.tables.get((schema, name))
        if found is None and self.source is not None:
            found = self.source.table(schema, name)
        return found

    def named(self, name: str) -> dict[tuple[str, str], TableMeta]:
        """Every table of the scope called ``name``, by (schema, table)."""
        out = {key: t for key, t in self.tables.items() if key[1] == name}
        if self.source is not None:
            for t in self.source.named(name):
                out.setdefault((t.database, t.name), t)
        return out

    def names(self) -> list[tuple[str, str]]:
        """``(schema, table)`` of every table of the scope."""
        out = list(self.tables)
        if self.source is not None:
            out += [key for key in self.source.names() if key not in self.tables]
        return out

    def schemas(self) -> list[str]:
        """Schemas holding at least one table of the scope."""
        found = {s for s, _ in self.tables}
        if self.source is not None:
            found |= self.source.schemas()
        return sorted(found)


def inline_name(table: TableMeta) -> str:
    """The name under which an inline (per-request) table is registered in the backend."""
    return f"_inline_{table.database}_{table.name}"
