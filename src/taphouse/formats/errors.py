"""The one error class of :mod:`taphouse.formats`."""

from __future__ import annotations


class FormatError(Exception):
    """A result could not be written or an upload could not be read; the message says why."""
