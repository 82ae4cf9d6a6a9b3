"""Fixtures for storage tests: a small file system of its own (tmpfs) to fill up."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_disk(bytes, at=None)``: a size-limited tmpfs mounted for this test (at
    ``at``, or a new directory; needs root, as in CI; skipped with the reason where
    mounting is impossible)."""
    mounts: list[Path] = []

    def mount(size: int, at: Path | None = None) -> Path:
        path = at or tmp_path / f"disk{len(mounts)}"
        path.mkdir(mode=0o700, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700",
                               "tmpfs", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {proc.stderr.strip()}")
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], check=False)
