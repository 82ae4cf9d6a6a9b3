"""Registering a database that lives in PostgreSQL (``taphouse db add-postgres``).

Its tables stay where they are: registration reads their columns from PostgreSQL's
catalogue (descriptions from column comments; units, UCDs and more from an optional
YAML file), records them in the taphouse catalogue as a database served by the
``postgres`` backend (:mod:`taphouse.engine.routing`), and seals the query role's
connection string with :mod:`taphouse.secrets` (never logged or shown).

Two credentials: the *setup* DSN (optional, used once, never stored) installs the
service functions in their own schema, grants the query role what it needs, revokes
``CREATE`` on ``public`` from it and builds HEALPix index columns (``--index``); the
*query* DSN is what the server uses. A query role that may do more than read is
refused, here and when the server leases its connections (:func:`role_problems`: a
superuser, a member of the server-file roles or of pg_read_all_data and the like, a
role with any privilege that writes on a table or schema of the database, owning any of
its objects, or that may call a superuser's SECURITY DEFINER function): the database
itself must enforce what the ADQL checks refuse. At lease time the TAP caller is told
only that the database is refused; the server log names what and on which objects.

The ``--meta`` YAML file::

    description: The survey's catalogues, in the archive's PostgreSQL
    tables:
      stars:
        description: Bright stars
        epoch: 2016.0
        ra: ra          # position columns (else by UCD, then by common names)
        dec: dec
        columns:
          ra: {unit: deg, ucd: pos.eq.ra;meta.main, description: Right ascension}
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from taphouse.catalogue.model import (
    HEALPIX_COLUMN,
    LEGACY_HEALPIX_COLUMN,
    CatalogueError,
    ColumnMeta,
    TableMeta,
    check_database_name,
    position_columns,
    votable_type_for_arrow,
)
from taphouse.engine.postgres import (
    FUNCTIONS_SCHEMA,
    RELATION_KEY,
    functions_sql,
    quote_identifier,
    relation_name,
)

if TYPE_CHECKING:
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.secrets import SecretStore

log = logging.getLogger("taphouse.postgres")

#: Where the sealed query DSN of a registered database is kept (taphouse.secrets).
SECRET_PREFIX = "postgres:"
#: Predefined roles a query role may not be a member of: those whose members can reach
#: the server's files or programs or write every table, and (defence in depth) those
#: that read every table, the server's settings and statistics (other sessions' queries
#: included), signal other sessions or force checkpoints (all exist in PostgreSQL 15).
DANGEROUS_ROLES = ("pg_read_server_files", "pg_write_server_files",
                   "pg_execute_server_program", "pg_write_all_data", "pg_read_all_data",
                   "pg_read_all_settings", "pg_read_all_stats", "pg_stat_scan_tables",
                   "pg_monitor", "pg_signal_backend", "pg_checkpoint")

_PG_ARROW = {
    "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "float4": pa.float32(),
    "float8": pa.float64(), "numeric": pa.float64(), "bool": pa.bool_(),
    "text": pa.string(), "varchar": pa.string(), "bpchar": pa.string(), "name": pa.string(),
    "date": pa.date32(), "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "_float8": pa.list_(pa.float64()), "_float4": pa.list_(pa.float32()),
    "_int2": pa.list_(pa.int16()), "_int4": pa.list_(pa.int32()),
    "_int8": pa.list_(pa.int64()),
}
_TABLE_KEYS = {"description", "epoch", "ra", "dec", "columns"}
_COLUMN_KEYS = {"unit", "ucd", "utype", "description", "principal", "std"}


def secret_name(database: str) -> str:
    return SECRET_PREFIX + database


@dataclass
class Registration:
    """What ``add-postgres`` registered (for the command's report)."""

    database: str
    tables: list[TableMeta] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # table -> "col (type)"
    indexed: list[str] = field(default_factory=list)


_ROLES = """me AS (  -- the role and every role it is a member of (SET ROLE reaches them)
  SELECT r.oid, r.rolname::text AS rolname, r.rolname = current_user AS self,
         r.rolsuper, r.rolcreaterole OR r.rolcreatedb AS creates, r.rolbypassrls,
         pg_has_role(current_user, r.oid, 'USAGE') AS inherited
  FROM pg_roles r WHERE pg_has_role(current_user, r.oid, 'MEMBER'))"""
_ATTRIBUTES = """SELECT rolname, self, 'superuser', NULL FROM me WHERE rolsuper
  UNION ALL SELECT rolname, self, 'creates', NULL FROM me WHERE creates
  UNION ALL SELECT rolname, self, 'bypassrls', NULL FROM me WHERE rolbypassrls
  UNION ALL SELECT rolname, self, 'member', rolname FROM me WHERE rolname = ANY(%(roles)s)"""
# Privileges of the role itself (its inherited ones and PUBLIC's included) and of the
# roles it may SET ROLE to without inheriting from them. Relations: those created in
# this database (oid >= 16384), and the system ones whose ACL names one of the roles
# (PostgreSQL refuses writes to its catalogues whatever their ACL says; UPDATE on the
# view pg_settings is SET, which any role may do). Temporary tables (the role's own,
# of this or another session) are allowed.
_WRITES = """who AS (SELECT oid, rolname, self FROM me WHERE self OR NOT inherited),
db AS (SELECT oid, datname FROM pg_database WHERE datname = current_database()),
rel AS (
  SELECT c.oid, c.relkind, n.nspname, c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid >= 16384 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND c.relpersistence <> 't'
  UNION ALL SELECT c.oid, c.relkind, n.nspname, c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid < 16384 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND NOT (n.nspname = 'pg_catalog' AND c.relname = 'pg_settings')
  AND c.oid IN (SELECT d.objid FROM pg_shdepend d JOIN me ON me.oid = d.refobjid, db
    WHERE d.refclassid = 'pg_authid'::regclass AND d.classid = 'pg_class'::regclass
    AND d.deptype = 'a' AND d.dbid = db.oid)),
priv(name, ord) AS (VALUES ('INSERT', 1), ('UPDATE', 2), ('DELETE', 3), ('TRUNCATE', 4),
  ('REFERENCES', 5), ('TRIGGER', 6)),
writes(rolname, self, what, object) AS (
  SELECT who.rolname, who.self, 'CREATE', format('database %%I', db.datname)
    FROM who, db WHERE has_database_privilege(who.oid, db.oid, 'CREATE')
  UNION ALL SELECT who.rolname, who.self, 'CREATE', format('schema %%I', n.nspname)
    FROM who, pg_namespace n WHERE n.nspname !~ '^pg_(toast_)?temp_'
    AND has_schema_privilege(who.oid, n.oid, 'CREATE')
  UNION ALL SELECT me.rolname, me.self, 'owns', o.type || ' ' || o.identity
    FROM pg_shdepend d JOIN me ON me.oid = d.refobjid, db,
    pg_identify_object(d.classid, d.objid, 0) o
    WHERE d.refclassid = 'pg_authid'::regclass AND d.deptype = 'o'
    AND (d.dbid = db.oid OR (d.classid = 'pg_database'::regclass AND d.objid = db.oid))
    AND NOT EXISTS (SELECT FROM pg_class t WHERE d.classid = 'pg_class'::regclass
                    AND t.oid = d.objid AND t.relpersistence = 't')
  UNION ALL SELECT who.rolname, who.self, string_agg(p.name, ', ' ORDER BY p.ord),
      format('%%s %%I.%%I', CASE rel.relkind WHEN 'v' THEN 'view'
        WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' ELSE 'table' END,
        rel.nspname, rel.relname)
    FROM who, rel, priv p WHERE rel.relkind <> 'S'
    AND has_table_privilege(who.oid, rel.oid, p.name)
    GROUP BY who.rolname, who.self, rel.relkind, rel.nspname, rel.relname
  UNION ALL SELECT who.rolname, who.self, string_agg(p.name, ', ' ORDER BY p.ord),
      format('column %%I of %%I.%%I', a.attname, rel.nspname, rel.relname)
    FROM who, rel JOIN pg_attribute a ON a.attrelid = rel.oid, priv p
    WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
    AND p.name IN ('INSERT', 'UPDATE', 'REFERENCES')
    AND NOT has_table_privilege(who.oid, rel.oid, p.name)
    AND has_column_privilege(who.oid, rel.oid, a.attnum, p.name)
    GROUP BY who.rolname, who.self, a.attname, rel.nspname, rel.relname
  UNION ALL SELECT who.rolname, who.self, string_agg(p.name, ', ' ORDER BY p.name DESC),
      format('sequence %%I.%%I', rel.nspname, rel.relname)
    FROM who, rel, (VALUES ('USAGE'), ('UPDATE')) p(name) WHERE rel.relkind = 'S'
    AND has_sequence_privilege(who.oid, rel.oid, p.name)
    GROUP BY who.rolname, who.self, rel.nspname, rel.relname
  UNION ALL SELECT who.rolname, who.self, 'EXECUTE',
      format('function %%I.%%I(%%s), SECURITY DEFINER of superuser %%I', n.nspname,
             f.proname, pg_get_function_identity_arguments(f.oid), o.rolname)
    FROM who, pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace
    JOIN pg_roles o ON o.oid = f.proowner
    WHERE f.prosecdef AND o.rolsuper
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND has_schema_privilege(who.oid, n.oid, 'USAGE')
    AND has_function_privilege(who.oid, f.oid, 'EXECUTE'))"""
_ROLE_SQL = (f"WITH {_ROLES}, problem(rolname, self, what, object) AS ({_ATTRIBUTES})"
             " SELECT current_user::text, NULL, NULL, NULL, NULL"
             " UNION ALL (SELECT NULL, * FROM problem LIMIT %(limit)s)")
_ROLE_WRITES_SQL = (f"WITH {_ROLES}, {_WRITES}, problem(rolname, self, what, object) AS"
                    f" ({_ATTRIBUTES} UNION ALL SELECT * FROM writes)"
                    " SELECT current_user::text, NULL, NULL, NULL, NULL"
                    " UNION ALL (SELECT NULL, * FROM problem LIMIT %(limit)s)")
#: Most problems one check returns (the rest are counted as "more").
_PROBLEMS_SHOWN = 8


def role_problems(conn: Any, *, writes: bool = True) -> tuple[str, list[str]]:
    """``(role, what it may do beyond reading)`` of the connection's role, in one query.

    Always: superuser, CREATEROLE / CREATEDB, BYPASSRLS, a member of one of
    :data:`DANGEROUS_ROLES` (also through the roles it is a member of). With
    ``writes``: INSERT / UPDATE / DELETE / TRUNCATE / REFERENCES / TRIGGER on any table,
    view or column, USAGE / UPDATE on a sequence, CREATE on the database or any
    schema, owning any object of the database (an owner may ALTER or DROP it), and
    EXECUTE on a ``SECURITY DEFINER`` function of a superuser (it runs as the
    superuser) outside ``pg_catalog`` / ``information_schema`` in a schema it may use —
    its own, PUBLIC's, or of a role it is a member of. TEMPORARY is allowed: per-request
    tables are copied in as temporary tables. Each problem names the privilege and the
    object. The query connections' pool runs it on leases
    (:class:`taphouse.engine.postgres.PostgresBackend`: a role changed after
    registration is refused)."""
    rows = conn.execute(_ROLE_WRITES_SQL if writes else _ROLE_SQL,
                        {"roles": list(DANGEROUS_ROLES), "limit": _PROBLEMS_SHOWN + 1},
                        prepare=True).fetchall()
    problems = [_problem(*row[1:]) for row in rows[1:]]
    if len(problems) > _PROBLEMS_SHOWN:
        problems[_PROBLEMS_SHOWN:] = ["and more"]
    return str(rows[0][0]), problems


def _problem(role: str, self: bool, what: str, obj: str | None) -> str:
    who = "it" if self else f"role {role}, of which it is a member,"
    if what == "superuser":
        return f"{who} is a superuser"
    if what == "creates":
        return f"{who} may create roles or databases"
    if what == "bypassrls":
        return f"{who} bypasses row-level security"
    if what == "member":
        return f"it is a member of {obj}"
    if what == "owns":
        return f"{who} owns {obj} (may ALTER or DROP it)"
    return f"{who} has {what} on {obj}"


def check_query_role(conn: Any) -> None:
    """Refuse a query role that could do more than read (:func:`role_problems`)."""
    user, problems = role_problems(conn)
    if problems:
        raise CatalogueError(
            f"the query role {user!r} may do more than read: {'; '.join(problems)}. Give a"
            " role that may only SELECT the registered schema and EXECUTE the service"
            " functions, owning nothing (--setup-dsn revokes CREATE on public and grants"
            " the rest)")


def install_service_functions(setup: Any, query_role: str,
                              schema: str = FUNCTIONS_SCHEMA) -> None:
    """With the setup role: the service functions in ``schema`` (created if needed),
    each with a fixed ``search_path``; EXECUTE and USAGE for ``query_role``, which also
    gets TEMPORARY on the database and loses CREATE on ``public``."""
    q = quote_identifier(schema)
    role = quote_identifier(query_role)
    with setup.transaction():
        setup.execute(f"CREATE SCHEMA IF NOT EXISTS {q}")
        setup.execute(f"SET LOCAL search_path TO {q}")
        setup.execute(functions_sql())
        # a fixed search_path for each PL/pgSQL function, whoever calls it (plain SQL
        # functions stay without one, so PostgreSQL can inline them into queries;
        # measured: the 10k x 300k crossmatch ~6-10 % slower with it, cones unchanged)
        for (proc,) in setup.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n"
                " ON n.oid=p.pronamespace JOIN pg_language l ON l.oid=p.prolang"
                " WHERE n.nspname=%s AND l.lanname='plpgsql'", (schema,)).fetchall():
            setup.execute(f"ALTER FUNCTION {proc} SET search_path = {q}, pg_catalog,"
                          " pg_temp")
        setup.execute(f"REVOKE CREATE ON SCHEMA {q} FROM PUBLIC")
        setup.execute(f"GRANT USAGE ON SCHEMA {q} TO {role}")
        setup.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {q} TO {role}")
        setup.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
        dbname = setup.execute("SELECT current_database()").fetchone()[0]
        setup.execute(f"GRANT TEMPORARY ON DATABASE {quote_identifier(dbname)} TO {role}")


