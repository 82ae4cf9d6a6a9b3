"""Streaming VOTable 1.4 documents (BINARY2 or TABLEDATA) and DALI error documents.

Document shape (DALI 1.1, TAP 1.1)::

    <VOTABLE version="1.4"><RESOURCE type="results">
      <INFO name="QUERY_STATUS" value="OK"/> <INFO name="QUERY" value="..."/> ...
      <TABLE name="result"> <FIELD .../>... <DATA>...</DATA> </TABLE>
      <INFO name="QUERY_STATUS" value="OVERFLOW"/>   (only when MAXREC cut the rows)
      <INFO name="QUERY_STATUS" value="ERROR">msg</INFO>  (only when the rows failed)
    </RESOURCE></VOTABLE>
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterable, Iterator

import pyarrow as pa

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats.binary2 import Binary2Encoder
from taphouse.formats.columns import Field, check_columns, field_for, promote_unicode
from taphouse.formats.result import ResultInfo, limit_batches
from taphouse.formats.tabledata import TabledataEncoder

VOTABLE_NS = "http://www.ivoa.net/xml/VOTable/v1.3"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
# Bytes of BINARY2 rows collected before a base64 chunk is emitted (a multiple of 3).
_CHUNK = 3 * 512 * 1024
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                               "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _clean(text: str) -> str:
    # Characters XML 1.0 cannot carry at all (not even as references).
    return "".join(c if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
                   or c > "\uffff" else "\ufffd" for c in text)


def attr(value: object) -> str:
    """An XML attribute value, quoted and escaped."""
    return '"' + _clean(str(value)).translate(_ATTR_ESCAPES) + '"'


def text(value: object) -> str:
    """XML character data, escaped."""
    return _clean(str(value)).translate(_TEXT_ESCAPES)


def info_xml(name: str, value: object, content: str | None = None) -> str:
    if content is None:
        return f"<INFO name={attr(name)} value={attr(value)}/>\n"
    return f"<INFO name={attr(name)} value={attr(value)}>{text(content)}</INFO>\n"


def field_xml(meta: ColumnMeta) -> str:
    """The ``<FIELD>`` element of one column."""
    parts = [f"<FIELD name={attr(meta.name)} datatype={attr(meta.datatype)}"]
    for key in ("arraysize", "xtype", "unit", "ucd", "utype"):
        value = getattr(meta, key)
        if value:
            parts.append(f" {key}={attr(value)}")
    if meta.datatype in ("char", "unicodeChar") and not meta.arraysize:
        parts.append(' arraysize="*"')
    if meta.description:
        parts.append(f">\n  <DESCRIPTION>{text(meta.description)}</DESCRIPTION>\n</FIELD>\n")
    else:
        parts.append("/>\n")
    return "".join(parts)


def document_start() -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<VOTABLE version="1.4" xmlns="{VOTABLE_NS}" xmlns:xsi="{_XSI}" '
            f'xsi:schemaLocation="{VOTABLE_NS} {VOTABLE_NS}">\n'
            '<RESOURCE type="results">\n')


def table_header(fields: list[Field], info: ResultInfo) -> str:
    """Everything from ``<VOTABLE>`` up to the last ``<FIELD>`` of the result table."""
    out = [document_start(), info_xml("QUERY_STATUS", "OK")]
    if info.query is not None:
        out.append(info_xml("QUERY", info.query))
    out.extend(info_xml(name, value) for name, value in info.infos)
    out.append(f"<TABLE name={attr(info.table_name)}>\n")
    out.extend(field_xml(f.meta) for f in fields)
    return "".join(out)


def trailer(info: ResultInfo, warnings: Iterable[str] = ()) -> str:
    """``</TABLE>``, the trailing QUERY_STATUS when it is not OK, and the document end."""
    out = ["</TABLE>\n"]
    if info.error is not None:
        out.append(info_xml("QUERY_STATUS", "ERROR", info.error))
    elif info.overflow:
        out.append(info_xml("QUERY_STATUS", "OVERFLOW"))
    out.extend(info_xml("WARNING", w) for w in warnings)
    out.append("</RESOURCE>\n</VOTABLE>\n")
    return "".join(out)


def write_error(message: str, *, query: str | None = None, line: int | None = None,
                column: int | None = None) -> bytes:
    """A DALI error document: ``INFO name="QUERY_STATUS" value="ERROR"`` with the message.

    Parameters
    ----------
    message
        What went wrong, for the user.
    query
        The query text, echoed as ``INFO name="QUERY"``.
    line, column
        Position of the error in the query (1-based); appended to the message and also
        given as INFOs ``ERROR_LINE`` and ``ERROR_COLUMN``.
    """
    where = []
    if line is not None:
        where.append(f"line {line}")
    if column is not None:
        where.append(f"column {column}")
    full = f"{message} (at {', '.join(where)})" if where else message
    out = [document_start(), info_xml("QUERY_STATUS", "ERROR", full)]
    if query is not None:
        out.append(info_xml("QUERY", query))
    if line is not None:
        out.append(info_xml("ERROR_LINE", line))
    if column is not None:
        out.append(info_xml("ERROR_COLUMN", column))
    out.append("</RESOURCE>\n</VOTABLE>\n")
    return "".join(out).encode()


class VOTableWriter:
    """Streams a result as VOTable 1.4, BINARY2 (default) or TABLEDATA.

    An error raised by the batch iterator (or while encoding) before the first chunk
    propagates from the first ``next()``, so the caller can still answer with an error
    document; after that the document is ended with ``QUERY_STATUS=ERROR`` and the
    message, and ``info.error`` is set (the exception is not re-raised).
    """

    mime = "application/x-votable+xml"
    extension = "vot"

    def __init__(self, serialization: str = "BINARY2"):
        if serialization not in ("BINARY2", "TABLEDATA"):
            raise ValueError(serialization)
        self.serialization = serialization
        self.name = "votable" if serialization == "BINARY2" else "votable/td"

    def write(self, batches: Iterable[pa.RecordBatch], columns: list[ColumnMeta],
              info: ResultInfo) -> Iterator[bytes]:
        """Yield the document in chunks (the header, then one or more per batch)."""
        fields = [field_for(c) for c in columns]
        rows = limit_batches(iter(batches), info)
        first = next(rows, None)
        if first is not None:
            check_columns(columns, first.schema)
            rows = itertools.chain([first], rows)
        fields = promote_unicode(fields, first)
        head = table_header(fields, info)
        warnings: list[str] = []
        if self.serialization == "BINARY2":
            yield (head + '<DATA><BINARY2><STREAM encoding="base64">\n').encode()
            encoder = Binary2Encoder(fields)
            stream = _Base64Stream()
            try:
                for batch in rows:
                    chunk = stream.add(encoder.encode(batch))
                    if chunk:
                        yield chunk
            except Exception as e:  # noqa: BLE001 - the document reports it
                info.error = str(e) or type(e).__name__
            yield stream.flush() + b"</STREAM></BINARY2></DATA>\n"
            warnings = [f"non-ASCII characters in char column {c!r} were written as '?'"
                        for c in encoder.replaced]
        else:
            yield (head + "<DATA><TABLEDATA>\n").encode()
            encoder = TabledataEncoder(fields)
            try:
                for batch in rows:
                    yield encoder.encode(batch)
            except Exception as e:  # noqa: BLE001 - the document reports it
                info.error = str(e) or type(e).__name__
            yield b"</TABLEDATA></DATA>\n"
        yield trailer(info, warnings).encode()


class _Base64Stream:
    """Collects BINARY2 bytes and hands them out base64-encoded in large chunks."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.size = 0

    def add(self, raw: bytes) -> bytes | None:
        self.pending.append(raw)
        self.size += len(raw)
        if self.size < _CHUNK:
            return None
        data = b"".join(self.pending)
        cut = len(data) - len(data) % 3
        self.pending = [data[cut:]]
        self.size = len(data) - cut
        return base64.b64encode(memoryview(data)[:cut]) + b"\n"

    def flush(self) -> bytes:
        data = b"".join(self.pending)
        self.pending, self.size = [], 0
        return base64.b64encode(data) + b"\n" if data else b""
