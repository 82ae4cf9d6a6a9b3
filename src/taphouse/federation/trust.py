"""What may leave this service in a federated join.

Rows are shipped to a remote only for an upload join. They may not be when they come
from a restricted catalogue database, from a remote the operator restricted to groups
(its rows were fetched with the operator's credentials), from a user table derived from
either (its recorded provenance — every query that wrote it — followed through user
tables), or from another user's table shared with the caller, unless the operator
marked the remote trusted for that source (``federation_trusted = REMOTE:DATABASE,...``;
a restricted remote is the source ``remote:NAME``).

The walk through provenance is :mod:`taphouse.userspace.lineage`'s (shares use it too).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from taphouse.auth.identity import Identity
from taphouse.catalogue.model import TableMeta
from taphouse.catalogue.store import CatalogueStore
from taphouse.userspace.lineage import REMOTE_PREFIX, walk

if TYPE_CHECKING:
    from taphouse.remotes.registry import RemoteRegistry


def sensitive_sources(table: TableMeta, identity: Identity, catalogue: CatalogueStore,
                      remotes: RemoteRegistry | None = None) -> set[str]:
    """The sources whose rows ``table`` holds that may not leave without trust:
    restricted catalogue databases and restricted remotes (``remote:NAME``) (the table's
    own, or those its provenance names) and other users' schemas (a table shared with
    the caller). ``remotes``: the :class:`~taphouse.remotes.RemoteRegistry`."""
    if table.kind in ("upload", "tap_schema"):
        return set()
    found: dict[str, frozenset[str]] = {}
    others: set[str] = set()
    walk(table, catalogue, remotes, found, others, identity.user_schema)
    return set(found) | others


def described_sources(schemas: Iterable[str], identity: Identity,
                      catalogue: CatalogueStore) -> set[str]:
    """The sources TAP_SCHEMA's rows describe for the caller that may not leave without
    trust: it lists every table the caller sees (``schemas``: the query's scope), those
    of restricted catalogue databases and of other users' schemas shared with them
    included — their names, descriptions and columns."""
    found: set[str] = set()
    for name in schemas:
        db = catalogue.database(name)
        if db is None:
            continue
        if db.kind == "catalogue" and not db.public:
            found.add(db.name)
        elif db.kind == "user" and db.name != identity.user_schema:
            found.add(db.name)
    return found


def untrusted(sources: Iterable[str], remote: str, trusted: Iterable[str]) -> list[str]:
    """The ``sources`` the operator did not mark ``remote`` trusted for."""
    pairs = {tuple(p.strip().lower().split(":", 1)) for p in trusted if ":" in p}
    return sorted(s for s in sources if (remote.lower(), s.lower()) not in pairs)


__all__ = ["described_sources", "sensitive_sources", "untrusted", "REMOTE_PREFIX"]