def _functions_present(conn: Any, schema: str = FUNCTIONS_SCHEMA) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid=p.pronamespace"
        " WHERE n.nspname=%s AND p.proname IN ('ivo_healpix_index','taphouse_contains')"
        " AND has_function_privilege(current_user, p.oid, 'EXECUTE')",
        (schema,)).fetchone()
    return bool(row and row[0] >= 2)


def read_tables(conn: Any, schema: str) -> dict[str, list[tuple[str, str, str | None]]]:
    """Tables and views of ``schema`` the role may SELECT: name -> [(column, type
    name, comment)] in column order."""
    rows = conn.execute(
        "SELECT c.relname, a.attname, t.typname, col_description(c.oid, a.attnum)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid=c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " JOIN pg_type t ON t.oid=a.atttypid"
        " WHERE n.nspname=%s AND c.relkind IN ('r','p','v','m','f')"
        " AND has_table_privilege(current_user, c.oid, 'SELECT')"
        " ORDER BY c.relname, a.attnum", (schema,)).fetchall()
    out: dict[str, list[tuple[str, str, str | None]]] = {}
    for rel, col, typ, comment in rows:
        out.setdefault(rel, []).append((col, typ, comment))
    return out


def _table_comments(conn: Any, schema: str) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute(
        "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c"
        " JOIN pg_namespace n ON n.oid=c.relnamespace WHERE n.nspname=%s"
        " AND obj_description(c.oid, 'pg_class') IS NOT NULL", (schema,)).fetchall()}


