"""Which backend runs a query: each catalogue database records the backend that serves
it (``DatabaseMeta.backend``: ``duckdb``, ``postgres``, ``spark`` ...) and the name of
that backend's connection config (``backend_ref``). :class:`BackendRouter` holds one
backend per (kind, ref), made on first use by the factory registered for the kind.

A query runs whole on one backend: the one serving every stored table it reads.
Per-request tables (TAP_UPLOAD, TAP_SCHEMA) and user tables live on the default
backend. A query over tables of two backends is refused with an error naming them
(:class:`MixedBackends`) until the federation planner splits such queries.

Use::

    router = BackendRouter(default=duckdb_engine)
    router.register("postgres", lambda ref: PostgresBackend.from_config(ref, ...))
    lease = router.lease()                 # Scope(relation=lease.relation)
    backend = router.choose(tables)        # after translation, for tr.tables
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from taphouse.catalogue.model import TableMeta
from taphouse.engine.backend import Backend, Lease
from taphouse.errors import ServiceError

#: The kind of the embedded default backend.
DEFAULT_KIND = "duckdb"

#: Makes the backend of one connection config (its ``backend_ref``; None for none).
BackendFactory = Callable[[str | None], Backend]

#: Table kinds that live on the default backend whatever they are joined with.
_LOCAL_KINDS = ("upload", "tap_schema", "user")


class BackendUnavailable(ServiceError):
    """A database's backend is not configured on this server, or cannot be reached."""


class MixedBackends(ServiceError):
    """A query reads tables that live on different backends."""


def backend_key(table: TableMeta) -> tuple[str, str | None]:
    """(kind, ref) of the backend that holds ``table``."""
    if table.kind in _LOCAL_KINDS or table.backend == DEFAULT_KIND:
        return (DEFAULT_KIND, None)
    return (table.backend, table.backend_ref)


def movable(table: TableMeta) -> bool:
    """Whether a table of the default backend may be copied to another backend for one
    query (uploads, TAP_SCHEMA, user tables; never a catalogue table)."""
    return table.kind in _LOCAL_KINDS


def describe_key(key: tuple[str, str | None]) -> str:
    kind, ref = key
    return kind if ref is None else f"{kind} ({ref})"


class BackendRouter:
    """The backends of one server: the default and those databases name."""

    def __init__(self, default: Backend) -> None:
        self.default = default
        self._factories: dict[str, BackendFactory] = {}
        self._backends: dict[tuple[str, str | None], Backend] = {(DEFAULT_KIND, None): default}
        self._lock = threading.Lock()

    def register(self, kind: str, factory: BackendFactory) -> None:
        """Serve databases whose backend is ``kind`` with backends made by ``factory``
        (called once per connection config, on first use)."""
        if kind == DEFAULT_KIND:
            raise ValueError("the default backend is given to the constructor")
        self._factories[kind] = factory

    def kinds(self) -> tuple[str, ...]:
        """The backend kinds this server can serve."""
        return (DEFAULT_KIND, *self._factories)

    def backend(self, key: tuple[str, str | None]) -> Backend:
        """The backend of (kind, ref), made on first use."""
        with self._lock:
            found = self._backends.get(key)
            if found is not None:
                return found
            factory = self._factories.get(key[0])
            if factory is None:
                raise BackendUnavailable(
                    f"this server has no {key[0]!r} backend configured, which a database"
                    " in the query needs; the operator can register one")
            try:
                made = factory(key[1])
            except ServiceError as exc:
                raise BackendUnavailable(exc.message, exc.status) from None
            except ImportError as exc:
                raise BackendUnavailable(
                    f"the {key[0]!r} backend needs the Python package {exc.name!r}, which"
                    " is not installed on this server (pip install 'taphouse[postgres]')",
                    503) from None
            self._backends[key] = made
            return made

    def backend_for(self, table: TableMeta) -> Backend:
        return self.backend(backend_key(table))

    def choose(self, tables: Iterable[TableMeta]) -> Backend:
        """The one backend that runs a query over ``tables``.

        Tables that live with the default backend but may be copied for one query
        (uploads, TAP_SCHEMA, user tables: :func:`movable`) go to the backend of the
        others, whose ``cursor`` loads them as temporary tables (with a row cap).
        Raises :class:`MixedBackends` naming the tables of each backend when catalogue
        tables of two backends meet.
        """
        tables = list(tables)
        groups: dict[tuple[str, str | None], list[str]] = {}
        for t in tables:
            groups.setdefault(backend_key(t), []).append(f"{t.database}.{t.name}")
        others = [k for k in groups if k[0] != DEFAULT_KIND]
        if len(others) == 1 and all(movable(t) for t in tables
                                    if backend_key(t)[0] == DEFAULT_KIND):
            return self.backend(others[0])
        if len(groups) > 1:
            parts = "; ".join(f"{', '.join(sorted(set(names)))} on {describe_key(k)}"
                              for k, names in sorted(groups.items(),
                                                     key=lambda kv: (kv[0][0], kv[0][1] or "")))
            raise MixedBackends(
                "the query joins tables that live on different backends, which cannot"
                f" run as one query yet: {parts}; query them separately (or store one"
                " side in your user space first)")
        if not groups:
            return self.default
        return self.backend(next(iter(groups)))

    def lease(self) -> RoutedLease:
        """A lease for one request over whichever backends its tables live on."""
        return RoutedLease(self)

    def close(self) -> None:
        """Close the backends this router made (not the default)."""
        with self._lock:
            made = [b for k, b in self._backends.items() if k[0] != DEFAULT_KIND]
            self._backends = {(DEFAULT_KIND, None): self.default}
        for b in made:
            close = getattr(b, "close", None)
            if close is not None:
                close()


class RoutedLease:
    """A :class:`~taphouse.engine.backend.Lease` that asks each table's backend."""

    def __init__(self, router: BackendRouter) -> None:
        self._router = router
        self._leases: dict[tuple[str, str | None], Lease] = {}
        self._lock = threading.Lock()

    def lease_of(self, key: tuple[str, str | None]) -> Lease:
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:
                lease = self._router.backend(key).lease()
                self._leases[key] = lease
            return lease

    def relation(self, table: TableMeta) -> str:
        return self.lease_of(backend_key(table)).relation(table)

    def release(self) -> None:
        with self._lock:
            leases = list(self._leases.values())
            self._leases = {}
        for lease in leases:
            lease.release()
