"""Slow clients: half-sent requests are closed after the header/body timeouts, and an
address may hold only so many connections."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
from admission_helpers import client_from, wait_for


def _connect(url: str, address: str = "127.0.0.1") -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), source_address=(address, 0))
    sock.settimeout(15)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it
    does not within the socket's timeout)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_headers_not_sent_in_time_close_the_connection(start_server):
    server = start_server(header_timeout=1.0)
    silent = _connect(server.url)
    partial = _connect(server.url)
    partial.sendall(b"GET /tap/availability HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
    for sock in (silent, partial):
        answer = _read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        sock.close()
    # A complete request on a fresh connection is answered as usual, and the connection
    # stays usable for a second request sent promptly.
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/tap/availability").status_code == 200
        time.sleep(0.2)
        assert c.get("/tap/availability").status_code == 200


def test_a_stalled_or_trickling_body_closes_the_connection(start_server):
    server = start_server(body_timeout=1.0)
    head = (b"POST /tap/sync HTTP/1.1\r\nHost: x\r\nContent-Type:"
            b" application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n")
    stalled = _connect(server.url)
    stalled.sendall(head + b"LANG=ADQL&")
    answer = _read_until_closed(stalled)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    stalled.close()

    trickle = _connect(server.url)
    trickle.sendall(head)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 10:
            trickle.sendall(b"Q")  # a few bytes a second, never stalling completely
            time.sleep(0.1)
        raise AssertionError("a body trickling at 10 bytes/s was still accepted after 10 s")
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        trickle.close()


def test_connections_per_address_are_capped(start_server):
    server = start_server(connections_per_address=3, header_timeout=60)
    idle = [_connect(server.url) for _ in range(3)]
    extra = _connect(server.url)
    answer = _read_until_closed(extra)
    assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After" in answer, answer
    extra.close()
    # Another address is not affected.
    with client_from("127.0.0.2", server.url) as other:
        assert other.get("/tap/availability").status_code == 200
    # Closing one frees a place.
    idle.pop().close()

    def fresh_ok() -> bool:
        try:
            with httpx.Client(base_url=server.url, timeout=5) as c:
                return c.get("/tap/availability").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(fresh_ok, timeout=10, what="a connection after one was closed")
    for sock in idle:
        sock.close()


def test_connections_in_all_are_capped(start_server):
    server = start_server(max_connections=3, connections_per_address=10, header_timeout=60)
    idle = [_connect(server.url, f"127.0.0.{2 + i}") for i in range(3)]
    extra = _connect(server.url, "127.0.0.9")
    answer = _read_until_closed(extra)
    assert answer.startswith(b"HTTP/1.1 503"), answer
    extra.close()
    for sock in idle:
        sock.close()

    def fresh_ok() -> bool:
        try:
            with httpx.Client(base_url=server.url, timeout=5) as c:
                return c.get("/tap/availability").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(fresh_ok, timeout=10, what="a connection once the others closed")
