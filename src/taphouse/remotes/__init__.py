"""Remote TAP services as sources: registration, cached metadata and health
(:mod:`.registry`), a guarded TAP client (:mod:`.client`: sync and async queries,
VOTable/Parquet answers as Arrow, OVERFLOW kept), and their HTTP endpoints
(:mod:`.routes`). Every request to a remote goes through :mod:`taphouse.outbound`."""

from taphouse.remotes.answers import RemoteAnswer
from taphouse.remotes.client import RemoteTap, RetryPolicy
from taphouse.remotes.errors import (
    RemoteError,
    RemoteNotFound,
    RemoteOverflow,
    RemoteQueryFailed,
    RemoteUnavailable,
)
from taphouse.remotes.model import Capabilities, Remote, RemoteColumn, RemoteTable
from taphouse.remotes.registry import RemoteConfig, RemoteRegistry

__all__ = ["RemoteAnswer", "RemoteTap", "RetryPolicy", "RemoteError", "RemoteNotFound",
           "RemoteOverflow", "RemoteQueryFailed", "RemoteUnavailable", "Capabilities",
           "Remote", "RemoteColumn", "RemoteTable", "RemoteConfig", "RemoteRegistry"]
