"""The taphouse Python client, for the desktop and Jupyter (base install only).

>>> import taphouse
>>> client = taphouse.connect("https://tap.example.org")  # doctest: +SKIP
>>> client.login("ada")                                    # asks for the password
>>> t = client.query("SELECT TOP 10 * FROM gaia.dr3_bright")

The names below are imported when first used (PEP 562): the client's modules bring
pyvo and astropy (~0.8 s), which the server's command line (``taphouse.client.commands``
lives in this package) does not need for most commands.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taphouse.client.client import Client, connect
    from taphouse.client.compute import ComputeError, ComputeJob, RunResult, job_args
    from taphouse.client.errors import (
        AuthError,
        ClientError,
        MaxrecWarning,
        NotFoundError,
        QueryAborted,
        QueryError,
        QueryTimeout,
        ServerError,
    )
    from taphouse.client.jobs import Job
    from taphouse.client.models import Column, Database, Listing, Quota, TableInfo, UserTable
    from taphouse.client.tokens import TokenStore
    from taphouse.client.userspace import UserSpace
    from taphouse.client.workspace import Workspace

#: Public name -> the module of this package that defines it.
_HOMES = {
    "Client": "client", "connect": "client",
    "ComputeError": "compute", "ComputeJob": "compute", "RunResult": "compute",
    "job_args": "compute",
    "AuthError": "errors", "ClientError": "errors", "MaxrecWarning": "errors",
    "NotFoundError": "errors", "QueryAborted": "errors", "QueryError": "errors",
    "QueryTimeout": "errors", "ServerError": "errors",
    "Job": "jobs",
    "Column": "models", "Database": "models", "Listing": "models", "Quota": "models",
    "TableInfo": "models", "UserTable": "models",
    "TokenStore": "tokens", "UserSpace": "userspace", "Workspace": "workspace",
}

__all__ = ["connect", "Client", "ComputeError", "ComputeJob", "RunResult", "job_args",
           "Workspace", "Job", "UserSpace", "TokenStore", "Database", "TableInfo", "UserTable",
           "Column", "Quota", "Listing", "ClientError", "AuthError", "NotFoundError",
           "ServerError", "QueryError", "QueryAborted", "QueryTimeout", "MaxrecWarning"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
