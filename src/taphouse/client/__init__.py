"""The taphouse Python client, for the desktop and Jupyter (base install only).

>>> import taphouse
>>> client = taphouse.connect("https://tap.example.org")  # doctest: +SKIP
>>> client.login("ada")                                    # asks for the password
>>> t = client.query("SELECT TOP 10 * FROM gaia.dr3_bright")
"""

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

__all__ = ["connect", "Client", "ComputeError", "ComputeJob", "RunResult", "job_args", "Workspace", "Job", "UserSpace", "TokenStore", "Database",
           "TableInfo", "UserTable", "Column", "Quota", "Listing", "ClientError", "AuthError",
           "NotFoundError", "ServerError", "QueryError", "QueryAborted", "QueryTimeout",
           "MaxrecWarning"]
