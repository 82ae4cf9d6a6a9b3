"""What may leave this service in a federated join.

Rows are shipped to a remote only for an upload join. They may not be when they come
from a restricted catalogue database, from a user table derived from one (its recorded
provenance, followed through user tables), or from another user's table shared with the
caller, unless the operator marked the remote trusted for that database
(``federation_trusted = REMOTE:DATABASE,...``).
"""

from __future__ import annotations

from collections.abc import Iterable

from taphouse.auth.identity import Identity
from taphouse.catalogue.model import TableMeta
from taphouse.catalogue.store import CatalogueStore

#: How deep provenance is followed through user tables (a cycle cannot loop).
_DEPTH = 8


def sensitive_sources(table: TableMeta, identity: Identity,
                      catalogue: CatalogueStore) -> set[str]:
    """The databases whose rows ``table`` holds that may not leave without trust:
    restricted catalogue databases (the table's own, or those its provenance names) and
    other users' schemas (a table shared with the caller)."""
    if table.kind in ("upload", "tap_schema"):
        return set()
    return _sources(table, identity, catalogue, 0)


def _sources(table: TableMeta, identity: Identity, catalogue: CatalogueStore,
             depth: int) -> set[str]:
    found: set[str] = set()
    db = catalogue.database(table.database)
    if db is None:
        return found
    if db.kind == "catalogue":
        if not db.public:
            found.add(db.name)
        return found
    if db.name != identity.user_schema:
        found.add(db.name)  # another user's table, shared with the caller
    if depth >= _DEPTH:
        return found
    # The rows of every query that wrote it: the latest one's provenance, and the
    # earlier ones' in its history (rows appended keep those already there).
    extra = table.extra or {}
    records = [extra.get("provenance"), *(extra.get("history") or [])]
    sources = [s for r in records if isinstance(r, dict) for s in r.get("source_tables") or []]
    for source in dict.fromkeys(sources):
        db_name, _, name = str(source).partition(".")
        source_table = catalogue.table(db_name, name)
        if source_table is None:
            source_db = catalogue.database(db_name)
            if source_db is not None and source_db.kind == "catalogue" and not source_db.public:
                found.add(source_db.name)
            continue
        found |= _sources(source_table, identity, catalogue, depth + 1)
    return found


def untrusted(sources: Iterable[str], remote: str, trusted: Iterable[str]) -> list[str]:
    """The ``sources`` the operator did not mark ``remote`` trusted for."""
    pairs = {tuple(p.strip().lower().split(":", 1)) for p in trusted if ":" in p}
    return sorted(s for s in sources if (remote.lower(), s.lower()) not in pairs)


__all__ = ["sensitive_sources", "untrusted"]
