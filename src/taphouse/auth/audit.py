"""The audit log: every query and every account event, readable by the operator.

Records hold who, when, how long, how many rows, the outcome and a detail (the query
text, or what happened to an account). Never a password or a token.

When the metadata database cannot be written (a full disk), a record goes to the server
log instead (logger ``taphouse.audit``, level WARNING, every field) and the request
goes on: reading public data must not stop because the audit table is full. A caller
for whom the record is a condition of the request (reads of restricted databases) asks
for ``required=True`` and gets :class:`~taphouse.storage.StorageFull` instead.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from taphouse.auth.tokens import iso_time
from taphouse.metadata import MetadataDB

MAX_DETAIL = 20_000  # characters of query text kept

#: Every kind of audit record, with what it holds.
EVENTS = {
    "query": "an ADQL query (sync, async, DEST): rows returned, or written with DEST",
    "login": "a login (name and password traded for a token, or HTTP Basic)",
    "login_failed": "a refused login",
    "token": "a personal or notebook token created or revoked",
    "password": "a password changed",
    "admin": "an account created, changed, disabled or deleted; database access changed",
    "group": "a group created or deleted, a member added or removed",
    "share": "a user table shared or unshared (or a share refused)",
    "catalogue": "a catalogue table replaced, appended to, rolled back or dropped",
}

log = logging.getLogger("taphouse.audit")


class AuditLog:
    """Writes and reads audit records in the metadata database."""

    def __init__(self, meta: MetadataDB, *, clock: Callable[[], float] = time.time) -> None:
        self.meta = meta
        self.clock = clock

    def record(self, event: str, *, username: str | None = None, user_id: int | None = None,
               method: str | None = None, client: str | None = None,
               duration: float | None = None, rows: int | None = None,
               outcome: str = "ok", detail: str = "", at: float | None = None,
               required: bool = False) -> int | None:
        """Append one record (``event``: query, login, login_failed, token, password,
        admin ...); returns its id, or None when it went to the server log instead
        (the database cannot be written). With ``required``, that raises
        :class:`~taphouse.storage.StorageFull` (or the database error) instead."""
        values = (self.clock() if at is None else at, event, user_id, username, method, client,
                  duration, rows, outcome[:2000], detail[:MAX_DETAIL])
        try:
            cur = self.meta.execute(
                "INSERT INTO audit_log(at, event, user_id, username, method, client, duration,"
                " rows, outcome, detail) VALUES (?,?,?,?,?,?,?,?,?,?)", values)
        except sqlite3.Error as exc:
            self._fallback(exc, values)
            if required:
                from taphouse.storage import StorageFull, is_disk_full

                if is_disk_full(exc):
                    raise StorageFull(
                        "reads of this database are recorded in the audit log, which cannot"
                        " be written now (the server's disk is full); try again later; the"
                        " operator has been told in the server log") from None
                raise
            return None
        return cur.lastrowid

    def update(self, record_id: int, *, duration: float | None, rows: int | None,
               outcome: str) -> bool:
        """Complete a record written when a request started (False: it went to the
        server log instead)."""
        try:
            self.meta.execute("UPDATE audit_log SET duration=?, rows=?, outcome=? WHERE id=?",
                              (duration, rows, outcome[:2000], record_id))
        except sqlite3.Error as exc:
            log.warning("audit record %d not completed (%s): duration=%s rows=%s outcome=%s",
                        record_id, exc, duration, rows, outcome[:2000])
            return False
        return True

    @staticmethod
    def _fallback(exc: BaseException, values: tuple) -> None:
        at, event, user_id, username, method, client, duration, rows, outcome, detail = values
        log.warning("audit record not stored (%s): at=%.3f event=%s user=%s user_id=%s"
                    " method=%s client=%s duration=%s rows=%s outcome=%s detail=%r", exc, at,
                    event, username, user_id, method, client, duration, rows, outcome, detail)

    def entries(self, *, username: str | None = None, event: str | None = None,
                since: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest records first, optionally filtered (an unknown ``event`` is an
        :class:`AccountError` listing the known ones)."""
        if event is not None and event not in EVENTS:
            from taphouse.auth.errors import AccountError

            raise AccountError(f"unknown audit event {event!r}: use one of"
                               f" {', '.join(EVENTS)}")
        where: list[str] = []
        params: list[str | float | int] = []
        if username is not None:
            where.append("username=?")
            params.append(username.lower())
        if event is not None:
            where.append("event=?")
            params.append(event)
        if since is not None:
            where.append("at>=?")
            params.append(since)
        sql = "SELECT * FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(max(1, min(int(limit), 10_000)))
        return [{"id": r["id"], "time": iso_time(r["at"]), "event": r["event"],
                 "username": r["username"], "user_id": r["user_id"], "method": r["method"],
                 "client": r["client"],
                 "duration": None if r["duration"] is None else round(r["duration"], 4),
                 "rows": r["rows"], "outcome": r["outcome"], "detail": r["detail"]}
                for r in self.meta.query(sql, params)]
