"""Parquet results with the VOTable metadata embedded (IVOA VO-Parquet note 1.0).

The file's key-value metadata holds ``IVOA.VOTable-Parquet.version = "1.0"`` and
``IVOA.VOTable-Parquet.content``: a VOTable document with the result's INFOs and FIELDs
and no DATA (astropy reads it with ``Table.read(f, format="parquet.votable")``). Both
are written into the footer when the rows are done, so the embedded document ends with
``INFO QUERY_STATUS=OVERFLOW`` when MAXREC cut the result; ``taphouse.query_status``
carries the same status as plain text (OVERFLOW also when the size limit per result
cut the rows, ``ResultInfo.max_bytes``). Each batch becomes one row group and leaves as
soon as it is written. An error part way is re-raised: the file then has no footer and
no reader will take it for a complete result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats.columns import check_columns, field_for, normalise
from taphouse.formats.errors import FormatError
from taphouse.formats.result import ByteCap, ResultInfo, limit_batches
from taphouse.formats.votable import table_header, trailer

VERSION_KEY = "IVOA.VOTable-Parquet.version"
CONTENT_KEY = "IVOA.VOTable-Parquet.content"
STATUS_KEY = "taphouse.query_status"


class _Sink:
    """A write-only file that hands out what was written since the last :meth:`take`."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pos = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        return out


def votable_metadata(columns: list[ColumnMeta], info: ResultInfo) -> dict[str, str]:
    """The VO-Parquet key-value metadata for a result (call when the rows are done)."""
    fields = [field_for(c) for c in columns]
    return {VERSION_KEY: "1.0",
            CONTENT_KEY: table_header(fields, info)
            + trailer(info, [info.size_note] if info.size_limited else []),
            STATUS_KEY: info.status}


class ParquetWriter:
    """Streams a result as Parquet, one row group per batch.

    Dictionary encoding is used for text columns only: on numeric columns it costs
    several times the write time and rarely pays off for catalogue values.
    """

    name, mime, extension = "parquet", "application/vnd.apache.parquet", "parquet"

    def __init__(self, compression: str = "snappy"):
        self.compression = compression

    def write(self, batches: Iterable[pa.RecordBatch], columns: list[ColumnMeta],
              info: ResultInfo) -> Iterator[bytes]:
        """Yield the file in chunks: the magic, one row group per batch, the footer."""
        fields = [field_for(c) for c in columns]
        schema = pa.schema([pa.field(c.name, f.arrow_type) for c, f in zip(columns, fields, strict=True)])
        sink = _Sink()
        text = [c.name for c, f in zip(columns, fields, strict=True)
                if pa.types.is_string(f.arrow_type)]
        writer = pq.ParquetWriter(sink, schema, compression=self.compression,
                                  use_dictionary=text or False)
        cap = ByteCap(info, reserve=64 * 1024 + 16 * len(columns) * 1024)
        try:
            for batch in limit_batches(iter(batches), info):
                check_columns(columns, batch.schema)
                arrays = [normalise(a, f) for a, f in zip(batch.columns, fields, strict=True)]
                out = pa.RecordBatch.from_arrays(arrays, schema=schema)
                # A row group cannot be taken back once written: count its Arrow size
                # (an upper bound of its encoded size, as a rule) before writing it.
                if cap.limit is not None and sink.pos + out.nbytes > cap.limit:
                    room = max(cap.limit - sink.pos, 0)
                    n = min(out.num_rows - 1, out.num_rows * room // max(out.nbytes, 1))
                    cap.cut(batch.num_rows - max(n, 0))
                    if n > 0:
                        writer.write_batch(out.slice(0, n))
                        yield sink.take()
                    break
                writer.write_batch(out)
                yield sink.take()
        except Exception as e:
            info.error = str(e) or type(e).__name__
            raise
        writer.add_key_value_metadata(votable_metadata(columns, info))
        writer.close()
        yield sink.take()


#: How large a Parquet document (an upload, a remote's answer) may become once decoded:
#: this many times its size, and at least :data:`DECODED_MIN_BYTES`. Compression and
#: dictionaries make a few bytes stand for many; a hostile file must not make them
#: stand for gigabytes.
DECODED_FACTOR = 20
DECODED_MIN_BYTES = 256 * 1024**2


class DecodedTooLarge(FormatError):
    """A Parquet document would take more than its cap once decoded (``size`` and
    ``cap`` in bytes); raised before the large part is expanded."""

    def __init__(self, size: int, cap: int):
        super().__init__(f"the Parquet data would take {size:,} bytes once decoded, more"
                         f" than {cap:,}: refused")
        self.size, self.cap = size, cap


def read_bounded(source: Any, nbytes: int) -> pa.Table:
    """A Parquet document (a path or a seekable binary file of ``nbytes`` bytes) as one
    Arrow table without dictionary types, refused with :class:`DecodedTooLarge` when it
    would decode to more than ``max(DECODED_MIN_BYTES, DECODED_FACTOR * nbytes)``.

    The row groups' declared sizes are checked first; then string and binary columns are
    read as dictionaries and their expanded size summed from the indices before any of
    them is expanded (one 1 MB dictionary string in 300 rows is 300 MB decoded).
    """
    import pyarrow.compute as pc

    cap = max(DECODED_MIN_BYTES, DECODED_FACTOR * nbytes)
    meta = pq.ParquetFile(source)
    claimed = sum(meta.metadata.row_group(i).total_byte_size
                  for i in range(meta.metadata.num_row_groups))
    if claimed > cap:
        raise DecodedTooLarge(claimed, cap)
    textual = [f.name for f in meta.schema_arrow if _is_textual(f.type)]
    if hasattr(source, "seek"):
        source.seek(0)
    table = pq.ParquetFile(source, read_dictionary=textual).read()
    size = table.nbytes
    decoded = {}
    for name in table.column_names:
        column = table.column(name)
        if not pa.types.is_dictionary(column.type):
            continue
        value_type = column.type.value_type
        for chunk in column.chunks:
            if _is_textual(value_type):
                lengths = pc.binary_length(chunk.dictionary)
                size += int(pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0)
            else:
                size += len(chunk) * max(1, value_type.bit_width // 8)
        if size > cap:
            raise DecodedTooLarge(size, cap)
        decoded[name] = pa.chunked_array([c.dictionary_decode() for c in column.chunks],
                                         type=value_type)
    for name, column in decoded.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table.replace_schema_metadata(None)


def _is_textual(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_binary(t)
                or pa.types.is_large_string(t) or pa.types.is_large_binary(t))
