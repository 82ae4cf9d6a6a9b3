"""Prometheus metrics of one server (``GET /metrics``, text exposition format).

Counted as they happen: HTTP requests by method and status, their durations, admission
refusals (answers with ``Retry-After``: a full cap, 503; throttled logins, 429), query
durations by outcome. Read when scraped: jobs by kind and phase, queued jobs, sync
slots in use, free disk of the data directory.

Readable with an administrator's bearer token, or without credentials from an address in
the ``metrics_allow`` setting (the Prometheus server's; default none). A loopback address
proves little: hub users' Jupyter servers and kernels connect from 127.0.0.1 too. So it
counts only on a direct connection (not through a proxy or the hub, never on the
sandboxes' socket) whose socket is not owned by a sandbox uid (``compute_uid_base`` and
above; Linux ``/proc/net/tcp``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from taphouse.admission.addresses import TrustedProxies

if TYPE_CHECKING:  # (auth imports observability: no cycle at run time)
    from taphouse.admission.limits import SlotPool
    from taphouse.auth.authenticator import Authenticator
    from taphouse.jobs.store import JobStore

_DURATIONS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class Metrics:
    """The counters of one server, in a registry of its own (several servers may share a
    process, as in the tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("taphouse_http_requests", "HTTP requests answered",
                                ["method", "status"], registry=self.registry)
        self.request_seconds = Histogram("taphouse_http_request_duration_seconds",
                                         "Time from request to the end of the response",
                                         buckets=_DURATIONS, registry=self.registry)
        self.refusals = Counter("taphouse_admission_refusals",
                                "Requests refused for now with Retry-After (503: a cap is"
                                " full; 429: too many attempts)", ["status"],
                                registry=self.registry)
        self.query_seconds = Histogram("taphouse_query_duration_seconds",
                                       "Execution time of ADQL queries, by outcome",
                                       ["outcome"], buckets=_DURATIONS, registry=self.registry)

    def request_done(self, method: str, status: int, seconds: float, *,
                     refused: bool = False) -> None:
        method = method if method in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                                      "OPTIONS"} else "other"
        self.requests.labels(method, str(status)).inc()
        self.request_seconds.observe(seconds)
        if refused and status in (429, 503):
            self.refusals.labels(str(status)).inc()

    def query_done(self, seconds: float, outcome: str) -> None:
        kind = outcome.split(":", 1)[0].strip() or "ok"
        if kind not in {"ok", "error", "cancelled", "aborted", "rejected"}:
            kind = "error"
        self.query_seconds.labels(kind).observe(seconds)

    def watch(self, jobs: JobStore, sync_slots: SlotPool, data_dir: Path) -> None:
        """Also report the platform's state when scraped: its jobs, sync slots and the
        free disk of its data directory."""
        self.registry.register(_PlatformState(jobs, sync_slots, data_dir))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _PlatformState:
    """Gauges read at scrape time."""

    def __init__(self, jobs: JobStore, sync_slots: SlotPool, data_dir: Path) -> None:
        self.jobs = jobs
        self.sync_slots = sync_slots
        self.data_dir = data_dir

    def describe(self) -> list[Any]:
        return []  # read only when scraped (no database access at registration)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_phase = GaugeMetricFamily("taphouse_jobs", "Jobs kept, by kind and phase",
                                     labels=["kind", "phase"])
        queued = GaugeMetricFamily("taphouse_jobs_queued", "Jobs waiting for a worker",
                                   labels=["kind"])
        waiting: dict[str, int] = {}
        for kind, phase, count in self.jobs.counts():
            by_phase.add_metric([kind, phase], count)
            if phase == "QUEUED":
                waiting[kind] = waiting.get(kind, 0) + count
        for kind in sorted(set(waiting) | {"tap"}):
            queued.add_metric([kind], waiting.get(kind, 0))
        yield by_phase
        yield queued
        slots = GaugeMetricFamily("taphouse_sync_slots_in_use",
                                  "Sync queries, downloads and uploads running now")
        slots.add_metric([], self.sync_slots.running())
        yield slots
        limit = GaugeMetricFamily("taphouse_sync_slots", "Sync slots in all")
        limit.add_metric([], self.sync_slots.total)
        yield limit
        disk = GaugeMetricFamily("taphouse_disk_free_bytes",
                                 "Free bytes on the data directory's file system")
        disk.add_metric([], shutil.disk_usage(self.data_dir).free)
        yield disk


def metrics_router(metrics: Metrics, *, authenticator: Authenticator,
                   metrics_allow: tuple[str, ...], compute_uid_base: int) -> APIRouter:
    """``GET /metrics`` for an administrator's bearer token or an address in
    ``metrics_allow`` (not a sandbox's: uids from ``compute_uid_base`` up)."""
    router = APIRouter()
    allowed = TrustedProxies(metrics_allow)

    @router.get("/metrics")
    async def scrape(request: Request) -> Response:
        from taphouse.auth.errors import AuthError, Forbidden

        host = request.client.host if request.client else None
        if not (host is not None and host in allowed
                and not request.headers.get("authorization")
                and _not_a_sandbox(request, compute_uid_base)):
            caller = await authenticator.caller_async(request, allow_basic=False)
            if caller.identity.anonymous:
                raise AuthError("the metrics need an administrator's bearer token (or a"
                                " request from an address in metrics_allow)")
            if not caller.identity.is_admin:
                raise Forbidden("the metrics are for administrators")
        body = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})

    return router


def _not_a_sandbox(request: Request, uid_base: int) -> bool:
    """Whether an allowed address may read the metrics without a token: not from the
    hub or the sandboxes' socket; a loopback one only on a direct TCP connection whose
    client socket belongs to a uid below ``uid_base`` (hub users' servers and jobs run
    as ``uid_base + n`` on this machine's network)."""
    from taphouse.admission.addresses import is_loopback
    from taphouse.auth.authenticator import LISTENER, SANDBOX_LISTENER
    from taphouse.hub.link import from_hub

    scope = request.scope
    if scope.get(LISTENER) == SANDBOX_LISTENER or from_hub(scope):
        return False
    client, server = scope.get("client"), scope.get("server")
    if not client or not is_loopback(client[0]):
        return True
    if not client[1] or not server:  # forwarded by a proxy: whose, it cannot tell
        return False
    uid = _socket_uid(int(client[1]), int(server[1]))
    return uid is not None and uid < uid_base


def _socket_uid(client_port: int, server_port: int) -> int | None:
    """The uid owning the client end (``client_port`` -> ``server_port``) of a TCP
    connection on this host, from ``/proc/net/tcp`` and ``tcp6``; None: not found."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 8:
                continue
            local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
            if int(local, 16) == client_port and int(remote, 16) == server_port:
                return int(fields[7])
    return None


__all__ = ["Metrics", "metrics_router"]
