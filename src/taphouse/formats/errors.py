"""The one error class of :mod:`taphouse.formats`."""

from __future__ import annotations

from taphouse.errors import ServiceError


class FormatError(ServiceError):
    """A result could not be written or an upload could not be read; the message says why."""


class ResultTooLarge(FormatError):
    """The result would exceed ``ResultInfo.max_bytes`` in a format that cannot say it
    was cut (CSV, TSV, FITS): raised before the first byte when the size is known,
    otherwise part way (the caller then aborts the stream)."""
