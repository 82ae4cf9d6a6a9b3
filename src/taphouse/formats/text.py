"""CSV (RFC 4180: header row, CRLF, fields quoted only when needed) and TSV (IANA
text/tab-separated-values: no quoting; tabs and line breaks inside values become spaces).

Cells are formatted as in TABLEDATA (NaN, +Inf/-Inf, booleans true/false, arrays as
space-separated values); nulls are empty. Neither format can say that a result was cut
by MAXREC or failed: an error after the first chunk is re-raised, and the caller must
drop the connection. A result over ``ResultInfo.max_bytes`` raises ``ResultTooLarge``
(before the first chunk when the header alone is too large, otherwise part way).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats.columns import (
    STRING_TYPES,
    check_columns,
    concat_values,
    field_for,
    normalise,
)
from taphouse.formats.result import ByteCap, ResultInfo, started_batches
from taphouse.formats.tabledata import cell_text


def csv_quote(text: pa.Array) -> pa.Array:
    """Quote (and double the quotes of) the values that need it under RFC 4180."""
    needs = pc.match_substring_regex(text, '[",\r\n]')
    if not pc.any(needs).as_py():
        return text
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, text)


def _tsv_clean(text: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(text, "[\t\r\n]", " ")


class DelimitedWriter:
    """Streams a result as CSV (``delimiter=","``) or TSV (``delimiter="\\t"``)."""

    def __init__(self, delimiter: str = ","):
        self.delimiter = delimiter
        if delimiter == ",":
            self.name, self.mime, self.extension = "csv", "text/csv", "csv"
            self._escape, self._eol = csv_quote, "\r\n"
        else:
            self.name, self.mime, self.extension = "tsv", "text/tab-separated-values", "tsv"
            self._escape, self._eol = _tsv_clean, "\n"

    def write(self, batches: Iterable[pa.RecordBatch], columns: list[ColumnMeta],
              info: ResultInfo) -> Iterator[bytes]:
        """Yield the header row, then the rows of each batch."""
        fields = [field_for(c) for c in columns]
        rows = started_batches(batches, info)
        names = self._escape(pa.array([c.name for c in columns], pa.string()))
        header = (self.delimiter.join(names.to_pylist()) + self._eol).encode()
        cap = ByteCap(info, reserve=0)
        if not cap.take(len(header)):
            raise cap.too_large()
        yield header
        try:
            for batch in rows:
                check_columns(columns, batch.schema)
                pieces: list[pa.Array | str] = []
                for j, (array, fld) in enumerate(zip(batch.columns, fields, strict=True)):
                    if j:
                        pieces.append(self.delimiter)
                    text = cell_text(normalise(array, fld), fld, booleans=("true", "false"))
                    pieces.append(self._escape(text) if fld.datatype in STRING_TYPES else text)
                pieces.append(self._eol)
                chunk = concat_values(pc.binary_join_element_wise(*pieces, ""))
                if not cap.take(len(chunk)):
                    raise cap.too_large()
                yield chunk
        except Exception as e:
            if info.error is None:
                info.error = str(e) or type(e).__name__
            raise
