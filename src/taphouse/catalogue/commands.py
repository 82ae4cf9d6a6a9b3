"""Catalogue sub-commands: ``ingest``, ``databases``, ``tables``, ``demo synth|load``.

Each handler gets the parsed ``args`` with ``args.settings`` set by the main CLI and
returns the exit status. A :class:`CatalogueError` prints one line
``taphouse: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path

from taphouse.catalogue.model import CatalogueError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the catalogue sub-commands to the ``taphouse`` parser."""
    p = subparsers.add_parser(
        "ingest", help="ingest table files as a catalogue table",
        description="Ingest Parquet, FITS, VOTable or CSV/ECSV files (same columns) as one "
                    "catalogue table; an existing table is replaced atomically.")
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
    p.set_defaults(handler=_handler(_ingest))

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
    p.set_defaults(handler=_handler(_synth))
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


def _store(args: argparse.Namespace):
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB

    settings = args.settings
    return CatalogueStore(MetadataDB(settings.meta_path), settings.tables_dir)


def _ingest(args: argparse.Namespace) -> int:
    from taphouse.catalogue.ingest import ingest_files

    table = ingest_files(_store(args), args.files, args.database, args.table, ra=args.ra,
                         dec=args.dec, meta_file=args.meta, description=args.description,
                         progress=not args.quiet, engine_memory_limit=args.memory_limit,
                         allow_bad_units=args.allow_bad_units, epoch=args.epoch,
                         partitioned=_partition_options(args))
    where = (f", positions {table.ra_column}/{table.dec_column}" if table.ra_column
             else ", no positions")
    if args.partitioned:
        from taphouse.catalogue.hats import partitions

        where += f", {len(partitions(table.path).files)} partitions (HATS layout)"
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


def _partition_options(args: argparse.Namespace):
    from taphouse.catalogue.hats import PartitionOptions

    given = {"max_rows": args.partition_rows, "highest_order": args.highest_order,
             "margin_arcsec": args.margin}
    if not args.partitioned:
        if any(v is not None for v in given.values()):
            raise CatalogueError("--partition-rows, --highest-order and --margin need"
                                 " --partitioned")
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
