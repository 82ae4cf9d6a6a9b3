"""Helpers for admission tests: a table to make slow queries on, clients bound to their
own 127.0.0.x source address, and a slow sync query held open on a raw socket."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

# Minutes of work on 2 cores (8e9 combinations), cancelled when its client goes away.
SLOW = ("SELECT COUNT(*) AS n FROM t.nums AS a, t.nums AS b, t.nums AS c"
        " WHERE a.id + b.id + c.id = 7")


def add_nums(platform: Any, rows: int = 2000) -> None:
    """Table ``t.nums`` with ``id`` 0..rows-1."""
    from taphouse.catalogue.model import ColumnMeta, TableMeta

    platform.catalogue.create_database("t", "test data")
    path = platform.catalogue.new_version_path("t", "nums")
    n = platform.engine.write_table(f"SELECT range::BIGINT AS id FROM range({rows})", path)
    platform.catalogue.publish(TableMeta(database="t", name="nums", nrows=n,
                                         columns=[ColumnMeta(name="id", datatype="long")]),
                               path)


def client_from(address: str, base: str, **kwargs: Any) -> httpx.Client:
    """An httpx client whose connections come from ``address`` (a 127.0.0.x)."""
    transport = httpx.HTTPTransport(local_address=address)
    kwargs.setdefault("timeout", 60)
    return httpx.Client(base_url=base, transport=transport, **kwargs)


class HeldQuery:
    """A sync query sent on a raw socket and left running until :meth:`close` (the
    server then sees the client go away and cancels it)."""

    def __init__(self, url: str, query: str, *, address: str = "127.0.0.1",
                 headers: dict[str, str] | None = None, path: str = "/tap/sync") -> None:
        parts = urlsplit(url)
        body = urlencode({"LANG": "ADQL", "QUERY": query}).encode()
        head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}",
                "Content-Type: application/x-www-form-urlencoded",
                f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock = socket.create_connection((parts.hostname, parts.port),
                                             source_address=(address, 0))
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def response(self, timeout: float = 30) -> bytes:
        self.sock.settimeout(timeout)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")
