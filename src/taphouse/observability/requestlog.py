"""The request log: one line per HTTP request at INFO on logger ``taphouse.access``.

Each line holds a request id (also sent back as ``X-Request-Id``), the caller (user name,
``-`` when anonymous or not identified), the client address (the one a trusted proxy
forwarded, see :mod:`taphouse.admission.addresses`), method, path, status, response bytes
and seconds. Never the query string (it may carry a password or token in a careless
client's URL), never a header, never a body.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import MutableMapping
from typing import Any

from taphouse.admission.addresses import TrustedProxies

log = logging.getLogger("taphouse.access")

#: Key of the request's log record in the ASGI scope (a dict shared with inner layers,
#: which copy the scope but keep this object).
RECORD = "taphouse.request_log"


def note_caller(scope: MutableMapping[str, Any], username: str | None) -> None:
    """Tell the request log who the caller of this request is (the authenticator does)."""
    record = scope.get(RECORD)
    if record is not None:
        record["caller"] = username or "-"


def _printable(text: str, limit: int = 300) -> str:
    # A path comes from the client: no newline or control character may forge a line.
    out = "".join(c if c.isprintable() and c != " " else f"\\x{ord(c):02x}" for c in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


class RequestLog:
    """ASGI middleware (outermost): logs each request once and counts it in
    :class:`~taphouse.observability.metrics.Metrics`."""

    def __init__(self, app: Any, trusted: TrustedProxies, metrics: Any = None) -> None:
        self.app = app
        self.trusted = trusted
        self.metrics = metrics

    def _address(self, scope: dict[str, Any]) -> str:
        client = scope.get("client")
        if not client:
            return "-"
        peer = client[0]
        if self.trusted and peer in self.trusted:
            forwarded = [v.decode("latin-1") for k, v in scope.get("headers", ())
                         if k == b"x-forwarded-for"]
            if forwarded:
                return str(self.trusted.client_of(peer, ",".join(forwarded)))
        return str(peer)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        record: dict[str, Any] = {"caller": "-", "status": 0, "bytes": 0}
        scope = dict(scope)
        scope[RECORD] = record
        started = time.monotonic()

        async def send_logged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                record["retry_after"] = any(k.lower() == b"retry-after" for k, _ in headers)
                message = dict(message, headers=headers)
            elif message["type"] == "http.response.body":
                record["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except BaseException:
            if not record["status"]:
                record["status"] = 500
            raise
        finally:
            seconds = time.monotonic() - started
            method = scope.get("method", "-")
            path = _printable(scope.get("path", ""))
            log.info("request id=%s caller=%s addr=%s method=%s path=%s status=%d bytes=%d"
                     " seconds=%.3f", request_id, record["caller"], self._address(scope),
                     method, path, record["status"], record["bytes"], seconds)
            if self.metrics is not None:
                self.metrics.request_done(method, record["status"], seconds,
                                          refused=bool(record.get("retry_after")))


__all__ = ["RequestLog", "note_caller", "RECORD"]
