"""taphouse: bring analysis code to astronomical catalogue data.

The base install is the client: ``taphouse.connect(url)`` returns a
:class:`taphouse.client.Client`. The server lives behind the ``taphouse[server]`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taphouse.client import Client

__version__ = "0.1.0"


def connect(url: str | None = None, **kwargs: Any) -> Client:
    """Connect to a taphouse server; see :func:`taphouse.client.connect`."""
    from taphouse.client import connect as _connect

    return _connect(url, **kwargs)


__all__ = ["connect", "__version__"]
