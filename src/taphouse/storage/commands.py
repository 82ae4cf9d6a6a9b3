"""Storage sub-commands: ``migrate``, ``backup``, ``restore``.

Each handler gets the parsed ``args`` with ``args.settings`` set by the main CLI and
returns the exit status; errors (``ServiceError``) are printed by the main CLI.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the storage sub-commands to the ``taphouse`` parser."""
    p = subparsers.add_parser(
        "migrate", help="upgrade the data directory to this version of taphouse",
        description="Apply the metadata migrations this version of taphouse has and the"
                    " data directory lacks. The metadata database is copied to backups/"
                    " first. The server does this itself when it starts; other commands"
                    " refuse a data directory that needs it.")
    p.set_defaults(handler=_migrate, store_access="upgrade")

    p = subparsers.add_parser(
        "backup", help="copy the data directory, consistently, while it is in use",
        description="Copy the metadata (SQLite backup API) and exactly the table version"
                    " files it names, with SHA-256 checksums in DEST/BACKUP.json, while"
                    " servers keep running. DEST must not exist; it is itself a data"
                    " directory (serve it, or copy it back with 'taphouse restore').")
    p.add_argument("dest", type=Path, metavar="DEST")
    p.add_argument("--without-jobs", action="store_true",
                   help="leave out async jobs and their result files")
    p.set_defaults(handler=_backup)

    p = subparsers.add_parser(
        "restore", help="check a backup and copy it to a new data directory",
        description="Check every file of a backup against its checksums, then copy it to"
                    " TARGET (new or empty). Start the server with --data-dir TARGET.")
    p.add_argument("backup", type=Path, metavar="BACKUP")
    p.add_argument("target", type=Path, metavar="TARGET")
    p.set_defaults(handler=_restore, store_access="any")


def _migrate(args: argparse.Namespace) -> int:
    from taphouse.metadata import MetadataDB, schema_state

    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    settings = args.settings
    state = schema_state(settings.meta_path)
    if not state.exists:
        print(f"taphouse: no data in {settings.data_dir} yet; nothing to migrate",
              file=sys.stderr)
        return 0
    meta = MetadataDB(settings.meta_path)  # backs up first when it migrates
    meta.close()
    if state.pending:
        print(f"{settings.data_dir}: upgraded ({state.describe_pending()})")
    else:
        print(f"{settings.data_dir}: up to date")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from taphouse.storage.backup import backup

    report = backup(args.settings, args.dest, jobs=not args.without_jobs)
    dropped = (f"; {len(report.dropped_versions)} retained version(s) left out (their"
               " files were already deleted)" if report.dropped_versions else "")
    print(f"{report.path}: {report.tables} tables, {report.files} table files,"
          f" {report.bytes:,} bytes, {report.jobs} jobs in {report.seconds:.1f} s{dropped}")
    if report.secrets:
        print(f"{report.secrets} stored credential(s) are in it, encrypted; their key is not"
              " (the data directory's secret-keys file, or TAPHOUSE_SECRET_KEYS): keep a"
              " copy of the key apart from the backups, or they cannot be opened after a"
              " restore")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from taphouse.storage.backup import restore

    report = restore(args.backup, args.target)
    print(f"{report.path}: {report.files} files, {report.bytes:,} bytes restored and"
          f" checked in {report.seconds:.1f} s; serve it with"
          f" 'taphouse --data-dir {report.path} serve'")
    if report.secrets:
        print(f"{report.secrets} stored credential(s) need their key: copy the old data"
              f" directory's secret-keys file into {report.path} (mode 0600), or set"
              " TAPHOUSE_SECRET_KEYS")
    return 0
