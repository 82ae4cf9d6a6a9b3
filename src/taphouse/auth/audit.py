"""The audit log: every query and every account event, readable by the operator.

Records hold who, when, how long, how many rows, the outcome and a detail (the query
text, or what happened to an account). Never a password or a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from taphouse.auth.tokens import iso_time
from taphouse.metadata import MetadataDB

MAX_DETAIL = 20_000  # characters of query text kept


class AuditLog:
    """Writes and reads audit records in the metadata database."""

    def __init__(self, meta: MetadataDB, *, clock: Callable[[], float] = time.time) -> None:
        self.meta = meta
        self.clock = clock

    def record(self, event: str, *, username: str | None = None, user_id: int | None = None,
               method: str | None = None, client: str | None = None,
               duration: float | None = None, rows: int | None = None,
               outcome: str = "ok", detail: str = "", at: float | None = None) -> None:
        """Append one record (``event``: query, login, login_failed, token, password,
        admin ...)."""
        self.meta.execute(
            "INSERT INTO audit_log(at, event, user_id, username, method, client, duration,"
            " rows, outcome, detail) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (self.clock() if at is None else at, event, user_id, username, method, client,
             duration, rows, outcome[:2000], detail[:MAX_DETAIL]))

    def entries(self, *, username: str | None = None, event: str | None = None,
                since: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest records first, optionally filtered."""
        where, params = [], []
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
