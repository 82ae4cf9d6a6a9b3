"""Result serialisation (streaming) and TAP_UPLOAD parsing.

Writers turn an iterator of Arrow record batches into an iterator of bytes without
holding more than one batch (FITS spools to a temporary file, as it needs the row count
first)::

    fmt = get_writer("votable")           # or a MIME type, see FORMATS
    info = ResultInfo(query=adql, limit=maxrec)
    for chunk in fmt.write(batches, columns, info):
        send(chunk)
    info.overflow, info.rows, info.error   # known once the chunks are exhausted

An error in ``batches`` before the first chunk propagates from the first ``next()``
(answer with :func:`write_error`); later, VOTable and JSON record it in the document,
the other formats re-raise it (drop the connection).
"""

from __future__ import annotations

from taphouse.formats.columns import columns_from_schema
from taphouse.formats.errors import FormatError
from taphouse.formats.registry import FORMATS, FormatDescriptor, Writer, get_writer
from taphouse.formats.result import ResultInfo
from taphouse.formats.upload import read_upload
from taphouse.formats.votable import write_error

__all__ = ["FORMATS", "FormatDescriptor", "FormatError", "ResultInfo", "Writer",
           "columns_from_schema", "get_writer", "read_upload", "write_error"]
