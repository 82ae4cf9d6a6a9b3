"""Catalogue sub-commands: ``ingest``, ``drop``, ``versions``, ``rollback``, ``databases``,
``tables``, ``demo synth|load``.

Each handler gets the parsed ``args`` with ``args.settings`` set by the main CLI and
returns the exit status. A :class:`CatalogueError` prints one line
``taphouse: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from taphouse.catalogue.model import CatalogueError

if TYPE_CHECKING:
    from taphouse.catalogue.hats import PartitionOptions
    from taphouse.catalogue.model import DatabaseMeta
    from taphouse.catalogue.store import CatalogueStore


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the catalogue sub-commands to the ``taphouse`` parser."""
    p = subparsers.add_parser(
        "ingest", help="ingest table files as a catalogue table",
        description="Ingest Parquet, FITS, VOTable or CSV/ECSV files (same columns) as one "
                    "catalogue table. An existing table is left alone unless --replace (a new "
                    "version, switched atomically) or --append (its rows plus the files') is "
                    "given; the previous version is kept for `taphouse rollback`.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE",
                   help="table files, or directories of them")
    p.add_argument("--database", "-d", required=True, help="database (ADQL schema)")
    p.add_argument("--table", "-t", required=True, help="table name")
    p.add_argument("--ra", help="RA column (default: from UCDs or common names)")
    p.add_argument("--dec", help="Dec column (default: from UCDs or common names)")
    p.add_argument("--meta", type=Path, metavar="META.yaml",
                   help="YAML file with the table description, epoch and column metadata")
    p.add_argument("--description", help="table description")
    p.add_argument("--epoch", metavar="YEAR",
                   help="Julian year of the positions, e.g. 2016.0 or J2016.0 (overrides "
                        "the metadata file)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit (default 1GB)")
    p.add_argument("--allow-bad-units", action="store_true",
                   help="keep units that are not valid VOUnits as given (flagged) instead "
                        "of refusing the file")
    part = p.add_argument_group(
        "partitioned (HATS) layout",
        "HEALPix-partitioned Parquet with a margin catalogue, readable by LSDB and hats;"
        " a cone reads only the partitions it touches (for tables of many millions of rows)")
    part.add_argument("--partitioned", action="store_true",
                      help="write the table in the HATS layout instead of one file")
    part.add_argument("--partition-rows", type=int, default=None, metavar="N",
                      help="most rows per partition (default 1,000,000)")
    part.add_argument("--highest-order", type=int, default=None, metavar="K",
                      help="deepest HEALPix order of a partition (default 10)")
    part.add_argument("--margin", type=float, default=None, metavar="ARCSEC",
                      help="margin catalogue threshold in arcsec (default 10)")
    part.add_argument("--duckdb-copy", action="store_true", default=None,
                      help="also keep the rows as one DuckDB file in the version, which"
                           " DuckDB then reads (cones as fast as a single-file table;"
                           " about twice the disk); LSDB, hats and Spark read the Parquet")
    pg = p.add_argument_group(
        "PostgreSQL ([postgres])",
        "load the files into a database served by PostgreSQL (taphouse db add-postgres)"
        " instead of a DuckDB version file: COPY with the HEALPix index column")
    pg.add_argument("--backend", choices=("duckdb", "postgres", "spark"), default="duckdb",
                    help="where the table goes (default duckdb; spark: a version file"
                         " like duckdb's, and the database is served by the server's"
                         " --spark-master cluster from now on: best with --partitioned)")
    pg.add_argument("--pg-schema", metavar="SCHEMA", help="PostgreSQL schema of the table")
    pg.add_argument("--setup-dsn-env", metavar="VAR",
                    help="environment variable holding a DSN that may create the table"
                         " (used once, never stored)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--replace", action="store_const", dest="if_exists",
                          const="replace", help="replace an existing table (new version;"
                          " its description stays unless a new one is given)")
    existing.add_argument("--append", action="store_const", dest="if_exists", const="append",
                          help="add the rows to an existing table (same columns and types)")
    p.set_defaults(handler=_handler(_ingest), if_exists="refuse")

    p = subparsers.add_parser(
        "drop", help="drop a catalogue table or a whole database",
        description="Drop DATABASE.TABLE, or DATABASE with all its tables. A dropped table "
                    "cannot be rolled back (only replaced versions are retained): make a "
                    "`taphouse backup` first if you may want it again. Needs --yes.")
    p.add_argument("name", metavar="DATABASE[.TABLE]")
    p.add_argument("--yes", action="store_true", help="really drop it")
    p.set_defaults(handler=_handler(_drop))

    p = subparsers.add_parser(
        "versions", help="list the current and retained versions of a table",
        description="The current version of DATABASE.TABLE and the earlier ones still "
                    "kept (TAPHOUSE_VERSION_RETENTION), newest first, with the time each "
                    "may be deleted.")
    p.add_argument("name", metavar="DATABASE.TABLE")
    p.set_defaults(handler=_handler(_versions))

    p = subparsers.add_parser(
        "rollback", help="make a retained earlier version of a table current again",
        description="Bring back the version before the current one (or --to ID from "
                    "`taphouse versions`). The current version is retained in its turn, so "
                    "a rollback can itself be rolled back.")
    p.add_argument("name", metavar="DATABASE.TABLE")
    p.add_argument("--to", type=int, default=None, metavar="VERSION",
                   help="the version id (default: the newest retained one)")
    p.set_defaults(handler=_handler(_rollback))

    p = subparsers.add_parser("databases", help="list the catalogue databases")
    p.set_defaults(handler=_handler(_databases))

    p = subparsers.add_parser("tables", help="list the tables of a database")
    p.add_argument("database")
    p.set_defaults(handler=_handler(_tables))

    demo = subparsers.add_parser("demo", help="demo data: load it, or write a synthetic file")
    demo_sub = demo.add_subparsers(dest="demo_command", metavar="{synth,load}")
    demo_sub.required = True
    p = demo_sub.add_parser("synth", help="write a synthetic Gaia-like Parquet file")
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, metavar="FILE.parquet")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(handler=_handler(_synth), store_access="none")
    p = demo_sub.add_parser("load", help="load the demo databases gaia and hipparcos")
    p.add_argument("--force", action="store_true", help="reload tables already present")
    p.set_defaults(handler=_handler(_load))


