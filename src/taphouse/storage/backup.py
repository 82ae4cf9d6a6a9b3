"""Online backups of a data directory, and restoring them.

:func:`backup` makes a consistent copy while servers keep serving and writing:

1. version files are *held* (:meth:`CatalogueStore.files_held`: no process deletes one
   until the backup ends);
2. the metadata database is copied with SQLite's backup API, a snapshot of one moment;
3. exactly the version files that snapshot names (current and retained versions) are
   copied, each with its SHA-256, and the job directories of the jobs it knows;
4. a manifest ``BACKUP.json`` lists every file with its size and checksum.

Everything is written to ``DEST.partial`` and renamed to ``DEST`` at the end, so a
``DEST`` that exists is complete. A backup is itself a data directory: serve it, or copy
it back with :func:`restore`, which checks every file against the manifest first.
Backups hold password hashes and tokens: they are private (0700/0600) like the data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from taphouse.errors import ServiceError
from taphouse.metadata import copy_database, schema_state
from taphouse.secrets import count_stored
from taphouse.settings import Settings
from taphouse.storage.datadir import make_private_dir

if TYPE_CHECKING:
    from taphouse.catalogue.store import CatalogueStore

log = logging.getLogger("taphouse.storage")

MANIFEST = "BACKUP.json"
FORMAT = 1
_CHUNK = 4 << 20


class BackupError(ServiceError):
    """A backup or restore cannot be made; the message says why."""


@dataclass
class BackupReport:
    """What a backup or restore copied."""

    path: Path
    tables: int = 0
    files: int = 0
    bytes: int = 0
    jobs: int = 0
    seconds: float = 0.0
    dropped_versions: list[int] = field(default_factory=list)
    #: Credentials stored encrypted (taphouse.secrets) in the copy: their key is never
    #: in a backup (keep it apart), so the caller reminds the operator.
    secrets: int = 0


def backup(settings: Settings, dest: Path, *, jobs: bool = True) -> BackupReport:
    """Copy the data directory of ``settings`` to ``dest`` (which must not exist).

    ``jobs=False`` leaves out async jobs and their result files (their records are
    removed from the copy).
    """
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB

    started = time.monotonic()
    dest = Path(dest).absolute()
    if dest.exists() or dest.is_symlink():
        raise BackupError(f"{dest} exists: a backup goes to a new directory")
    if not settings.meta_path.is_file():
        raise BackupError(f"{settings.data_dir} holds no taphouse data (no meta.sqlite)")
    schema_state(settings.meta_path).check_current()
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    make_private_dir(partial)
    report = BackupReport(path=dest)
    meta = MetadataDB(settings.meta_path, upgrade=False)
    try:
        store = CatalogueStore(meta, settings.tables_dir)
        with store.files_held():
            copy_database(settings.meta_path, partial / "meta.sqlite")
            files = _copy_versions(store, partial, report)
            if jobs:
                files += _copy_jobs(settings.jobs_dir, partial, report)
            else:
                _forget_jobs(partial)
        _write_manifest(partial, files, settings)
        _fsync_tree(partial)
        report.secrets = count_stored(partial / "meta.sqlite")
        os.rename(partial, dest)
        _fsync(dest.parent)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        _explain(exc, f"no backup was made in {dest}")
        raise
    finally:
        meta.close()
    report.seconds = time.monotonic() - started
    log.info("backup of %s in %s: %d table file(s), %d bytes, %d job(s), %.1f s",
             settings.data_dir, dest, report.files, report.bytes, report.jobs,
             report.seconds)
    return report


def _copy_versions(store: CatalogueStore, partial: Path,
                   report: BackupReport) -> list[dict]:
    """Copy the files of the versions the snapshot ``partial/meta.sqlite`` records
    (``store``: the live catalogue, whose files are held)."""
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB

    files: list[dict] = []
    copy = MetadataDB(partial / "meta.sqlite", upgrade=False)
    try:
        snapshot = CatalogueStore(copy, store.tables_dir)
        copied: dict[str, dict] = {}
        for version in snapshot.recorded_versions():
            stored = version.stored
            source = store.resolve(stored)
            if stored in copied:
                continue
            if (PurePosixPath(stored).is_absolute() or ".." in PurePosixPath(stored).parts
                    or not _inside(source, store.tables_dir)
                    or not (source.is_file() or source.is_dir()) or source.is_symlink()):
                if not version.retired:
                    raise BackupError(
                        f"the file of table version {version.version_id} ({stored}) is"
                        f" missing or outside {store.tables_dir}: this store is damaged; a"
                        " backup of it would not restore")
                # A retained version whose file is already gone: not in the backup.
                report.dropped_versions.append(version.version_id)
                continue
            target = partial.joinpath(*PurePosixPath(stored).parts)
            # A partitioned (HATS) version is a directory: each of its files is copied
            # and listed (links inside it are never followed).
            entries = (_copy_tree(source, target, stored) if source.is_dir()
                       else [_copy_file(source, target, stored)])
            copied[stored] = entries[0] if entries else {}
            files.extend(entries)
            report.files += len(entries)
            report.bytes += sum(e["bytes"] for e in entries)
            if version.current:
                report.tables += 1
        if report.dropped_versions:
            snapshot.forget_retired_versions(report.dropped_versions)
    finally:
        copy.close()
    return files


def _copy_jobs(jobs_dir: Path, partial: Path, report: BackupReport) -> list[dict]:
    from taphouse.jobs.store import JobStore
    from taphouse.metadata import MetadataDB

    files: list[dict] = []
    copy = MetadataDB(partial / "meta.sqlite", upgrade=False)
    try:
        store = JobStore(copy)
        for job_id in sorted(store.all_ids()):
            folder = jobs_dir / job_id
            if not folder.is_dir():
                store.delete(job_id)  # destroyed while the backup ran
                continue
            for path in sorted(folder.iterdir()):
                if path.is_symlink() or not path.is_file() or path.name.endswith(".part"):
                    continue
                rel = f"jobs/{job_id}/{path.name}"
                try:
                    entry = _copy_file(path, partial / "jobs" / job_id / path.name, rel)
                except FileNotFoundError:
                    continue
                files.append(entry)
                report.bytes += entry["bytes"]
            report.jobs += 1
    finally:
        copy.close()
    return files


def _forget_jobs(partial: Path) -> None:
    from taphouse.jobs.store import JobStore
    from taphouse.metadata import MetadataDB

    copy = MetadataDB(partial / "meta.sqlite", upgrade=False)
    try:
        store = JobStore(copy)
        for job_id in store.all_ids():
            store.delete(job_id)
    finally:
        copy.close()


def _copy_file(source: Path, target: Path, rel: str) -> dict:
    make_private_dir(target.parent)
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(
            os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return {"path": rel, "bytes": size, "sha256": digest.hexdigest()}


def _copy_tree(source: Path, target: Path, rel: str) -> list[dict]:
    entries = []
    make_private_dir(target)
    for folder, dirs, names in os.walk(source):
        dirs.sort()
        here = Path(folder).relative_to(source)
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            inner = (here / name).as_posix()
            entries.append(_copy_file(path, target / here / name, f"{rel}/{inner}"))
    return entries


def _write_manifest(partial: Path, files: list[dict], settings: Settings) -> None:
    from taphouse import __version__

    # One self-contained file (no -wal beside it), whatever opened it since the copy.
    con = sqlite3.connect(partial / "meta.sqlite", isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=DELETE")
    finally:
        con.close()
    meta = _copy_digest(partial / "meta.sqlite")
    doc = {
        "format": FORMAT,
        "taphouse": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": str(Path(settings.data_dir).absolute()),
        "schema": schema_state(partial / "meta.sqlite").applied,
        "files": [meta, *files],
    }
    path = partial / MANIFEST
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        json.dump(doc, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _copy_digest(path: Path) -> dict:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"path": path.name, "bytes": size, "sha256": digest.hexdigest()}


def verify(backup_dir: Path) -> dict:
    """Check every file of a backup against its manifest; returns the manifest.
    Raises :class:`BackupError` naming the first file that is missing or differs."""
    backup_dir = Path(backup_dir)
    try:
        doc: dict[str, Any] = json.loads((backup_dir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{backup_dir} is not a taphouse backup (no readable"
                          f" {MANIFEST}: {exc})") from None
    if doc.get("format") != FORMAT:
        raise BackupError(f"{backup_dir}: backup format {doc.get('format')!r}; this"
                          f" taphouse reads format {FORMAT}")
    for entry in doc["files"]:
        rel = PurePosixPath(entry["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise BackupError(f"{backup_dir}: manifest names a path outside the backup:"
                              f" {entry['path']}")
        got = _copy_digest(backup_dir.joinpath(*rel.parts)) if backup_dir.joinpath(
            *rel.parts).is_file() else None
        if got is None or got["bytes"] != entry["bytes"] or got["sha256"] != entry["sha256"]:
            raise BackupError(f"{backup_dir}: {entry['path']} is missing or damaged"
                              " (size or SHA-256 differs from the manifest)")
    return doc


def restore(backup_dir: Path, data_dir: Path) -> BackupReport:
    """Check a backup (:func:`verify`) and copy it to ``data_dir`` (which must not
    exist, or be empty), under a temporary name renamed when complete."""
    started = time.monotonic()
    backup_dir, data_dir = Path(backup_dir), Path(data_dir).absolute()
    doc = verify(backup_dir)
    schema_state(backup_dir / "meta.sqlite").check_not_too_new()
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupError(f"{data_dir} exists and is not empty: restore into a new"
                          " directory (move the old one aside first)")
    partial = data_dir.with_name(data_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    make_private_dir(partial)
    report = BackupReport(path=data_dir)
    try:
        for entry in doc["files"]:
            rel = PurePosixPath(entry["path"])
            got = _copy_file(backup_dir.joinpath(*rel.parts), partial.joinpath(*rel.parts),
                             entry["path"])
            if got["sha256"] != entry["sha256"]:
                raise BackupError(f"{entry['path']} changed while it was restored")
            report.files += 1
            report.bytes += got["bytes"]
        _fsync_tree(partial)
        report.secrets = count_stored(partial / "meta.sqlite")
        if data_dir.exists():
            data_dir.rmdir()
        os.rename(partial, data_dir)
        _fsync(data_dir.parent)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        _explain(exc, f"nothing was restored to {data_dir}")
        raise
    report.seconds = time.monotonic() - started
    return report


def _explain(exc: BaseException, outcome: str) -> None:
    """Turn a full disk or a file-system error into a :class:`BackupError` an operator
    can act on."""
    from taphouse.storage.errors import is_disk_full

    name = getattr(exc, "filename", None)
    where = f" ({name})" if name else ""
    if is_disk_full(exc):
        raise BackupError(f"the disk is full{where}: {outcome}") from None
    if isinstance(exc, OSError):
        raise BackupError(f"{exc.strerror or exc}{where}: {outcome}") from None


def _inside(path: Path, folder: Path) -> bool:
    try:
        return folder in path.resolve().parents
    except OSError:
        return False


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, _files in os.walk(root):
        _fsync(Path(folder))


def _fsync(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
