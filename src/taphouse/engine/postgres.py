"""PostgreSQL backend support: the service functions and loading catalogue tables.

SQL from ``taphouse.adql.translate(..., dialect="postgres")`` calls the same service
functions as on DuckDB (``ivo_healpix_index``, ``taphouse_healpix_neighbours``,
``taphouse_contains``, ``taphouse_intersects``, ``ivo_hasword``, ``ivo_epoch_prop_pos``). Here they are
plain SQL and PL/pgSQL (``postgres_functions.sql``), so no extension (pg_sphere, q3c,
healpix) is needed. A catalogue table is loaded from Arrow with ``COPY``, with its
HEALPix index column computed by cdshealpix, rows in index order and a B-tree index on
it, which the cone search's index ranges use.

The functions take a psycopg 3 connection (``psycopg`` is imported by the caller).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa

from taphouse.catalogue.model import HEALPIX_COLUMN, HEALPIX_ORDER
from taphouse.errors import ServiceError

FUNCTIONS_SQL = "postgres_functions.sql"


class PostgresError(ServiceError):
    """Loading into PostgreSQL failed; the message says what to change."""


def functions_sql() -> str:
    """The text of ``postgres_functions.sql`` (CREATE OR REPLACE statements)."""
    return resources.files("taphouse.engine").joinpath(FUNCTIONS_SQL).read_text("utf-8")


def install_postgres_functions(conn: Any) -> None:
    """Create (or replace) the ADQL service functions in the connection's database.

    Parameters
    ----------
    conn
        A psycopg 3 connection; the functions go to the first schema of its
        ``search_path`` (usually ``public``). Committed on return.
    """
    conn.execute(functions_sql())
    conn.commit()


def quote_identifier(name: str) -> str:
    """A PostgreSQL delimited identifier."""
    return '"' + name.replace('"', '""') + '"'


def relation_name(schema: str, table: str) -> str:
    """The quoted SQL relation ``"schema"."table"`` (for a ``Scope.relation``)."""
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    if (pa.types.is_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type):
        return "double precision[]"
    raise PostgresError(f"no PostgreSQL type for Arrow type {t}; convert the column first")


def healpix_index(ra: Any, dec: Any, order: int = HEALPIX_ORDER) -> pa.Array:
    """Nested HEALPix index at ``order`` of positions in degrees (NULL where missing)."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    ra_a = pa.array(ra, pa.float64()) if not isinstance(ra, pa.Array) else ra
    dec_a = pa.array(dec, pa.float64()) if not isinstance(dec, pa.Array) else dec
    ok = ~(np.asarray(ra_a.is_null()) | np.asarray(dec_a.is_null()))
    r = np.asarray(ra_a.fill_null(0.0), dtype=np.float64)
    d = np.asarray(dec_a.fill_null(0.0), dtype=np.float64)
    ok &= np.isfinite(r) & (np.abs(d) <= 90.0)
    out = np.zeros(len(r), dtype=np.int64)
    if ok.any():
        out[ok] = nested.lonlat_to_healpix(Longitude(np.mod(r[ok], 360.0) * u.deg),
                                           Latitude(d[ok] * u.deg), order).astype(np.int64)
    return pa.array(out, pa.int64(), mask=~ok)


def load_table(conn: Any, schema: str, name: str, table: pa.Table, *,
               ra_column: str | None = None, dec_column: str | None = None,
               replace: bool = True) -> int:
    """Create ``schema.name`` from an Arrow table and fill it with ``COPY``.

    With ``ra_column`` and ``dec_column`` the table gets the HEALPix index column
    (``healpix_index``, nested, order 29), its rows are written in index order and the
    column gets a B-tree index, so ``translate(..., dialect="postgres")`` cone searches
    read only the index ranges covering the circle.

    Parameters
    ----------
    conn
        A psycopg 3 connection. Committed on return.
    schema, name
        Target schema (created if missing) and table name.
    table
        The rows. Columns of Arrow types with a PostgreSQL equivalent (integers, floats,
        booleans, strings, timestamps, float lists as ``double precision[]``).
    replace
        Drop an existing table of that name first.

    Returns
    -------
    int
        The number of rows written.
    """
    if (ra_column is None) != (dec_column is None):
        raise PostgresError("give both ra_column and dec_column, or neither")
    if ra_column is not None:
        for col in (ra_column, dec_column):
            if col not in table.column_names:
                raise PostgresError(f"no column {col!r} in the table to load")
        index = healpix_index(table[ra_column].combine_chunks(),
                              table[dec_column].combine_chunks())
        if HEALPIX_COLUMN in table.column_names:
            table = table.drop_columns([HEALPIX_COLUMN])
        table = table.append_column(HEALPIX_COLUMN, index)
        table = table.sort_by(HEALPIX_COLUMN)
    rel = relation_name(schema, name)
    cols = ", ".join(f"{quote_identifier(f.name)} {_pg_type(f.type)}" for f in table.schema)
    names = ", ".join(quote_identifier(n) for n in table.column_names)
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
        if replace:
            cur.execute(f"DROP TABLE IF EXISTS {rel}")
        cur.execute(f"CREATE TABLE {rel} ({cols})")
        _copy(cur, f"COPY {rel} ({names}) FROM STDIN", table)
        if ra_column is not None:
            cur.execute(f"CREATE INDEX ON {rel} ({quote_identifier(HEALPIX_COLUMN)})")
        cur.execute(f"ANALYZE {rel}")
    conn.commit()
    return int(table.num_rows)


def _copy(cur: Any, copy_sql: str, table: pa.Table) -> None:
    lists = any(pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)
                or pa.types.is_large_list(f.type) for f in table.schema)
    if lists:  # arrays have no CSV form: row by row
        with cur.copy(copy_sql) as copy:
            for batch in table.to_batches(max_chunksize=65536):
                for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                    copy.write_row(row)
        return
    # CSV written by Arrow is ~5x faster than rows from Python. Arrow quotes every
    # string, so an empty string stays one and an unquoted empty field is NULL.
    import pyarrow.csv as pacsv

    with cur.copy(copy_sql + " (FORMAT csv)") as copy:
        for batch in table.to_batches(max_chunksize=65536):
            sink = pa.BufferOutputStream()
            pacsv.write_csv(pa.Table.from_batches([batch]), sink,
                            pacsv.WriteOptions(include_header=False))
            copy.write(sink.getvalue().to_pybytes())