def _handler(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except CatalogueError as exc:
            print(f"taphouse: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    return run


def _store(args: argparse.Namespace) -> CatalogueStore:
    from taphouse.catalogue.store import CatalogueStore, Retention
    from taphouse.metadata import MetadataDB

    settings = args.settings
    retention = Retention(grace=settings.maintenance_grace,
                          catalogue=settings.version_retention,
                          user=settings.user_version_retention)
    return CatalogueStore(MetadataDB(settings.meta_path), settings.tables_dir,
                          retention=retention)


def _table_name(text: str) -> tuple[str, str]:
    db, dot, table = text.partition(".")
    if not dot or not db or not table:
        raise CatalogueError(f"give the table as DATABASE.TABLE, not {text!r}")
    return db.lower(), table.lower()


def _catalogue_database(store: CatalogueStore, name: str) -> DatabaseMeta:
    db = store.database(name)
    if db is None:
        raise CatalogueError(f"unknown database {name!r}; see 'taphouse databases'")
    if db.kind != "catalogue":
        raise CatalogueError(f"{name} is a user schema ({db.kind}), not a catalogue database:"
                             " users manage their own tables (taphouse user delete removes"
                             " them all)")
    return db


def _drop(args: argparse.Namespace) -> int:
    store = _store(args)
    db_name, dot, table = args.name.partition(".")
    db = _catalogue_database(store, db_name.lower())
    if dot:
        t = store.table(db.name, table)
        if t is None:
            raise CatalogueError(f"unknown table {args.name!r}; see 'taphouse tables {db.name}'")
        what = f"table {t.qualified_name} ({t.nrows:,} rows)"
    else:
        tables = store.tables(db.name)
        what = (f"database {db.name} with {len(tables)} tables"
                f" ({sum(t.nrows for t in tables):,} rows)")
    if not args.yes:
        raise CatalogueError(f"this drops the {what}; it cannot be rolled back (make a"
                             " `taphouse backup` first if you may want it again): add --yes")
    if dot:
        store.drop_table(db.name, table)
    else:
        store.drop_database(db.name)
    _audit(args, "catalogue", f"dropped {what}")
    print(f"dropped {what}")
    return 0


def _versions(args: argparse.Namespace) -> int:
    store = _store(args)
    db, table = _table_name(args.name)
    _catalogue_database(store, db)
    print("version\tstate\trows\tbytes\tcreated\tretired\tdeletable from")
    for v in store.versions(db, table):
        state = "current" if v.current else ("retained" if v.exists else "file gone")
        print(f"{v.version_id}\t{state}\t{v.nrows}\t{v.nbytes}\t{v.created}\t"
              f"{v.retired or '-'}\t{v.expires or '-'}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    store = _store(args)
    db, table = _table_name(args.name)
    _catalogue_database(store, db)
    versions = store.versions(db, table)
    current = next((v for v in versions if v.current), None)
    if args.to is None:
        older = [v for v in versions if not v.current and v.exists]
        if current is not None:
            older = [v for v in older if v.version_id < current.version_id] or older
        if not older:
            raise CatalogueError(f"{db}.{table} has no retained earlier version (versions"
                                 " are kept for TAPHOUSE_VERSION_RETENTION after they are"
                                 " replaced)")
        target = older[0].version_id
    else:
        target = args.to
    restored = store.restore_version(db, table, target)
    was = f" (version {current.version_id} is retained in its turn)" if current else ""
    _audit(args, "catalogue", f"{db}.{table} rolled back to version {target}{was}")
    print(f"{restored.qualified_name}: version {target} is current again, "
          f"{restored.nrows:,} rows{was}")
    return 0


def _audit(args: argparse.Namespace, event: str, detail: str) -> None:
    """An operator's change to the catalogue, in the audit log (who: the shell user)."""
    import getpass

    from taphouse.auth.audit import AuditLog
    from taphouse.metadata import MetadataDB

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid())
    AuditLog(MetadataDB(args.settings.meta_path)).record(
        event, username=f"cli:{who}", detail=detail)


def _ingest(args: argparse.Namespace) -> int:
    from taphouse.catalogue.ingest import ingest_files

    if getattr(args, "backend", "duckdb") == "postgres":
        return _ingest_postgres(args)
    table = ingest_files(_store(args), args.files, args.database, args.table, ra=args.ra,
                         dec=args.dec, meta_file=args.meta, description=args.description,
                         progress=not args.quiet, engine_memory_limit=args.memory_limit,
                         allow_bad_units=args.allow_bad_units, epoch=args.epoch,
                         partitioned=_partition_options(args), if_exists=args.if_exists)
    if args.backend == "spark":  # [spark] the database is served by Spark from now on
        _store(args).set_backend(args.database, args.backend)
        _audit(args, "catalogue", f"database {args.database} served by {args.backend}")
    if args.if_exists != "refuse":
        done = {"replace": "replaced", "append": "appended to"}[args.if_exists]
        _audit(args, "catalogue", f"{table.qualified_name} {done} by ingest:"
               f" {table.nrows} rows, version {table.version_id}")
    where = (f", positions {table.ra_column}/{table.dec_column}" if table.ra_column
             else ", no positions")
    if args.partitioned:
        from taphouse.catalogue.hats import partitions

        where += f", {len(partitions(table.path).files)} partitions (HATS layout)"
        if args.duckdb_copy:
            where += " and a DuckDB copy"
    print(f"{table.qualified_name}: {table.nrows:,} rows, {len(table.columns)} columns{where}")
    if table.ra_column and table.epoch is None:
        print(f"warning: the positions of {table.qualified_name} have no epoch, so results "
              "cannot say when they hold; give it with --epoch (e.g. J2016.0) or 'epoch:' "
              "in the metadata file", file=sys.stderr)
    for c in table.columns:
        if c.bad_unit:
            print(f"warning: column {c.name}: unit {c.unit!r} kept as given; it is not a "
                  "valid VOUnit", file=sys.stderr)
    return 0


def _ingest_postgres(args: argparse.Namespace) -> int:
    """[postgres] ``ingest --backend postgres`` (taphouse.engine.pg_register)."""
    from taphouse.engine.pg_register import ingest_postgres
    from taphouse.secrets import SecretStore
    from taphouse.storage.datadir import TmpArea

    if args.partitioned or args.if_exists == "append":
        raise CatalogueError("--backend postgres loads whole tables: no --partitioned or"
                             " --append")
    if not args.pg_schema or not args.setup_dsn_env:
        raise CatalogueError("--backend postgres needs --pg-schema and --setup-dsn-env")
    setup = os.environ.get(args.setup_dsn_env)
    if not setup:
        raise CatalogueError(f"environment variable {args.setup_dsn_env} is not set")
    store = _store(args)
    with TmpArea(store.root / "tmp") as area:
        table = ingest_postgres(
            store, SecretStore.from_settings(store.meta, args.settings), args.files,
            args.database, args.table, schema=args.pg_schema, setup_dsn=setup,
            replace=args.if_exists == "replace", work_dir=area.path, ra=args.ra,
            dec=args.dec, meta_file=args.meta, description=args.description,
            progress=not args.quiet, engine_memory_limit=args.memory_limit,
            allow_bad_units=args.allow_bad_units, epoch=args.epoch)
    where = (f", positions {table.ra_column}/{table.dec_column}, HEALPix index"
             if table.ra_column else ", no positions")
    print(f"{table.qualified_name}: {table.nrows:,} rows, {len(table.columns)} columns"
          f"{where} (PostgreSQL {args.pg_schema}.{table.name})")
    return 0


def _partition_options(args: argparse.Namespace) -> PartitionOptions | None:
    from taphouse.catalogue.hats import PartitionOptions

    given = {"max_rows": args.partition_rows, "highest_order": args.highest_order,
             "margin_arcsec": args.margin, "duckdb_copy": args.duckdb_copy}
    if not args.partitioned:
        if any(v is not None for v in given.values()):
            raise CatalogueError("--partition-rows, --highest-order, --margin and"
                                 " --duckdb-copy need --partitioned")
        return None
    return PartitionOptions(**{k: v for k, v in given.items() if v is not None})


def _databases(args: argparse.Namespace) -> int:
    store = _store(args)
    counts: dict[str, int] = {}
    for t in store.tables():
        counts[t.database] = counts.get(t.database, 0) + 1
    for db in store.databases(kind="catalogue"):
        print(f"{db.name}\t{counts.get(db.name, 0)} tables\t{db.description}")
    return 0


def _tables(args: argparse.Namespace) -> int:
    store = _store(args)
    if store.database(args.database) is None:
        raise CatalogueError(f"unknown database {args.database!r}; "
                             "see 'taphouse databases'")
    for t in store.tables(args.database):
        epoch = f"J{t.epoch:g}" if t.epoch is not None else "-"
        print(f"{t.qualified_name}\t{t.nrows} rows\t{len(t.columns)} columns\t{epoch}\t"
              f"{t.description}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from taphouse.catalogue.synth import write_synthetic

    if args.rows < 0:
        raise CatalogueError("--rows must be 0 or more")
    try:
        write_synthetic(args.out, args.rows, seed=args.seed)
    except OSError as exc:
        raise CatalogueError(f"{args.out}: cannot write: {exc.strerror or exc}") from None
    print(f"{args.out}: {args.rows:,} synthetic rows (seed {args.seed})")
    return 0


def _load(args: argparse.Namespace) -> int:
    from taphouse.catalogue.demo import load_demo

    for t in load_demo(_store(args), force=args.force, progress=True):
        print(f"{t.qualified_name}: {t.nrows:,} rows")
    return 0
