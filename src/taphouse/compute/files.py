"""Reading what a sandbox wrote without ever following a link it planted.

Every walk uses ``os.fwalk`` with directory fds and ``lstat`` and every open walks the
path one component at a time with ``O_NOFOLLOW`` relative to the directory above, so a
symbolic link (or a directory swapped for one) in a user's home or work directory
cannot make the server read or measure anything outside it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path


def tree_usage(root: Path) -> int:
    """Bytes on disk under ``root`` (allocated blocks; each entry counts at least one
    512-byte block so a million empty files are not free). Walks with directory fds
    (``os.fwalk``), so a directory swapped for a link mid-walk is not followed."""
    total = 0
    try:
        walker = os.fwalk(root, follow_symlinks=False)
        for _dirpath, dirnames, filenames, dirfd in walker:
            for name in dirnames + filenames:
                try:
                    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                total += max(st.st_blocks * 512, 512)
    except FileNotFoundError:
        return 0
    return total


def regular_files(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative name, lstat) of every regular file under ``root``."""
    try:
        for dirpath, _dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
            rel = os.path.relpath(dirpath, root)
            for name in filenames:
                try:
                    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield (name if rel == "." else f"{rel}/{name}"), st
    except FileNotFoundError:
        return


def open_beneath(root: Path, rel: str) -> int:
    """An fd open for reading on the regular file ``root/rel``; raises
    :class:`FileNotFoundError` when any component is a link, missing or not what it
    should be."""
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise FileNotFoundError(rel)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for p in parts[:-1]:
            nxt = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError as exc:
        raise FileNotFoundError(rel) from exc
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(out).st_mode):
        os.close(out)
        raise FileNotFoundError(rel)
    return out
