"""Huge request bodies against a server running in this process: a chunked body (no
Content-Length) and the process's peak RSS while it is sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def rss_mib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


def chunked_body(head: bytes, mib: int, tail: bytes) -> Iterator[bytes]:
    """``head``, ``mib`` MiB of ``a``, ``tail``: sent chunked (no Content-Length)."""
    yield head
    chunk = b"a" * (1 << 20)
    for _ in range(mib):
        yield chunk
    yield tail


@contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """Yields a one-item list that holds, after the block, the peak RSS growth in MiB."""
    before = rss_mib()
    peak, stop = [before], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.02)

    growth = [0]
    th = threading.Thread(target=watch)
    th.start()
    try:
        yield growth
    finally:
        stop.set()
        th.join()
        growth[0] = peak[0] - before
