"""The query path, end to end: a request (:class:`QuerySpec`) is prepared against the
caller's scope (parse, check, resolve, translate) and executed on the engine, its
batches streamed into a result writer (and a user table for DEST and async results).

Parts get their collaborators explicitly (see :class:`QueryService`); ``tap/`` turns
HTTP into requests and results into responses, ``jobs/`` runs :class:`TapQueryRunner`
for async queries. :class:`CancelHandle` and the time-limit clock live here.
"""

from taphouse.query.cancel import CancelHandle
from taphouse.query.errors import QueryError
from taphouse.query.request import QuerySpec, parse_query_spec

__all__ = ["CancelHandle", "QueryError", "QuerySpec", "parse_query_spec"]