def load_meta(path: Path | None) -> dict[str, Any]:
    """The ``--meta`` YAML file (see the module docstring), checked."""
    if path is None:
        return {}
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read metadata file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or set(doc) - {"description", "tables"}:
        raise CatalogueError(f"{path}: expected the keys 'description' and 'tables'")
    tables = doc.get("tables") or {}
    if not isinstance(tables, dict):
        raise CatalogueError(f"{path}: 'tables' must map table names to settings")
    for tname, tset in tables.items():
        if not isinstance(tset, dict) or set(tset) - _TABLE_KEYS:
            raise CatalogueError(f"{path}: table {tname!r}: allowed keys are"
                                 f" {sorted(_TABLE_KEYS)}")
        for cname, cset in (tset.get("columns") or {}).items():
            if not isinstance(cset, dict) or set(cset) - _COLUMN_KEYS:
                raise CatalogueError(f"{path}: table {tname!r} column {cname!r}: allowed"
                                     f" keys are {sorted(_COLUMN_KEYS)}")
    return doc


def column_metas(columns: list[tuple[str, str, str | None]], settings: dict[str, Any]
                 ) -> tuple[list[ColumnMeta], list[str], str | None]:
    """(columns, skipped "name (type)", the HEALPix index column if present)."""
    from taphouse.catalogue.units import check_unit

    given = {str(k).lower(): v for k, v in (settings.get("columns") or {}).items()}
    out, skipped, healpix = [], [], None
    for name, typ, comment in columns:
        lname = name.lower()
        if lname in (HEALPIX_COLUMN, LEGACY_HEALPIX_COLUMN) and typ == "int8":
            healpix = name
            continue
        arrow = _PG_ARROW.get(typ)
        if arrow is None or name != lname or not lname.replace("_", "a").isalnum():
            why = typ if arrow is None else "a name ADQL cannot write unquoted"
            skipped.append(f"{name} ({why.lstrip('_') + '[]' if why.startswith('_') else why})")
            continue
        datatype, arraysize, xtype = votable_type_for_arrow(arrow)
        extra = given.get(lname, {})
        unit = extra.get("unit")
        if unit is not None:
            check = check_unit(str(unit))
            if not check.valid:
                raise CatalogueError(f"column {name!r}: bad unit {unit!r}: {check.problem}")
            unit = check.unit
        out.append(ColumnMeta(
            name=lname, datatype=datatype, arraysize=arraysize, xtype=xtype, unit=unit,
            ucd=extra.get("ucd"), utype=extra.get("utype"),
            description=extra.get("description") or comment,
            principal=bool(extra.get("principal", False)), std=bool(extra.get("std", False))))
    return out, skipped, healpix


