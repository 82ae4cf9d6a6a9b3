"""Reading what a sandbox wrote without ever following a link it planted.

Every walk uses directory descriptors and ``lstat`` and every open walks the
path one component at a time with ``O_NOFOLLOW`` relative to the directory above, so a
symbolic link (or a directory swapped for one) in a user's home or work directory
cannot make the server read or measure anything outside it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

MAX_DEPTH = 256
"""Deepest directory level walked; a deeper tree is an error (a chain of directories
thousands deep would otherwise exhaust the walk's file descriptors or recursion)."""


class TreeTooDeep(OSError):
    """A directory tree deeper than :data:`MAX_DEPTH`."""


def tree_usage(root: Path) -> int:
    """Bytes on disk under ``root`` (allocated blocks; each entry counts at least one
    512-byte block so a million empty files are not free)."""
    return sum(max(st.st_blocks * 512, 512) for _rel, st in _walk(root))


def regular_files(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative name, lstat) of every regular file under ``root``."""
    for rel, st in _walk(root):
        if stat.S_ISREG(st.st_mode):
            yield rel, st


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under ``root`` with its lstat, depth first and without recursion.
    Each directory is opened relative to its parent's descriptor with O_NOFOLLOW, so a
    directory swapped for a link mid-walk is never followed out of the tree."""
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return
    stack: list[tuple[int, str, list[os.DirEntry]]] = []

    def push(fd: int, rel: str) -> None:
        if len(stack) >= MAX_DEPTH:
            os.close(fd)
            raise TreeTooDeep(f"{root}: directories nested deeper than {MAX_DEPTH} levels")
        with os.scandir(fd) as it:
            entries = list(it)
        stack.append((fd, rel, entries))

    try:
        push(top, "")
        while stack:
            fd, rel, entries = stack[-1]
            if not entries:
                os.close(fd)
                stack.pop()
                continue
            e = entries.pop()
            name = f"{rel}/{e.name}" if rel else e.name
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield name, st
            if stat.S_ISDIR(st.st_mode):
                try:
                    child = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                    dir_fd=fd)
                except (FileNotFoundError, NotADirectoryError, PermissionError):
                    continue
                push(child, name)
    finally:
        for fd, _rel, _entries in stack:
            os.close(fd)


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
