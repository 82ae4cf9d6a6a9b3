"""TAP_SCHEMA, generated from the catalogue metadata of what the caller may see.

Never maintained by hand: every request gets the five TAP 1.1 tables built from the
visible :class:`TableMeta` list, as per-request (inline) tables.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from taphouse.adql.reserved import adql_schema
from taphouse.catalogue.model import ColumnMeta, TableMeta

SCHEMA = "tap_schema"


def _c(name: str, datatype: str, description: str, *, principal: bool = True,
       std: bool = True) -> ColumnMeta:
    return ColumnMeta(name=name, datatype=datatype, arraysize="*" if datatype == "char" else None,
                      description=description, principal=principal, std=std)


_DEFS: dict[str, tuple[str, list[ColumnMeta]]] = {
    "schemas": ("Schemas (databases) visible in this service", [
        _c("schema_name", "char", "schema name, as written in ADQL"),
        _c("utype", "char", "lists the utypes of schemas"),
        _c("description", "char", "brief description of the schema"),
        _c("schema_index", "int", "recommended sort order when listing schemas"),
    ]),
    "tables": ("Tables visible in this service", [
        _c("schema_name", "char", "the schema this table belongs to"),
        _c("table_name", "char", "the fully qualified table name, as written in ADQL"),
        _c("table_type", "char", "one of: table, view"),
        _c("utype", "char", "lists the utype of tables"),
        _c("description", "char", "brief description of the table"),
        _c("table_index", "int", "recommended sort order when listing tables"),
    ]),
    "columns": ("Columns of the tables visible in this service", [
        _c("table_name", "char", "the table this column belongs to"),
        _c("column_name", "char", "the column name, as written in ADQL"),
        _c("utype", "char", "lists the utypes of columns"),
        _c("ucd", "char", "lists the UCDs of columns"),
        _c("unit", "char", "lists the unit used for column values"),
        _c("description", "char", "brief description of the column"),
        _c("datatype", "char", "lists the ADQL datatype of columns"),
        _c("arraysize", "char", "lists the size of variable-length columns"),
        _c("xtype", "char", "a DALI or custom extended type annotation"),
        _c("size", "int", "deprecated: use arraysize"),
        _c("principal", "int", "a principal column; 1 means true, 0 false"),
        _c("indexed", "int", "an indexed column; 1 means true, 0 false"),
        _c("std", "int", "a standard column; 1 means true, 0 false"),
        _c("column_index", "int", "recommended sort order when listing columns"),
    ]),
    "keys": ("Foreign keys between the tables of this service", [
        _c("key_id", "char", "unique key identifier"),
        _c("from_table", "char", "fully qualified table name"),
        _c("target_table", "char", "fully qualified table name"),
        _c("utype", "char", "lists the utype of keys"),
        _c("description", "char", "describes keys in the tableset"),
    ]),
    "key_columns": ("Columns of the foreign keys of this service", [
        _c("key_id", "char", "key identifier from TAP_SCHEMA.keys"),
        _c("from_column", "char", "key column name in the from_table"),
        _c("target_column", "char", "key column name in the target_table"),
    ]),
}

_ARROW = {"char": pa.string(), "int": pa.int32()}

# The foreign keys among the TAP_SCHEMA tables themselves: (id, from, target, columns).
_KEYS = [
    ("tap_schema_tables_schema", "tables", "schemas", [("schema_name", "schema_name")]),
    ("tap_schema_columns_table", "columns", "tables", [("table_name", "table_name")]),
    ("tap_schema_keys_from", "keys", "tables", [("from_table", "table_name")]),
    ("tap_schema_keys_target", "keys", "tables", [("target_table", "table_name")]),
    ("tap_schema_key_columns_key", "key_columns", "keys", [("key_id", "key_id")]),
]


def tap_schema_meta() -> list[TableMeta]:
    """Metadata of the five TAP_SCHEMA tables themselves, with their foreign keys in
    ``extra["foreign_keys"]`` (the shape any table may use to declare keys)."""
    keys: dict[str, list[dict]] = {}
    for key_id, source, target, pairs in _KEYS:
        keys.setdefault(source, []).append({
            "key_id": key_id, "target": f"{SCHEMA}.{target}", "columns": pairs,
            "description": f"{SCHEMA}.{source} refers to {SCHEMA}.{target}"})
    return [TableMeta(database=SCHEMA, name=name, columns=cols, description=desc,
                      kind="tap_schema", extra={"foreign_keys": keys.get(name, [])})
            for name, (desc, cols) in _DEFS.items()]


def tap_schema_tables(tables: Iterable[TableMeta],
                      schema_descriptions: dict[str, str] | None = None,
                      ) -> list[tuple[TableMeta, pa.Table]]:
    """(meta, Arrow table) for each TAP_SCHEMA table, describing ``tables`` and itself."""
    schema_descriptions = dict(schema_descriptions or {})
    schema_descriptions.setdefault(SCHEMA, "The TAP_SCHEMA metadata tables of this service (TAP 1.1)")
    own = tap_schema_meta()
    everything = sorted(tables, key=lambda t: (t.database, t.name)) + own
    schemas: dict[str, None] = {}
    for t in everything:
        schemas.setdefault(t.database, None)
    rows: dict[str, list[list]] = {name: [] for name in _DEFS}
    for i, s in enumerate(schemas):
        rows["schemas"].append([adql_schema(s), None, schema_descriptions.get(s, ""),
                                100 if s == SCHEMA else i])
    for i, t in enumerate(everything):
        rows["tables"].append([adql_schema(t.database), t.qualified_name, "table", None,
                               t.description, 100 + i if t.database == SCHEMA else i])
        for j, c in enumerate(t.columns):
            size = int(c.arraysize) if c.arraysize and c.arraysize.isdigit() else None
            rows["columns"].append([
                t.qualified_name, c.adql_name, c.utype, c.ucd, c.unit, c.description,
                c.datatype, c.arraysize, c.xtype, size, int(c.principal), int(c.indexed),
                int(c.std), j])
    for t in everything:
        for key in t.extra.get("foreign_keys", []):
            rows["keys"].append([key["key_id"], t.qualified_name, key["target"], None,
                                 key.get("description")])
            for from_col, target_col in key["columns"]:
                rows["key_columns"].append([key["key_id"], from_col, target_col])
    result = []
    for meta in own:
        cols = meta.columns
        data = rows[meta.name]
        arrays = [pa.array([r[k] for r in data], type=_ARROW[c.datatype])
                  for k, c in enumerate(cols)]
        result.append((meta, pa.Table.from_arrays(arrays, names=[c.name for c in cols])))
    return result
