"""``taphouse db add-postgres``: register a database that lives in PostgreSQL (see
:mod:`taphouse.engine.pg_register`). DSNs are secrets: give them through environment
variables (``--dsn-env``) rather than the command line where other users can see them;
they are never printed."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from taphouse.catalogue.model import CatalogueError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    # `taphouse db` (auth's: restrict, public, access) gets add-postgres
    db = subparsers.choices.get("db")
    if db is None:
        db = subparsers.add_parser("db", help="catalogue databases")
        db.add_subparsers(dest="db_command", required=True)
    sub = next(a for a in db._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.add_parser(
        "add-postgres", help="register the tables of a PostgreSQL schema as a database",
        description="Serve the tables of an existing PostgreSQL schema through this TAP"
                    " service without copying them. Columns come from PostgreSQL (comments"
                    " as descriptions) and the --meta YAML; columns of types taphouse cannot"
                    " serve are skipped with a warning. The query DSN is stored encrypted;"
                    " the setup DSN is used once (service functions, grants, --index).")
    p.add_argument("name", metavar="NAME", help="database name (ADQL schema) in taphouse")
    dsn = p.add_mutually_exclusive_group()
    dsn.add_argument("--dsn", help="query role's connection string (prefer --dsn-env)")
    dsn.add_argument("--dsn-env", metavar="VAR",
                     help="environment variable holding the query role's connection string")
    p.add_argument("--schema", required=True, help="PostgreSQL schema of the tables")
    p.add_argument("--meta", type=Path, metavar="META.yaml",
                   help="YAML with descriptions, units, UCDs, positions per table")
    setup = p.add_mutually_exclusive_group()
    setup.add_argument("--setup-dsn", help="setup role's connection string, used once")
    setup.add_argument("--setup-dsn-env", metavar="VAR",
                       help="environment variable holding the setup connection string")
    p.add_argument("--index", action="store_true",
                   help="add a HEALPix index column to tables with positions that have"
                        " none (needs the setup DSN)")
    p.add_argument("--connection", metavar="CONN",
                   help="connection config name (default: NAME); databases sharing one are"
                        " served together and may be joined; without --dsn, the stored"
                        " DSN of an existing CONN is used")
    p.add_argument("--replace", action="store_true", help="register an existing name again")
    p.set_defaults(handler=_add_postgres)


def _from(value: str | None, env: str | None, what: str) -> str | None:
    if env is None:
        return value
    text = os.environ.get(env)
    if not text:
        raise CatalogueError(f"environment variable {env} (the {what}) is not set")
    return text


def _add_postgres(args: argparse.Namespace) -> int:
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.engine.pg_register import register_postgres
    from taphouse.metadata import MetadataDB
    from taphouse.secrets import SecretStore

    settings = args.settings
    try:
        dsn = _from(args.dsn, args.dsn_env, "query DSN")
        setup = _from(args.setup_dsn, args.setup_dsn_env, "setup DSN")
        meta = MetadataDB(settings.meta_path)
        store = CatalogueStore(meta, settings.tables_dir)
        done = register_postgres(store, SecretStore.from_settings(meta, settings),
                                 args.name, dsn, args.schema, meta_file=args.meta,
                                 setup_dsn=setup, index=args.index, replace=args.replace,
                                 connection=args.connection)
    except CatalogueError as exc:
        print(f"taphouse: error: {exc}", file=sys.stderr)
        return 2
    for table, cols in done.skipped.items():
        print(f"warning: {done.database}.{table}: skipped column(s) of unsupported types:"
              f" {', '.join(cols)}", file=sys.stderr)
    for t in done.tables:
        pos = f", positions {t.ra_column}/{t.dec_column}" if t.ra_column else ""
        idx = ", HEALPix index" if t.healpix_column else ""
        print(f"{done.database}.{t.name}: {len(t.columns)} columns, ~{t.nrows:,} rows{pos}{idx}")
    if done.indexed:
        print(f"HEALPix index built for: {', '.join(done.indexed)}")
    print(f"registered {done.database} ({len(done.tables)} tables) on PostgreSQL;"
          " restart running servers to serve it")
    return 0