def build_index(setup: Any, schema: str, table: str, ra: str, dec: str) -> str:
    """With the setup role: add and fill the HEALPix index column (nested, order 29)
    of ``schema.table`` from its positions, with a B-tree index; returns its name."""
    rel = relation_name(schema, table)
    col = quote_identifier(HEALPIX_COLUMN)
    fn = f"{quote_identifier(FUNCTIONS_SCHEMA)}.ivo_healpix_index"
    with setup.transaction():
        setup.execute(f"ALTER TABLE {rel} ADD COLUMN IF NOT EXISTS {col} bigint")
        setup.execute(f"UPDATE {rel} SET {col} = {fn}(29, {quote_identifier(ra)},"
                      f" {quote_identifier(dec)})")
        setup.execute(f"CREATE INDEX IF NOT EXISTS {quote_identifier(table + '_hpx29')}"
                      f" ON {rel} ({col})")
    setup.execute(f"ANALYZE {rel}")
    return HEALPIX_COLUMN


def register_postgres(store: CatalogueStore, secrets: SecretStore, name: str,
                      dsn: str | None, schema: str, *,
                      meta_file: Path | None = None, setup_dsn: str | None = None,
                      index: bool = False, replace: bool = False,
                      connection: str | None = None) -> Registration:
    """Register the tables of PostgreSQL ``schema`` as taphouse database ``name``.

    ``connection`` names the connection config (default: ``name``): databases that
    share one (several schemas of one PostgreSQL database, same query role) are served
    by one backend, so a query may join their tables. Without ``dsn``, the stored DSN
    of an existing ``connection`` is used.

    Raises :class:`CatalogueError` (a message without the DSN) for a role that may do
    more than read, missing service functions without ``setup_dsn``, an empty schema,
    or a database name already taken (unless ``replace``).
    """
    import psycopg

    dbname = check_database_name(name)
    conn_name = check_database_name(connection) if connection else dbname
    if dsn is None:
        stored = secrets.get(secret_name(conn_name))
        if stored is None:
            raise CatalogueError(f"no connection {conn_name!r} is stored: give --dsn")
        dsn = stored.reveal()
    existing = store.database(dbname)
    if existing is not None and not replace:
        raise CatalogueError(f"database {dbname!r} already exists (give --replace to"
                             " register it again)")
    if index and setup_dsn is None:
        raise CatalogueError("--index builds HEALPix index columns, which needs a role"
                             " that may alter the tables: give --setup-dsn")
    meta = load_meta(meta_file)
    result = Registration(database=dbname)
    try:
        conn: Any = psycopg.connect(dsn, autocommit=True, connect_timeout=30,
                               application_name="taphouse-register")
    except psycopg.Error as exc:
        raise CatalogueError(f"cannot connect with the query DSN: {_safe(exc, dsn)}") from None
    try:
        query_role = conn.execute("SELECT current_user").fetchone()[0]
        if setup_dsn is not None:
            try:
                setup: Any = psycopg.connect(setup_dsn, autocommit=True, connect_timeout=30,
                                        application_name="taphouse-setup")
            except psycopg.Error as exc:
                raise CatalogueError(
                    f"cannot connect with the setup DSN: {_safe(exc, setup_dsn)}") from None
            try:
                install_service_functions(setup, query_role)
                if index:
                    _index_tables(setup, conn, schema, meta, result)
            finally:
                setup.close()
        check_query_role(conn)
        if not _functions_present(conn):
            raise CatalogueError(
                f"the service functions are not installed in schema {FUNCTIONS_SCHEMA!r}"
                " (or the query role may not execute them): give --setup-dsn with a role"
                " that may create them")
        # an empty schema is fine: `taphouse ingest --backend postgres` fills it
        tables = read_tables(conn, schema)
        exists = conn.execute("SELECT has_schema_privilege(current_user, n.oid, 'USAGE')"
                              " FROM pg_namespace n WHERE nspname=%s", (schema,)).fetchone()
        if not exists or not exists[0]:
            raise CatalogueError(f"schema {schema!r} does not exist or the query role may"
                                 " not use it (GRANT USAGE ON SCHEMA ... TO the role)")
        comments = _table_comments(conn, schema)
        metas = _table_metas(conn, dbname, schema, tables, comments, meta, result)
    finally:
        conn.close()
    secrets.put(secret_name(conn_name), dsn)
    store.create_database(dbname, str(meta.get("description") or comments_db(schema)))
    store.set_backend(dbname, "postgres", conn_name)
    for t in metas:
        path = store.new_version_path(dbname, t.name, ".pg")
        _relation_file(path, schema, t.extra[RELATION_KEY][1])
        result.tables.append(store.publish(t, path, replace=True))
    for old in store.tables(dbname):
        if old.name not in {t.name for t in metas}:
            store.drop_table(dbname, old.name)
    for table, cols in result.skipped.items():
        log.warning("%s.%s: columns of types taphouse cannot serve were skipped: %s",
                    dbname, table, ", ".join(cols))
    return result


