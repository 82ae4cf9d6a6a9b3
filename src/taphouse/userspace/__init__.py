"""User space: one schema ``user_<name>`` per user for stored query results and uploaded
tables, with quotas, read sharing and workspaces (see :mod:`taphouse.userspace.space`)."""

from taphouse.userspace.errors import (
    QuotaExceeded,
    TableConflict,
    UnknownTable,
    UserSpaceError,
    WriteForbidden,
)
from taphouse.userspace.space import Usage, UserSpace
from taphouse.userspace.workspaces import Workspace, Workspaces

__all__ = ["QuotaExceeded", "TableConflict", "UnknownTable", "Usage", "UserSpace",
           "UserSpaceError", "Workspace", "Workspaces", "WriteForbidden"]
