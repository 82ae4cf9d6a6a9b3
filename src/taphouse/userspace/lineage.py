"""Where a user table's rows came from, and whom they are for.

A user table's provenance (``TableMeta.extra``: ``provenance``, the latest query that
wrote it, and ``history``, the earlier ones: rows appended keep those already there)
names the tables each query read and the remote that answered it. Followed through user
tables, it gives the restricted sources whose rows the table holds: catalogue databases
that are not public, and remotes the operator restricted to groups (``remote:NAME``:
their rows were fetched with the operator's credentials).

Sharing (:mod:`taphouse.api.routes`) refuses a grantee outside a restricted source's
groups, and a share made before such rows arrived reads nothing for those outside
(:class:`taphouse.userspace.shares.Shares`); the federation never uploads them to an
untrusted remote (:mod:`taphouse.federation.trust`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from taphouse.catalogue.model import TableMeta
from taphouse.catalogue.store import CatalogueStore
from taphouse.userspace.names import MYDB

if TYPE_CHECKING:
    from taphouse.remotes.registry import RemoteRegistry

#: How deep provenance is followed through user tables (a cycle cannot loop).
_DEPTH = 8
#: How a restricted remote is named among sources (and in ``federation_trusted``).
REMOTE_PREFIX = "remote:"
#: The source recorded for rows whose restricted sources cannot be known any more (a
#: table written before they were recorded, from a table or database dropped since):
#: readable by no group, so never shared nor uploaded to a remote not trusted for it.
UNKNOWN_SOURCE = "restricted-unknown"


def restricted_sources(table: TableMeta, catalogue: CatalogueStore,
                       remotes: RemoteRegistry | None = None) -> dict[str, frozenset[str]]:
    """``{source: groups that may read it}`` of the restricted sources whose rows
    ``table`` holds: catalogue databases not public (by name) and remotes the operator
    restricted to groups (``remote:NAME``), its own or through its provenance."""
    if table.kind in ("upload", "tap_schema"):
        return {}
    found: dict[str, frozenset[str]] = {}
    walk(table, catalogue, remotes, found, set(), None)
    return found


def outside_groups(sources: dict[str, frozenset[str]], groups: Iterable[str], *,
                   is_admin: bool = False) -> list[str]:
    """Those of ``sources`` (:func:`restricted_sources`) that an account in ``groups``
    may not read (an administrator reads everything)."""
    if is_admin:
        return []
    mine = set(groups)
    return sorted(s for s, allowed in sources.items() if not mine & allowed)


def walk(table: TableMeta, catalogue: CatalogueStore, remotes: RemoteRegistry | None,
         found: dict[str, frozenset[str]], others: set[str], own_schema: str | None,
         depth: int = 0) -> None:
    """Add to ``found`` the restricted sources of ``table`` (source -> groups that may
    read it) and to ``others`` the user schemas other than ``own_schema`` it reads."""
    db = catalogue.database(table.database)
    if db is None:
        return
    if db.kind == "catalogue":
        _catalogue_source(db, catalogue, found)
        return
    if own_schema is not None and db.name != own_schema:
        others.add(db.name)  # another user's table, shared with the caller
    if depth >= _DEPTH:
        return
    # The rows of every query that wrote it: the latest one's provenance, and the
    # earlier ones' in its history (rows appended keep those already there).
    extra = table.extra or {}
    records = [r for r in [extra.get("provenance"), *(extra.get("history") or [])]
               if isinstance(r, dict)]
    for record in records:
        remote = record.get("remote")
        if isinstance(remote, dict):
            _remote_source(remote, remotes, found)
        recorded = record.get("restricted")
        if isinstance(recorded, dict):
            for source, groups in recorded.items():
                _recorded_source(str(source), groups, catalogue, remotes, found)
    sources = [s for r in records for s in r.get("source_tables") or []]
    for source in dict.fromkeys(sources):
        db_name, _, name = str(source).partition(".")
        source_table = catalogue.table(db_name, name)
        if source_table is None:
            source_db = catalogue.database(db_name)
            if source_db is not None and source_db.kind == "catalogue":
                _catalogue_source(source_db, catalogue, found)
            continue
        walk(source_table, catalogue, remotes, found, others, own_schema, depth + 1)


def record_restrictions(catalogue: CatalogueStore, record: dict[str, Any]
                        ) -> dict[str, list[str]]:
    """The restricted sources of the tables a query read (``record["source_tables"]``),
    with their groups, as they are when its result is written: kept in the result's
    provenance (``restricted``), they still count when a source table is dropped later
    (its own provenance, which the walk followed, goes with it)."""
    found: dict[str, frozenset[str]] = {}
    for source in record.get("source_tables") or []:
        db_name, _, name = str(source).partition(".")
        table = catalogue.table(db_name, name)
        if table is not None:
            walk(table, catalogue, None, found, set(), None)
    for name in record.get("describes") or []:  # a result of TAP_SCHEMA's rows
        db = catalogue.database(str(name))
        if db is not None and db.kind == "catalogue":
            _catalogue_source(db, catalogue, found)
    remote = record.get("remote")
    if isinstance(remote, dict):
        _remote_source(remote, None, found)
    return {s: sorted(g) for s, g in sorted(found.items())}


def _recorded_source(source: str, groups: Any, catalogue: CatalogueStore,
                     remotes: RemoteRegistry | None, found: dict[str, frozenset[str]]) -> None:
    """A restricted source recorded when a table was written: as it is now when it still
    exists (a database made public since is public), as recorded when it is gone."""
    if source in found:
        return
    recorded = frozenset(str(g) for g in groups or [])
    if source.startswith(REMOTE_PREFIX):
        _remote_source({"name": source[len(REMOTE_PREFIX):], "groups": sorted(recorded)},
                       remotes, found)
        return
    db = catalogue.database(source)
    if db is None:
        found[source] = recorded
    elif db.kind == "catalogue":
        _catalogue_source(db, catalogue, found)


def _catalogue_source(db: Any, catalogue: CatalogueStore,
                      found: dict[str, frozenset[str]]) -> None:
    if db.public or db.name in found:
        return
    from taphouse.auth.database_access import groups_of_database

    found[db.name] = groups_of_database(catalogue.meta, db.database_id) \
        if db.database_id is not None else frozenset()


def _remote_source(record: dict[str, Any], remotes: RemoteRegistry | None,
                   found: dict[str, frozenset[str]]) -> None:
    """A remote that answered a query writing the table: restricted when the operator
    restricted it to groups, now or when the rows were fetched (``groups`` recorded)."""
    name = str(record.get("name") or "")
    if not name or record.get("owner_id") is not None:
        return  # a user's own remote, their own credentials: theirs to share
    groups = frozenset(str(g) for g in record.get("groups") or [])
    current = remotes.get(name) if remotes is not None else None
    if current is not None and current.groups:
        groups = frozenset(current.groups)
    if groups:
        found[REMOTE_PREFIX + name] = groups


def backfill_restrictions(con: sqlite3.Connection) -> None:
    """Migration: record the restricted sources of user tables written before they were
    recorded (provenance records without ``restricted``), so that they count once a
    source table or database is gone. Each such record gets the restricted sources its
    source tables (or, failing those, the tables its ADQL or its job's query names)
    lead to, followed through user tables; a source that is gone, a query that names no
    table it can resolve, or a table without any provenance gets :data:`UNKNOWN_SOURCE`.
    Uploaded files and rows written through the API (no query) have no sources."""
    dbs = {r[1]: (r[0], r[2], bool(r[3])) for r in con.execute(
        "SELECT id, name, kind, public FROM databases")}
    groups: dict[int, list[str]] = {}
    for db_id, group in con.execute("SELECT dg.database_id, g.name FROM database_groups dg"
                                    " JOIN groups g ON g.id = dg.group_id"):
        groups.setdefault(db_id, []).append(group)
    tables: dict[tuple[str, str], tuple[int, dict[str, Any], str | None]] = {}
    for version_id, db, name, text, job_id in con.execute(
            "SELECT v.id, d.name, t.name, v.meta, ut.job_id FROM tables t"
            " JOIN databases d ON d.id = t.database_id"
            " JOIN table_versions v ON v.id = t.current_version_id"
            " LEFT JOIN user_tables ut ON ut.table_id = t.id"
            " WHERE d.kind IN ('user', 'archived')"):
        tables[(db, name.lower())] = (version_id, json.loads(text), job_id)
    found: dict[tuple[str, str], dict[str, list[str]]] = {}

    def job_query(job_id: str | None) -> str | None:
        if not job_id:
            return None
        row = con.execute("SELECT params FROM jobs WHERE id = ?", (job_id,)).fetchone()
        try:
            params = json.loads(row[0]) if row else {}
        except ValueError:
            return None
        query = params.get("query") if isinstance(params, dict) else None
        return str(query) if query else None

    def named_tables(adql: str, schema: str) -> list[str] | None:
        from sqlglot import exp

        from taphouse.adql.translator import parse

        try:
            tree = parse(adql)
        except Exception:  # noqa: BLE001  (any text that no longer parses)
            return None
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        names = []
        for t in tree.find_all(exp.Table):
            db, name = t.db.lower(), t.name.lower()
            if not db:
                if name in ctes:
                    continue
                return None  # unqualified: cannot be resolved now
            names.append(f"{schema if db == MYDB else db}.{name}")
        return names

    def add(into: dict[str, set[str]], sources: dict[str, list[str]] | None) -> None:
        if sources is None:
            into.setdefault(UNKNOWN_SOURCE, set())
            return
        for source, allowed in sources.items():
            into.setdefault(source, set()).update(allowed)

    def record_sources(schema: str, record: dict[str, Any], job_id: str | None,
                       depth: int) -> dict[str, list[str]]:
        out: dict[str, set[str]] = {}
        remote = record.get("remote")
        if isinstance(remote, dict) and remote.get("owner_id") is None and remote.get(
                "groups") and remote.get("name"):
            out[REMOTE_PREFIX + str(remote["name"])] = {str(g) for g in remote["groups"]}
        names = record.get("source_tables")
        if not isinstance(names, list):
            adql = record.get("adql") or job_query(job_id)
            if adql:
                names = named_tables(str(adql), schema)
                if names is None:
                    add(out, None)
            elif "uploaded" not in record and "mode" not in record:
                add(out, None)  # no query, no file, no API write: the rows' origin unknown
        for source in names or []:
            db_name, _, name = str(source).lower().partition(".")
            db = dbs.get(db_name)
            if db is None:
                add(out, None)  # a database dropped since
            elif db[1] == "catalogue":
                if not db[2]:
                    add(out, {db_name: groups.get(db[0], [])})
            elif db[1] in ("user", "archived"):
                add(out, table_sources(db_name, name, depth + 1))
        return {s: sorted(g) for s, g in sorted(out.items())}

    def table_sources(db: str, name: str, depth: int) -> dict[str, list[str]] | None:
        key = (db, name)
        if key in found:
            return found[key]  # (a cycle is cut at the table being walked: {} so far)
        if key not in tables or depth > _DEPTH:
            return None
        found[key] = {}
        _, meta, job_id = tables[key]
        extra = meta.get("extra") or {}
        records = [r for r in [extra.get("provenance"), *(extra.get("history") or [])]
                   if isinstance(r, dict)]
        out: dict[str, set[str]] = {}
        if not records:
            add(out, None)
        for record in records:
            recorded = record.get("restricted")
            add(out, recorded if isinstance(recorded, dict)
                else record_sources(db, record, job_id, depth))
        result = {s: sorted(g) for s, g in sorted(out.items())}
        found[key] = result
        return result

    for (db, _name), (version_id, meta, job_id) in tables.items():
        extra: dict[str, Any] = meta["extra"] if isinstance(meta.get("extra"), dict) else {}
        records = [r for r in [extra.get("provenance"), *(extra.get("history") or [])]
                   if isinstance(r, dict)]
        changed = False
        if not records:
            extra["provenance"] = {"restricted": {UNKNOWN_SOURCE: []},
                                   "note": "written before its sources were recorded"}
            changed = True
        for record in records:
            if "restricted" in record:
                continue
            sources = record_sources(db, record, job_id, 0)
            if sources:
                record["restricted"] = sources
                changed = True
        if changed:
            meta["extra"] = extra
            con.execute("UPDATE table_versions SET meta = ? WHERE id = ?",
                        (json.dumps(meta), version_id))


__all__ = ["restricted_sources", "outside_groups", "walk", "record_restrictions",
           "backfill_restrictions", "REMOTE_PREFIX", "UNKNOWN_SOURCE"]