def comments_db(schema: str) -> str:
    return f"tables of the PostgreSQL schema {schema}"


def _index_tables(setup: Any, conn: Any, schema: str, meta: dict[str, Any],
                  result: Registration) -> None:
    for tname, cols in read_tables(setup, schema).items():
        names = {c[0] for c in cols}
        if HEALPIX_COLUMN in names or LEGACY_HEALPIX_COLUMN in names:
            continue
        columns, _, _ = column_metas(cols, (meta.get("tables") or {}).get(tname, {}))
        ra, dec = _pair(columns, (meta.get("tables") or {}).get(tname, {}))
        if ra and dec:
            build_index(setup, schema, tname, ra, dec)
            result.indexed.append(tname)


def _pair(columns: list[ColumnMeta], settings: dict[str, Any]) -> tuple[str | None, str | None]:
    ra, dec = settings.get("ra"), settings.get("dec")
    if ra and dec:
        names = {c.name for c in columns}
        for c in (ra, dec):
            if str(c).lower() not in names:
                raise CatalogueError(f"position column {c!r} is not a column of the table")
        return str(ra).lower(), str(dec).lower()
    return position_columns(columns)


def _table_metas(conn: Any, dbname: str, schema: str,
                 tables: dict[str, list[tuple[str, str, str | None]]],
                 comments: dict[str, str], meta: dict[str, Any],
                 result: Registration) -> list[TableMeta]:
    from taphouse.catalogue.model import check_name

    settings_all = meta.get("tables") or {}
    unknown = set(settings_all) - set(tables)
    if unknown:
        raise CatalogueError(f"the metadata file names table(s) not in schema {schema!r}:"
                             f" {', '.join(sorted(unknown))}")
    out = []
    for tname, cols in tables.items():
        try:
            lname = check_name(tname, "table")
        except CatalogueError:
            result.skipped.setdefault(tname, []).append("(the table: name not usable in ADQL)")
            continue
        settings = settings_all.get(tname, {})
        columns, skipped, healpix = column_metas(cols, settings)
        if skipped:
            result.skipped[tname] = skipped
        if not columns:
            continue
        ra, dec = _pair(columns, settings)
        rows = conn.execute("SELECT reltuples::bigint FROM pg_class c JOIN pg_namespace n"
                            " ON n.oid=c.relnamespace WHERE n.nspname=%s AND c.relname=%s",
                            (schema, tname)).fetchone()
        nrows = int(rows[0]) if rows and rows[0] is not None and rows[0] >= 0 else 0
        if nrows == 0:
            nrows = int(conn.execute(f"SELECT count(*) FROM {relation_name(schema, tname)}"
                                     ).fetchone()[0])
        epoch = settings.get("epoch")
        table = TableMeta(
            database=dbname, name=lname, columns=columns,
            description=str(settings.get("description") or comments.get(tname) or ""),
            ra_column=ra, dec_column=dec,
            healpix_column=healpix if (healpix and ra and dec) else None,
            epoch=float(epoch) if epoch is not None else None, nrows=nrows,
            extra={RELATION_KEY: [schema, tname]})
        out.append(dataclasses.replace(table))
    return out


