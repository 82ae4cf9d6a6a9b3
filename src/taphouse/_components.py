"""Imports every package that registers metadata migrations (see ``taphouse.metadata``)."""

from taphouse import secrets as _secrets  # noqa: F401
from taphouse.auth import schema as _auth_schema  # noqa: F401
from taphouse.catalogue import schema as _catalogue_schema  # noqa: F401
from taphouse.jobs import schema as _jobs_schema  # noqa: F401
from taphouse.remotes import schema as _remotes_schema  # noqa: F401
from taphouse.userspace import schema as _userspace_schema  # noqa: F401
