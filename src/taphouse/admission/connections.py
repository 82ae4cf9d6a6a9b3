"""Slow and greedy clients at the connection level, and how uvicorn is configured.

A request whose headers are not complete within ``Settings.header_timeout`` seconds (a
connection that sends nothing counts too), or whose body stalls (less than
:data:`MIN_BODY_RATE` bytes per second over any ``Settings.body_timeout`` period while
the server is reading it), is closed: half-sent requests cannot hold a connection and
the request's task for minutes. A client that stops reading its response (the server's
send buffer stays full for ``Settings.send_timeout`` seconds) has its connection aborted:
the response's task sees the client gone, so a sync query's stream is cancelled and its
slot freed instead of waiting for the client forever. A client address (IPv6: its /64) may hold at most
``Settings.connections_per_address`` connections, and the server at most
``Settings.max_connections`` in all (each is an open file); one more gets a 503 and is
closed. Connections from a trusted proxy count only in the total (they carry many
clients).

uvicorn knows nothing of this on its own: :func:`uvicorn_options` gives ``uvicorn.run``
or ``uvicorn.Config`` the guarded protocol and the forwarded-header trust from
``Settings.trusted_proxies`` (uvicorn's default would believe any loopback client).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from taphouse.admission.addresses import TrustedProxies, address_key
from taphouse.settings import Settings

log = logging.getLogger("taphouse.admission")

#: Slowest body accepted (bytes per second, over each ``body_timeout`` period).
MIN_BODY_RATE = 1024


class ConnectionCounts:
    """Open connections per address key and in all (thread-safe: several servers may
    share it in tests; one event loop in production)."""

    def __init__(self, limit: int, total_limit: int = 0) -> None:
        self.limit = limit
        self.total_limit = total_limit
        self._counts: Counter[str] = Counter()
        self._total = 0
        self._lock = threading.Lock()

    def add(self, key: str | None) -> bool:
        """Count a new connection (``key`` None: a trusted proxy's, counted only in the
        total); False when a cap is full."""
        with self._lock:
            if self.total_limit > 0 and self._total >= self.total_limit:
                return False
            if key is not None:
                if self.limit > 0 and self._counts[key] >= self.limit:
                    return False
                self._counts[key] += 1
            self._total += 1
            return True

    def remove(self, key: str | None) -> None:
        with self._lock:
            self._total -= 1
            if key is not None:
                self._counts[key] -= 1
                if self._counts[key] <= 0:
                    del self._counts[key]

    def count(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)


def guarded_protocol(settings: Settings, counts: ConnectionCounts | None = None
                     ) -> type[H11Protocol]:
    """An uvicorn HTTP/1.1 protocol class with the header/body timeouts and the
    per-address connection cap of ``settings``."""
    trusted = TrustedProxies(settings.trusted_proxies)
    live = counts or ConnectionCounts(settings.connections_per_address,
                                      settings.max_connections)
    header_timeout = settings.header_timeout
    body_period = settings.body_timeout
    send_timeout = settings.send_timeout
    refusal = _plain_response(503, "Service Unavailable",
                              "too many connections from your address; close some and"
                              " try again", retry_after=settings.retry_after)
    timeout_answer = _plain_response(408, "Request Timeout",
                                     "the request was not sent in time")

    class GuardedH11Protocol(H11Protocol):
        _key: str | None = None
        _counted = False
        _head_timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None
        _send_timer: asyncio.TimerHandle | None = None
        _body_bytes = 0

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            host = self.client[0] if self.client else None
            key = None if host is None or host in trusted else address_key(host)
            if not live.add(key):
                log.warning("refused a connection from %s: too many open", key or host)
                transport.write(refusal)
                transport.close()
                return
            self._key, self._counted = key, True
            self._arm_head()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._counted:
                live.remove(self._key)
                self._key, self._counted = None, False
            self._cancel_head()
            self._cancel_body()
            self._cancel_send()
            super().connection_lost(exc)

        def pause_writing(self) -> None:
            # The transport's buffer is full: the client is not reading what we send.
            super().pause_writing()
            if send_timeout > 0 and self._send_timer is None:
                self._send_timer = self.loop.call_later(send_timeout, self._send_late)

        def resume_writing(self) -> None:
            self._cancel_send()
            super().resume_writing()

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.SEND_BODY:
                self._body_bytes += len(data)
            elif self.conn.their_state is h11.IDLE and self._head_timer is None:
                self._arm_head()  # the first bytes of a request on a kept-alive connection
            super().data_received(data)
            state = self.conn.their_state
            if state is not h11.IDLE:
                self._cancel_head()
            if state is h11.SEND_BODY:
                if self._body_timer is None:
                    self._body_bytes = 0
                    self._body_timer = self.loop.call_later(body_period, self._check_body)
            else:
                self._cancel_body()

        # --- timers ---------------------------------------------------------------------
        def _arm_head(self) -> None:
            if header_timeout > 0 and not self.transport.is_closing():
                self._head_timer = self.loop.call_later(header_timeout, self._head_late)

        def _cancel_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _cancel_body(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def _cancel_send(self) -> None:
            if self._send_timer is not None:
                self._send_timer.cancel()
                self._send_timer = None

        def _send_late(self) -> None:
            self._send_timer = None
            if self.transport.is_closing() and not self.flow.write_paused:
                return
            log.warning("aborted a connection from %s: it read nothing of its response for"
                        " %g s", self.client[0] if self.client else "-", send_timeout)
            # abort, not close: close would wait for the buffer to drain, i.e. forever.
            # connection_lost then tells the response's task that the client is gone.
            self.transport.abort()

        def _head_late(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                if self.conn.our_state is h11.IDLE:
                    self.transport.write(timeout_answer)
                self.transport.close()

        def _check_body(self) -> None:
            self._body_timer = None
            if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
                return
            received, self._body_bytes = self._body_bytes, 0
            paused = self.flow is not None and self.flow.read_paused
            if paused or body_period <= 0 or received >= MIN_BODY_RATE * body_period:
                self._body_timer = self.loop.call_later(body_period, self._check_body)
                return
            log.warning("closed a connection from %s: request body stalled (%d bytes in"
                        " %g s)", self.client[0] if self.client else "-", received,
                        body_period)
            if self.cycle is not None and not self.cycle.response_started:
                self.transport.write(timeout_answer)
            self.transport.close()

    GuardedH11Protocol.counts = live  # type: ignore[attr-defined]
    return GuardedH11Protocol


def _plain_response(status: int, reason: str, text: str, *,
                    retry_after: int | None = None) -> bytes:
    body = (text + "\n").encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}", "Connection: close",
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}"]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (Debian's soft
    default, 1024, is below ``max_connections`` plus the table files); returns it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config``: the guarded protocol
    and forwarded-header trust exactly as ``settings.trusted_proxies`` says."""
    trusted = [t.strip() for t in settings.trusted_proxies if t.strip()]
    TrustedProxies(trusted)  # fail at start-up on a malformed entry
    return {"http": guarded_protocol(settings), "proxy_headers": bool(trusted),
            "forwarded_allow_ips": trusted, "timeout_keep_alive": 5}


__all__ = ["MIN_BODY_RATE", "ConnectionCounts", "guarded_protocol", "raise_open_file_limit",
           "uvicorn_options"]