def _relation_file(path: Path, schema: str, table: str) -> None:
    """The version "file" of a PostgreSQL table: its relation (private, like every file
    of the data directory; no credentials)."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({RELATION_KEY: [schema, table]}))


#: libpq connection options (quoted by its messages: "for connection option "port"").
_OPTIONS = frozenset({"host", "hostaddr", "port", "user", "dbname", "password", "passfile",
                      "sslmode", "options", "application_name", "connect_timeout",
                      "target_session_attrs", "sslcert", "sslkey", "sslrootcert", "="})


def _safe(exc: BaseException, dsn: str) -> str:
    """A connection error without the DSN's secrets (first line only). libpq quotes the
    part of a connection string it cannot parse, which for a URI can be all of it,
    password included: a quoted fragment taken from ``dsn`` is shown only when it is the
    host, port, user or database name, or an option's name."""
    from psycopg.conninfo import conninfo_to_dict

    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    try:
        parts = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except Exception:  # noqa: BLE001  (the DSN does not parse: nothing of it is shown)
        parts = {}
    shown = {parts[k] for k in ("host", "hostaddr", "port", "user", "dbname") if k in parts}

    def quoted(m: re.Match[str]) -> str:
        value = m.group(1)
        if value in shown or value in _OPTIONS or value not in dsn:
            return m.group(0)
        return '"…"'

    first = re.sub(r'"([^"]*)"', quoted, first)
    password = parts.get("password")
    if password:
        first = first.replace(password, "…")
    return re.sub(r"(password\s*=\s*)\S+", r"\1…", first)


