"""The audit sink of the query path: who ran what, how long, how many rows, outcome."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from taphouse.auth.audit import AuditLog
from taphouse.auth.identity import Identity
from taphouse.catalogue.store import CatalogueStore
from taphouse.query.cancel import CancelHandle

if TYPE_CHECKING:
    from taphouse.query.service import PreparedQuery

log = logging.getLogger("taphouse")


class QueryAudit:
    """Records queries in the audit log (and the server log).

    Parameters
    ----------
    audit_log
        The platform's audit log (auth).
    catalogue
        Tells which databases are public: reads of the others are recorded before the
        query runs, and refused if that record cannot be written.
    observe
        Called with (seconds, outcome) of every executed query (the metrics).
    """

    def __init__(self, audit_log: AuditLog, catalogue: CatalogueStore,
                 observe: Callable[[float, str], None] | None = None) -> None:
        self.audit_log = audit_log
        self.catalogue = catalogue
        self.observe = observe

    def start(self, prepared: PreparedQuery) -> None:
        """Before a query runs: a read of a restricted database is recorded now, and
        refused (:class:`~taphouse.storage.StorageFull`, 507) if the audit log cannot be
        written. Other reads are recorded when they end (:meth:`finish`), in the server
        log if need be."""
        restricted = sorted({t.database for t in prepared.tables
                             if t.kind == "catalogue" and not self._public(t.database)})
        if not restricted:
            return
        ident = prepared.identity
        prepared.audit_id = self.audit_log.record(
            "query", username=ident.username, user_id=ident.user_id, method=ident.method,
            duration=None, rows=None, outcome="running", detail=prepared.spec.query,
            required=True)

    def _public(self, database: str) -> bool:
        db = self.catalogue.database(database)
        return db is None or db.public

    def finish(self, prepared: PreparedQuery, seconds: float, cancel: CancelHandle,
               error: BaseException | None = None) -> None:
        """Record one executed query (who, what, how long, how many rows, outcome) in the
        audit log. Called from a ``finally`` block: without ``error``, the exception
        being propagated (if any) is the outcome."""
        if error is None:
            error = sys.exc_info()[1]
        if cancel.reason:
            outcome = "cancelled: " + cancel.reason
        elif isinstance(error, GeneratorExit):
            outcome = "aborted: result not fully read"
        elif error is not None:
            outcome = "error: " + (getattr(error, "message", None) or str(error))
        else:
            outcome = "ok"
        ident = prepared.identity
        # A DEST query writes all its rows to a table and returns at most MAXREC: the
        # audit counts the rows written (the response's are a part of them).
        rows = cancel.rows if prepared.dest_rows is None else prepared.dest_rows
        if prepared.dest_table:
            outcome += f" (DEST: {rows} rows written to {prepared.dest_table})"
        log.info("query user=%s rows=%d seconds=%.3f outcome=%s",
                 ident.username or "-", rows, seconds, outcome)
        if self.observe is not None:
            self.observe(seconds, outcome)
        if prepared.audit_id is not None:
            self.audit_log.update(prepared.audit_id, duration=seconds, rows=rows,
                                  outcome=outcome)
            return
        self.audit_log.record(
            "query", username=ident.username, user_id=ident.user_id, method=ident.method,
            duration=seconds, rows=rows, outcome=outcome, detail=prepared.spec.query)

    def rejected(self, identity: Identity, query: str, error: BaseException) -> None:
        """Record a query refused before it ran (ADQL error, unknown table...)."""
        outcome = "rejected: " + (getattr(error, "message", None) or str(error))
        log.info("query user=%s rows=0 seconds=0 outcome=%s", identity.username or "-",
                 outcome)
        self.audit_log.record(
            "query", username=identity.username, user_id=identity.user_id,
            method=identity.method, duration=0.0, rows=0, outcome=outcome, detail=query)
