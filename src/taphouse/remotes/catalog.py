"""Remote tables as catalogue metadata, for the ``/tables`` and TAP_SCHEMA of a workspace
that selects remotes.

A workspace lists a remote by name among its databases; its metadata documents then show
each of the remote's schemas as ``NAME.schema`` (an ADQL catalog-qualified schema) with
its tables ``NAME.schema.table``, read from the registry's one shared cache when asked:
nothing is copied into the workspace (Firethorn copied every remote's metadata into
every workspace). The remote's own metadata schemas (TAP_SCHEMA, TAP_UPLOAD) are left
out, and everything it says is untrusted: datatypes outside VOTable's list become
``char``, names are written as (quoted where needed) ADQL identifiers, so a hostile
schema name can neither take a local schema's place nor break the XML.
"""

from __future__ import annotations

from collections.abc import Sequence

from taphouse.adql.reserved import adql_identifier
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import ColumnMeta, DatabaseMeta, TableMeta
from taphouse.remotes.model import Remote, RemoteColumn, RemoteTable
from taphouse.remotes.registry import RemoteRegistry

#: Schemas of a remote that describe the remote itself, not data: never listed.
HIDDEN_SCHEMAS = frozenset({"tap_schema", "tap_upload"})
#: VOTable datatypes (VODataService VOTableType); anything else is shown as char.
VOTABLE_TYPES = frozenset({"boolean", "bit", "unsignedByte", "short", "int", "long", "char",
                           "unicodeChar", "float", "double", "floatComplex",
                           "doubleComplex"})
KIND = "remote"


def schema_name(remote: str, schema: str) -> str:
    """How ADQL names a remote's schema: ``NAME.schema`` (the schema quoted if needed)."""
    return f"{remote}.{adql_identifier(schema)}"


def _column(c: RemoteColumn) -> ColumnMeta:
    datatype = c.datatype if c.datatype in VOTABLE_TYPES else "char"
    arraysize = c.arraysize
    if datatype == "char" and c.datatype not in VOTABLE_TYPES:
        arraysize = "*"
    return ColumnMeta(name=c.name, datatype=datatype, arraysize=arraysize, xtype=c.xtype,
                      unit=c.unit, ucd=c.ucd, utype=c.utype, description=c.description,
                      principal=c.principal, indexed=c.indexed, std=c.std)


def table_meta(remote: Remote, table: RemoteTable) -> TableMeta:
    """A remote table as :class:`TableMeta` (kind ``remote``, schema ``NAME.schema``)."""
    return TableMeta(database=schema_name(remote.name, table.schema), name=table.name,
                     columns=[_column(c) for c in table.columns],
                     description=table.description or "", kind=KIND,
                     nrows=table.nrows or 0,
                     extra={"remote": remote.name, "remote_url": remote.url})


class RemoteSchemas:
    """The remote schemas a workspace shows, from the registry's cache."""

    def __init__(self, registry: RemoteRegistry) -> None:
        self.registry = registry

    def selected(self, identity: Identity, workspace: Sequence[str]) -> list[Remote]:
        """The remotes named in ``workspace`` that ``identity`` may still query (a remote
        removed, or a group left, drops out)."""
        wanted = set(workspace)
        return [r for r in self.registry.visible(identity) if r.name in wanted]

    def metadata(self, identity: Identity, workspace: Sequence[str]
                 ) -> tuple[list[DatabaseMeta], list[TableMeta]]:
        """The schemas (``NAME.schema``) and tables of the remotes the workspace selects."""
        databases: dict[str, DatabaseMeta] = {}
        tables: list[TableMeta] = []
        for remote in self.selected(identity, workspace):
            title = remote.title or remote.url
            for t in self.registry.tables(remote):
                if not t.schema or t.schema.lower() in HIDDEN_SCHEMAS:
                    continue  # (a table without a schema cannot be named NAME.schema.table)
                meta = table_meta(remote, t)
                databases.setdefault(meta.database, DatabaseMeta(
                    name=meta.database, kind=KIND,
                    description=f"schema {t.schema} of the remote TAP service {remote.name}"
                                f" ({title})"))
                tables.append(meta)
        return list(databases.values()), tables


__all__ = ["RemoteSchemas", "table_meta", "schema_name", "HIDDEN_SCHEMAS", "KIND"]
