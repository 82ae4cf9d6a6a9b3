"""A client that asks for a large sync result and then stops reading it held a sync slot
and the query's DuckDB stream for as long as it kept the connection open: the server
waited to write forever. After ``send_timeout`` seconds with its send buffer full the
connection is aborted, the query cancelled and the slot freed."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlencode, urlsplit

from admission_helpers import add_nums, wait_for

# 4 million rows of CSV (~40 MB): far more than the socket buffers hold.
BIG = "SELECT a.id AS x, b.id AS y FROM t.nums AS a, t.nums AS b"


def test_a_client_that_stops_reading_a_sync_result_loses_it_and_its_slot(start_server):
    server = start_server(send_timeout=1.0)
    add_nums(server.platform)
    parts = urlsplit(server.url)
    body = urlencode({"LANG": "ADQL", "QUERY": BIG, "RESPONSEFORMAT": "csv",
                      "MAXREC": "10000000"}).encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect((parts.hostname, parts.port))
    sock.sendall((f"POST /tap/sync HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                  "Content-Type: application/x-www-form-urlencoded\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    sock.settimeout(60)
    head = sock.recv(1024)
    assert head.startswith(b"HTTP/1.1 200"), head
    slots = server.platform.sync_slots
    try:
        # ... and reads no more. The stream stalls with the slot held, then the server
        # gives up on the client: slot freed, query cancelled.
        assert slots.running() == 1
        wait_for(lambda: slots.running() == 0, timeout=30,
                 what="the slot of the stalled stream freed")
        audit = server.platform.authenticator.audit_log

        def cancelled() -> bool:
            return any(r["outcome"].startswith("cancelled") for r in
                       audit.entries(event="query"))

        wait_for(cancelled, timeout=30, what="the query recorded as cancelled")
        # The connection was aborted: what was buffered, then the end (reset or EOF).
        sock.settimeout(30)
        t0 = time.monotonic()
        got = 0
        try:
            while chunk := sock.recv(1 << 16):
                got += len(chunk)
        except ConnectionResetError:
            pass
        assert got < 30_000_000, got  # not the whole result
        assert time.monotonic() - t0 < 30
    finally:
        sock.close()
    # Another query of the same caller runs at once.
    import httpx
    r = httpx.post(server.url + "/tap/sync", data={"LANG": "ADQL", "QUERY":
                   "SELECT TOP 3 id FROM t.nums ORDER BY id", "RESPONSEFORMAT": "csv"}, timeout=60)
    assert r.status_code == 200 and r.text.split() == ["id", "0", "1", "2"], r.text
