"""Job records in the metadata database.

Every phase change is one conditional ``UPDATE ... WHERE phase IN (...)``, so a worker
finishing a job and a user aborting it cannot both win: the second finds the phase
moved on and changes nothing.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from taphouse.jobs.model import Job, JobFailure, JobResult, owner_key
from taphouse.metadata import MetadataDB

_COLUMNS = ("id", "kind", "owner", "phase", "run_id", "params", "parts", "workspace",
            "created", "queued", "started", "ended", "quote", "execution_duration",
            "destruction", "error", "result_file", "result_mime", "result_size",
            "result_rows", "result_overflow", "owner_id", "budget_key", "files_bytes")


class JobStore:
    """Reads and writes :class:`~taphouse.jobs.model.Job` rows."""

    def __init__(self, meta: MetadataDB) -> None:
        self.meta = meta

    # --- reading -------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        row = self.meta.query_one("SELECT * FROM jobs WHERE id=?", (job_id,))
        return _job(row) if row else None

    def list(self, owner: int | None, *, phases: Sequence[str] = (), after: float | None = None,
             last: int | None = None) -> builtins.list[Job]:
        """Jobs of the user with id ``owner`` (``None``: the anonymous jobs), oldest
        first; with ``last`` the ``last`` most recently created, newest first."""
        sql = "SELECT * FROM jobs WHERE owner_id IS ?"
        args: list[Any] = [owner]
        if phases:
            sql += f" AND phase IN ({','.join('?' * len(phases))})"
            args += list(phases)
        if after is not None:
            sql += " AND created > ?"
            args.append(after)
        if last is not None:
            sql += " ORDER BY created DESC, rowid DESC LIMIT ?"
            args.append(last)
        else:
            sql += " ORDER BY created, rowid"
        return [_job(r) for r in self.meta.query(sql, args)]

    def counts(self) -> builtins.list[tuple[str, str, int]]:
        """(kind, phase, number of jobs) of every kind and phase with jobs."""
        rows = self.meta.query("SELECT kind, phase, COUNT(*) AS n FROM jobs"
                               " GROUP BY kind, phase ORDER BY kind, phase")
        return [(r["kind"], r["phase"], int(r["n"])) for r in rows]

    def queued(self, kind: str | None = None) -> builtins.list[tuple[str, str]]:
        """(id, budget key) of every QUEUED job (of ``kind``, when given), in queue
        order."""
        sql = "SELECT id, owner_id, budget_key FROM jobs WHERE phase='QUEUED'"
        args: tuple[str, ...] = ()
        if kind is not None:
            sql += " AND kind=?"
            args = (kind,)
        rows = self.meta.query(sql + " ORDER BY queued, rowid", args)
        return [(r["id"], r["budget_key"] or owner_key(r["owner_id"])) for r in rows]

    def kept(self, key: str) -> tuple[int, int]:
        """How many jobs, and how many bytes of job files, ``key`` keeps."""
        row = self.meta.query_one("SELECT COUNT(*), COALESCE(SUM(files_bytes), 0) FROM jobs"
                                  " WHERE budget_key=?", (key,))
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def ids_of_owner(self, owner: int) -> builtins.list[str]:
        return [r["id"] for r in self.meta.query("SELECT id FROM jobs WHERE owner_id=?",
                                                 (owner,))]

    def ids_in_phase(self, phase: str) -> builtins.list[str]:
        return [r["id"] for r in self.meta.query("SELECT id FROM jobs WHERE phase=?", (phase,))]

    def expired(self, now: float) -> builtins.list[str]:
        rows = self.meta.query("SELECT id FROM jobs WHERE destruction <= ?", (now,))
        return [r["id"] for r in rows]

    def all_ids(self) -> set[str]:
        return {r["id"] for r in self.meta.query("SELECT id FROM jobs")}

    # --- writing -------------------------------------------------------------------
    def insert(self, job: Job) -> None:
        values = _row(job)
        with self.meta.transaction() as con:
            con.execute(f"INSERT INTO jobs ({','.join(_COLUMNS)})"
                        f" VALUES ({','.join('?' * len(_COLUMNS))})",
                        [values[c] for c in _COLUMNS])

    def update(self, job_id: str, *, from_phases: Iterable[str] | None = None,
               **fields: Any) -> bool:
        """Set ``fields`` (names of :class:`Job` attributes); only if the job is in one
        of ``from_phases`` when given. Returns whether a row changed."""
        values = _fields(fields)
        sql = f"UPDATE jobs SET {', '.join(f'{k}=?' for k in values)} WHERE id=?"
        args = [*values.values(), job_id]
        if from_phases is not None:
            phases = list(from_phases)
            sql += f" AND phase IN ({','.join('?' * len(phases))})"
            args += phases
        with self.meta.transaction() as con:
            return con.execute(sql, args).rowcount > 0

    def delete(self, job_id: str) -> bool:
        with self.meta.transaction() as con:
            return con.execute("DELETE FROM jobs WHERE id=?", (job_id,)).rowcount > 0


def _fields(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in {"params", "parts"}:
            out[name] = json.dumps(value)
        elif name == "workspace":
            out[name] = None if value is None else json.dumps(list(value))
        elif name == "error":
            out[name] = None if value is None else json.dumps(asdict(value))
        elif name == "result":
            r: JobResult | None = value
            out.update(result_file=r and r.file, result_mime=r and r.mime,
                       result_size=r and r.size, result_rows=r and r.rows,
                       result_overflow=None if r is None else int(r.overflow))
        elif name in _COLUMNS and name != "id":
            out[name] = value
        else:
            raise TypeError(f"unknown job field {name!r}")
    return out


def _row(job: Job) -> dict[str, Any]:
    values = _fields({k: getattr(job, k) for k in (
        "kind", "owner", "phase", "run_id", "params", "parts", "workspace", "created",
        "queued", "started", "ended", "quote", "execution_duration", "destruction", "error",
        "result", "owner_id", "budget_key", "files_bytes")})
    values["id"] = job.id
    return values


def _job(row: sqlite3.Row) -> Job:
    result = None
    if row["result_file"]:
        result = JobResult(file=row["result_file"], mime=row["result_mime"],
                           size=row["result_size"] or 0, rows=row["result_rows"],
                           overflow=bool(row["result_overflow"]))
    error = JobFailure(**json.loads(row["error"])) if row["error"] else None
    return Job(id=row["id"], kind=row["kind"], owner=row["owner"], phase=row["phase"],
               run_id=row["run_id"], params=json.loads(row["params"]),
               parts=json.loads(row["parts"]),
               workspace=None if row["workspace"] is None else json.loads(row["workspace"]),
               created=row["created"], queued=row["queued"], started=row["started"],
               ended=row["ended"], quote=row["quote"],
               execution_duration=row["execution_duration"], destruction=row["destruction"],
               error=error, result=result, owner_id=row["owner_id"],
               budget_key=row["budget_key"], files_bytes=row["files_bytes"] or 0)
