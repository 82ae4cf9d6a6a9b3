"""The data directory on disk: its layout, its permissions and its ``tmp/`` areas.

Layout (see :class:`~taphouse.settings.Settings`)::

    DATA_DIR/            0700
      meta.sqlite        0600  accounts (password hashes), tokens, jobs, table versions
      tables/            one immutable file per table version
      jobs/              async job parameters and results
      tmp/               temporary files, one private area per process
      backups/           copies of meta.sqlite made before each upgrade

Everything is private to the account running taphouse: directories 0700, files 0600,
set explicitly when created (not through the umask: the compute sandbox needs the
process's default) and checked at start-up, where anything others could read is made
private again (logged) and anything owned by another account is refused
(:func:`enforce_permissions`). The compute sandbox's layout is respected: its group may
*traverse* directories (mode 0710, never list or read), ``compute/`` keeps the modes
and owners the compute package gives it, and in ``jobs/`` (where sandboxed runs have
files of their own uid and group) only permissions for *others* are removed.

Temporary files (sort spills, FITS spooling, uploads in flight, table versions being
written) live under ``tmp/``, on the data directory's disk, never in ``/tmp``. Each
process works in its own area ``tmp/a-<pid>-<random>/`` which it holds locked
(``flock``) while it runs; :func:`clean_tmp` (at server start-up) removes the areas of
processes that died, and leaves alone those of live ones (an ``ingest`` running beside
the server).
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import stat
import time
from pathlib import Path

from taphouse.errors import ServiceError

log = logging.getLogger("taphouse.storage")

_AREA_PREFIX = "a-"
_NEW_PREFIX = ".new-"
_NEW_AREA_AGE = 3600.0  # a half-made area older than this belongs to a dead process


class PermissionsError(ServiceError):
    """The data directory can be read or changed by other accounts."""

    status = 503


class TmpArea:
    """A private scratch directory of this process under ``tmp/``, locked while open.

    Use as a context manager or call :meth:`close`; the area and everything in it is
    removed then. A process that dies leaves it to :func:`clean_tmp`.
    """

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = Path(tmp_dir)
        make_private_dir(self.tmp_dir)
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Made under a name clean_tmp skips, locked, then renamed: a cleaner never sees
        # an unlocked area that is in use.
        new = self.tmp_dir / f"{_NEW_PREFIX}{token}"
        new.mkdir(mode=0o700)
        self._fd: int | None = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = (self.tmp_dir / f"{_AREA_PREFIX}{token}").resolve()
        os.rename(new, self.path)

    def new_path(self, prefix: str, suffix: str = "") -> Path:
        """A fresh name in the area (nothing is created)."""
        return self.path / f"{prefix}{secrets.token_hex(8)}{suffix}"

    def new_dir(self, prefix: str) -> Path:
        path = self.new_path(prefix)
        path.mkdir(mode=0o700)
        return path

    def close(self) -> None:
        if self._fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> TmpArea:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clean_tmp(tmp_dir: Path) -> int:
    """Remove what crashed processes left in ``tmp/``: every entry except the areas of
    live processes. Returns the number of entries removed."""
    tmp_dir = Path(tmp_dir)
    if not tmp_dir.is_dir():
        return 0
    removed = 0
    for entry in tmp_dir.iterdir():
        name = entry.name
        if name.startswith(_NEW_PREFIX):
            try:
                young = time.time() - entry.lstat().st_mtime < _NEW_AREA_AGE
            except FileNotFoundError:
                continue
            if young:
                continue
        if entry.is_dir() and not entry.is_symlink():
            if _in_use(entry):
                continue
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.info("removed %d temporary file(s) or area(s) left in %s by processes that"
                 " ended", removed, tmp_dir)
    return removed


def _in_use(area: Path) -> bool:
    try:
        fd = os.open(area, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we took
    return False


def make_private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700 (inside a data directory
    or a backup, where every level is private); an existing directory keeps its mode
    (:func:`enforce_permissions` reports it)."""
    missing = []
    level = Path(path).resolve()  # a symlink to a directory not made yet: make that
    while not level.is_dir():
        missing.append(level)
        level = level.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)  # in case the umask took owner bits


def prepare(data_dir: Path) -> None:
    """Create the data directory's layout, private (0700) where new. Its parents get the
    default mode (the compute sandbox must be able to traverse them)."""
    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    for sub in ("", "tables", "jobs", "tmp"):
        make_private_dir(data_dir / sub if sub else data_dir)


#: Top-level entries whose contents their package manages: ``compute/`` (the sandbox
#: group reads the client package; homes belong to per-user uids), ``hub/`` (the users'
#: Jupyter servers read its library, configuration and environment; its secrets are
#: 0600, see taphouse.hub.config) and ``tmp/`` (private areas of running processes,
#: emptied at start-up).
MANAGED = ("compute", "hub", "tmp")
#: Top-level entries where contents may belong to other accounts and to the sandbox
#: group: ``jobs/`` (work directories of sandboxed compute jobs); only permissions for
#: others are removed there.
SHARED_WITH_SANDBOX = ("jobs",)


def enforce_permissions(data_dir: Path, *, managed: tuple[str, ...] = MANAGED,
                        sandboxed: tuple[str, ...] = SHARED_WITH_SANDBOX) -> list[str]:
    """Make everything under the data directory private to this account, as taphouse
    creates it: files 0600, directories 0700. Group and other permissions are removed
    (logged as a warning: a store of an earlier release, or a directory an operator
    made with ``mkdir``), except the group's *search* bit on directories (the compute
    sandbox's group traverses, never lists or reads, the way to its socket); see the
    module docstring for ``managed`` and ``sandboxed`` subtrees. Returns the paths
    changed.

    Raises :class:`PermissionsError` when something belongs to another account outside
    the ``sandboxed`` subtrees: this account could not keep it private (nor, usually,
    read it), so nothing is served from it until the operator fixes the ownership.
    """
    data_dir = Path(data_dir)
    uid = os.geteuid()
    foreign: list[str] = []
    changed: list[str] = []

    def visit(path: Path, st: os.stat_result, in_sandboxed: bool) -> None:
        if st.st_uid != uid and not in_sandboxed:
            foreign.append(f"{path} (uid {st.st_uid})")
            return
        if in_sandboxed:
            loose = st.st_mode & 0o007
        else:
            loose = st.st_mode & (0o067 if stat.S_ISDIR(st.st_mode) else 0o077)
        if loose:
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~loose)
            changed.append(str(path))

    try:
        visit(data_dir, data_dir.stat(), False)  # the directory itself may be a symlink
    except FileNotFoundError:
        return changed
    for folder, dirs, files in os.walk(data_dir):
        top = Path(folder).relative_to(data_dir).parts[:1]
        in_sandboxed = bool(top) and top[0] in sandboxed
        for name in dirs + files:
            path = Path(folder) / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if not stat.S_ISLNK(st.st_mode):  # a link's own mode means nothing
                visit(path, st, in_sandboxed)
        if not top:
            dirs[:] = [d for d in dirs if d not in managed]
    if foreign:
        listed = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise PermissionsError(
            f"{len(foreign)} path(s) in the data directory {data_dir} belong to another"
            f" account than this one (uid {uid}): {listed}. Run taphouse as the account"
            f" that owns the data, or fix it: chown -R {uid} {data_dir}")
    if changed:
        log.warning("the data directory %s was readable by other accounts: removed group"
                    " and other permissions from %d path(s) (first: %s); taphouse keeps"
                    " it private (directories 0700, files 0600)", data_dir, len(changed),
                    changed[0])
    return changed
