"""Storage safety: the data directory's layout, permissions and ``tmp/`` areas
(:mod:`~taphouse.storage.datadir`), full-disk errors (:mod:`~taphouse.storage.errors`),
and online backups (:mod:`~taphouse.storage.backup`).

Table versions themselves live in :mod:`taphouse.catalogue.store`; the metadata
database and its migrations in :mod:`taphouse.metadata`.
"""

from taphouse.storage.errors import StorageFull, is_disk_full

__all__ = ["StorageFull", "is_disk_full"]
