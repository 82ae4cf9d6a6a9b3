"""What the operator sees of a running server: the request log (one line per request)
and the Prometheus ``/metrics`` endpoint."""

from taphouse.observability.metrics import Metrics, metrics_router
from taphouse.observability.requestlog import RequestLog, note_caller

__all__ = ["Metrics", "metrics_router", "RequestLog", "note_caller"]
