"""Giving freed memory back to the system after large results.

glibc's malloc serves blocks of up to 32 MB from its heaps once a block of that size was
freed (its mmap threshold grows), and keeps freed memory in per-thread arenas: after a
result of hundreds of MB had streamed in slices of a few MB, RSS stayed 20-30 % above
idle although nothing used the memory. :func:`use_mmap_for_large_blocks` fixes the
threshold at 128 KiB (large blocks are then returned to the system when freed; measured:
RSS back within 10 % of idle), and :func:`release_memory` trims what is left
(``malloc_trim``) plus Arrow's allocator, at most once per ``min_interval`` seconds.
DuckDB's allocator releases its own memory (the ``allocator_*`` settings in
:mod:`taphouse.engine.duckdb`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

_lock = threading.Lock()
_last = 0.0
_trim = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = _libc.malloc_trim
except (OSError, AttributeError):  # not glibc: nothing to do
    _trim = None


_M_MMAP_THRESHOLD = -3


def use_mmap_for_large_blocks(threshold: int = 128 * 1024) -> bool:
    """Serve blocks of ``threshold`` bytes or more with their own mappings (returned to
    the system on free) for the whole process; False when not glibc."""
    try:
        return bool(_libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    except (NameError, AttributeError):
        return False


def release_memory(min_interval: float = 1.0) -> bool:
    """Return freed heap memory to the system; False when skipped (too soon, or not
    available on this platform)."""
    global _last
    if _trim is None:
        return False
    now = time.monotonic()
    with _lock:
        if now - _last < min_interval:
            return False
        _last = now
    _trim(0)
    try:  # Arrow's own allocator (mimalloc or jemalloc) keeps freed pages too
        import pyarrow

        pyarrow.default_memory_pool().release_unused()
    except Exception:  # noqa: BLE001 - best effort
        pass
    return True


__all__ = ["release_memory", "use_mmap_for_large_blocks"]