def ingest_postgres(store: CatalogueStore, secrets: SecretStore, files: list[Path],
                    database: str, table: str,
                    *, schema: str, setup_dsn: str, replace: bool = False,
                    work_dir: Path, **options: Any) -> TableMeta:
    """``taphouse ingest --backend postgres``: load table files into ``schema.table`` of
    the PostgreSQL database that serves taphouse database ``database`` (registered with
    ``add-postgres``), with the HEALPix index column (COPY from Arrow, rows in index
    order, B-tree index), grant the query role SELECT on it, and publish it.

    The files are read and checked exactly as a DuckDB ingest reads them (units, UCDs,
    positions, epoch; ``options`` are :func:`taphouse.catalogue.ingest.ingest_files`'s),
    staged in ``work_dir``. ``setup_dsn`` is a role that may create tables in ``schema``;
    it is used once, never stored.
    """
    import psycopg

    from taphouse.catalogue.ingest import ingest_files
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.engine.duckdb import DuckDBEngine
    from taphouse.engine.postgres import load_table
    from taphouse.metadata import MetadataDB

    db = store.database(database)
    if db is None or db.backend != "postgres" or not db.backend_ref:
        raise CatalogueError(f"{database!r} is not a database served by PostgreSQL:"
                             " register it first with `taphouse db add-postgres`")
    tname = table.lower()
    if store.table(db.name, tname) is not None and not replace:
        raise CatalogueError(f"table {db.name}.{tname} already exists: give --replace")
    sealed = secrets.get(secret_name(db.backend_ref))
    if sealed is None:
        raise CatalogueError(f"no connection is stored for {db.name}: register it again")
    # staged as a DuckDB version first: the same reading and checks as any ingest
    meta = MetadataDB(work_dir / "stage.sqlite")
    try:
        stage = CatalogueStore(meta, work_dir / "tables")
        staged = ingest_files(stage, files, db.name, tname, work_dir=work_dir, **options)
        engine = DuckDBEngine(stage.tables_dir)
        with engine.cursor() as cur:
            arrow = cur.sql(f"SELECT * FROM {engine.relation(staged)}").to_arrow_table()
    finally:
        meta.close()
    try:
        query: Any = psycopg.connect(sealed.reveal(), autocommit=True, connect_timeout=30)
        try:
            reader = str(query.execute("SELECT current_user").fetchone()[0])
        finally:
            query.close()
        setup: Any = psycopg.connect(setup_dsn, autocommit=True, connect_timeout=30,
                                     application_name="taphouse-ingest")
    except psycopg.Error as exc:
        raise CatalogueError(f"cannot connect to PostgreSQL: {_safe(exc, setup_dsn)}") from None
    try:
        rows = load_table(setup, schema, tname, arrow, ra_column=staged.ra_column,
                          dec_column=staged.dec_column, replace=replace)
        setup.execute(f"GRANT USAGE ON SCHEMA {quote_identifier(schema)}"
                      f" TO {quote_identifier(reader)}")
        setup.execute(f"GRANT SELECT ON {relation_name(schema, tname)}"
                      f" TO {quote_identifier(reader)}")
    except psycopg.Error as exc:
        raise CatalogueError(f"loading into PostgreSQL failed: {_safe(exc, setup_dsn)}") from None
    finally:
        setup.close()
    published = dataclasses.replace(
        staged, database=db.name, nrows=rows, path=None, version_id=None, table_id=None,
        healpix_column=HEALPIX_COLUMN if staged.ra_column else None,
        extra={**staged.extra, RELATION_KEY: [schema, tname]},
        backend="postgres", backend_ref=db.backend_ref)
    path = store.new_version_path(db.name, tname, ".pg")
    _relation_file(path, schema, tname)
    return store.publish(published, path, replace=True)  # type: ignore[no-any-return]
