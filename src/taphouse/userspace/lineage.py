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

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from taphouse.catalogue.model import TableMeta
from taphouse.catalogue.store import CatalogueStore

if TYPE_CHECKING:
    from taphouse.remotes.registry import RemoteRegistry

#: How deep provenance is followed through user tables (a cycle cannot loop).
_DEPTH = 8
#: How a restricted remote is named among sources (and in ``federation_trusted``).
REMOTE_PREFIX = "remote:"


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


__all__ = ["restricted_sources", "outside_groups", "walk", "record_restrictions",
           "REMOTE_PREFIX"]
