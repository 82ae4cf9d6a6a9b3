"""The metadata database keeps one SQLite connection per thread and closes those of
threads that have ended. Threads not started by ``threading`` (a C library's, a foreign
thread calling into Python) appear as ``threading._DummyThread``, whose ``is_alive()``
is always True: their connections were never closed (two open files each, for good)."""

from __future__ import annotations

import ctypes
import sqlite3
import threading

import pytest

from taphouse.metadata import MetadataDB


def test_connections_of_threads_not_started_by_threading_are_closed_when_they_end(tmp_path):
    meta = MetadataDB(tmp_path / "meta.sqlite")
    meta.query("SELECT 1")
    base = meta.open_connections()
    kinds: list[str] = []
    opened: list[sqlite3.Connection] = []

    @ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
    def foreign(_arg: int | None) -> None:  # runs in a thread made by pthread_create
        kinds.append(type(threading.current_thread()).__name__)
        opened.append(meta.connection())
        meta.query("SELECT 1")
        return None

    libc = ctypes.CDLL(None)
    for _ in range(4):
        tid = ctypes.c_ulong()
        assert libc.pthread_create(ctypes.byref(tid), None, foreign, None) == 0
        assert libc.pthread_join(tid, None) == 0
    assert kinds == ["_DummyThread"] * 4
    meta.close_ended_threads()
    assert meta.open_connections() == base
    for con in opened:
        with pytest.raises(sqlite3.ProgrammingError):  # closed
            con.execute("SELECT 1")
    meta.query("SELECT 1")  # this thread's own still works
    meta.close()
