"""Imports every package that registers metadata migrations (see ``taphouse.metadata``)."""

from taphouse.catalogue import schema as _catalogue_schema  # noqa: F401
