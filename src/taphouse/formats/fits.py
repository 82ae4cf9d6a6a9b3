"""FITS binary table results.

FITS needs the row count and each string column's width in its header, so the rows are
first spooled to a temporary Arrow IPC file (memory stays at one batch), then written
as: an empty primary HDU and one BINTABLE extension whose columns carry ``TTYPEn``,
``TFORMn``, ``TUNITn``, ``TUCDn`` and ``TCOMMn`` (the description; TUCD/TCOMM are the
conventions STIL uses). Nulls: integers use ``TNULLn`` (the type's smallest value, 255
for unsignedByte), floats NaN, booleans the FITS undefined logical (0), strings empty.
Variable-length arrays go to the heap (``PD(max)`` and friends). Text is written as
UTF-8 bytes. MAXREC overflow is recorded as ``QSTATUS = 'OVERFLOW'`` in the extension
header. Any error is raised before the first byte leaves, including
``ResultTooLarge`` when the file would exceed ``ResultInfo.max_bytes`` (checked while
spooling, so a result that cannot be sent is not spooled whole).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats.binary2 import _NUMPY, _fixed_array, _fixed_string, _numbers
from taphouse.formats.columns import STRING_TYPES, Field, check_columns, field_for, normalise
from taphouse.formats.result import BATCH_BYTES, ByteCap, ResultInfo, limit_batches

_BLOCK = 2880
_TFORM = {"boolean": "L", "unsignedByte": "B", "short": "I", "int": "J", "long": "K",
          "float": "E", "double": "D"}
_TNULL = {"unsignedByte": 255, "short": -(2 ** 15), "int": -(2 ** 31), "long": -(2 ** 63)}
_COPY = 1 << 20


def _header_bytes(cards: list[tuple[str, object, str]]) -> bytes:
    from astropy.io import fits

    header = fits.Header()
    for key, value, comment in cards:
        header.append((key, _ascii(value) if isinstance(value, str) else value, comment),
                      end=True)
    text: str = header.tostring()
    return text.encode("ascii")


def _ascii(text: str) -> str:
    # FITS header values hold printable ASCII only: escape anything else (names, units,
    # descriptions and the query may be Unicode) instead of failing mid-response.
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _pad(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


class FitsWriter:
    """Writes a result as a FITS file (spooled; see the module docstring)."""

    name, mime, extension = "fits", "application/fits", "fits"

    def write(self, batches: Iterable[pa.RecordBatch], columns: list[ColumnMeta],
              info: ResultInfo) -> Iterator[bytes]:
        """Yield the FITS file in chunks, after all rows have been read."""
        fields = [field_for(c) for c in columns]
        schema = pa.schema([pa.field(c.name, f.arrow_type) for c, f in zip(columns, fields, strict=True)])
        widths = [0] * len(fields)  # longest string (bytes) or array per column
        cap = ByteCap(info, reserve=0)
        with tempfile.TemporaryDirectory(prefix="fits-", dir=info.spool_dir) as tmp:
            spool = os.path.join(tmp, "rows.arrow")
            try:
                with pa.OSFile(spool, "wb") as sink, pa.ipc.new_file(sink, schema) as ipc:
                    for batch in limit_batches(iter(batches), info):
                        check_columns(columns, batch.schema)
                        arrays = [normalise(a, f) for a, f in zip(batch.columns, fields, strict=True)]
                        for j, (array, fld) in enumerate(zip(arrays, fields, strict=True)):
                            widths[j] = max(widths[j], _width(array, fld))
                        # The file holds at least these bytes (strings are padded to the
                        # longest): refuse before spooling a result that cannot be sent.
                        if not cap.take(sum(_least_bytes(a, f) for a, f in
                                            zip(arrays, fields, strict=True))):
                            raise cap.too_large()
                        ipc.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            except Exception as e:
                if info.error is None:
                    info.error = str(e) or type(e).__name__
                raise
            yield from self._emit(spool, os.path.join(tmp, "heap"), fields, widths, info,
                                  cap)

    def _emit(self, spool: str, heap_path: str, fields: list[Field], widths: list[int],
              info: ResultInfo, cap: ByteCap) -> Iterator[bytes]:
        forms, sizes = [], []
        for fld, width in zip(fields, widths, strict=True):
            form, size = _tform(fld, width)
            forms.append(form)
            sizes.append(size)
        row_size = sum(sizes)
        # The padded table is known in size before it is written: refuse it before a
        # byte of it reaches the disk or the client.
        if info.max_bytes is not None and row_size * info.rows > info.max_bytes:
            raise cap.too_large()
        # Rows are encoded in slices of at most BATCH_BYTES of padded rows: one long
        # string pads every row of its column, so a batch can grow many times over.
        step = max(1, BATCH_BYTES // max(row_size, 1))
        table_path = heap_path + ".rows"
        heap_size = 0
        # Read with plain file reads, not a memory map: mapped pages of a large spool
        # would count in the server's RSS.
        with pa.OSFile(spool, "rb") as source, open(table_path, "wb") as rows, \
                open(heap_path, "wb") as heap:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                whole = reader.get_batch(i)
                for start in range(0, whole.num_rows, step):
                    batch = whole.slice(start, step)
                    parts = []
                    for array, fld, width in zip(batch.columns, fields, widths, strict=True):
                        cell, data = _encode(array, fld, width, heap_size)
                        parts.append(cell)
                        if data is not None:
                            heap.write(data)
                            heap_size += len(data)
                    if parts:
                        rows.write(np.hstack(parts).tobytes())
        # Both headers are built before the first byte leaves, so any failure is an error
        # response rather than a truncated file.
        primary = _header_bytes([("SIMPLE", True, "conforms to FITS"), ("BITPIX", 8, ""),
                                 ("NAXIS", 0, ""), ("EXTEND", True, "")])
        extension = _header_bytes(self._cards(fields, forms, sizes, widths, info, heap_size))
        total = len(primary) + len(extension) + row_size * info.rows + heap_size
        if info.max_bytes is not None and total + len(_pad(total)) > info.max_bytes:
            raise cap.too_large()
        yield primary + extension
        written = 0
        for path in (table_path, heap_path):
            with open(path, "rb") as f:
                while chunk := f.read(_COPY):
                    written += len(chunk)
                    yield chunk
        yield _pad(written)

    def _cards(self, fields: list[Field], forms: list[str], sizes: list[int],
               widths: list[int], info: ResultInfo, heap_size: int
               ) -> list[tuple[str, object, str]]:
        cards: list[tuple[str, object, str]] = [
            ("XTENSION", "BINTABLE", "binary table extension"), ("BITPIX", 8, ""),
            ("NAXIS", 2, ""), ("NAXIS1", sum(sizes), "bytes per row"),
            ("NAXIS2", info.rows, "rows"), ("PCOUNT", heap_size, "heap size"),
            ("GCOUNT", 1, ""), ("TFIELDS", len(fields), ""),
            ("EXTNAME", info.table_name[:68], ""),
        ]
        for n, (fld, form) in enumerate(zip(fields, forms, strict=True), start=1):
            meta = fld.meta
            cards.append((f"TTYPE{n}", meta.name, ""))
            cards.append((f"TFORM{n}", form, ""))
            if fld.datatype in _TNULL:
                cards.append((f"TNULL{n}", _TNULL[fld.datatype], ""))
            if meta.unit:
                cards.append((f"TUNIT{n}", meta.unit, ""))
            if meta.ucd:
                cards.append((f"TUCD{n}", meta.ucd, ""))
            if meta.description:
                cards.append((f"TCOMM{n}", meta.description[:68], ""))
        if info.overflow:
            cards.append(("QSTATUS", "OVERFLOW", "MAXREC cut the result"))
        if info.query:
            # No comment: with one, a 68-character value overflows the card (astropy warns).
            cards.append(("QUERY", info.query.replace("\n", " ")[:68], ""))
        return cards


def _least_bytes(array: pa.Array, fld: Field) -> int:
    """Bytes a column of these rows takes in the FITS file at least (strings before
    padding to the longest, arrays' elements in the heap)."""
    n = len(array)
    if fld.datatype in STRING_TYPES:
        return int(pc.sum(pc.binary_length(array)).as_py() or 0) if n else 0
    item = 1 if fld.datatype == "boolean" else _NUMPY[fld.datatype].itemsize
    if fld.is_array:
        if fld.count is None:
            return n * 8 + int(pc.sum(pc.list_value_length(array)).as_py() or 0) * item
        return n * fld.count * item
    return n * item


def _width(array: pa.Array, fld: Field) -> int:
    if len(array) == 0:
        return 0
    if fld.datatype in STRING_TYPES:
        return int(pc.max(pc.binary_length(array)).as_py() or 0)
    if fld.is_array and fld.count is None:
        return int(pc.max(pc.list_value_length(array)).as_py() or 0)
    return 0


def _tform(fld: Field, width: int) -> tuple[str, int]:
    if fld.datatype in STRING_TYPES:
        size = max(width, fld.count or 1)
        return f"{size}A", size
    code = _TFORM[fld.datatype]
    item = 1 if fld.datatype == "boolean" else _NUMPY[fld.datatype].itemsize
    if fld.is_array and fld.count is None:
        return f"P{code}({width})", 8
    count = fld.count if fld.is_array and fld.count is not None else 1
    return (f"{count}{code}" if count != 1 else code), count * item


def _encode(array: pa.Array, fld: Field, width: int, heap_offset: int
            ) -> tuple[np.ndarray, bytes | None]:
    n = len(array)
    if fld.datatype in STRING_TYPES:
        size = max(width, fld.count or 1)
        sized = Field(fld.meta, "char", size, False)
        return _fixed_string(array.fill_null(""), sized), None
    if fld.is_array and fld.count is None:
        counts = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False)
        flat = _numbers(pc.list_flatten(array), fld.datatype)
        item = flat.shape[1]
        offsets = heap_offset + np.concatenate([[0], np.cumsum(counts[:-1] * item)])
        desc = np.empty((n, 2), dtype=">i4")
        desc[:, 0] = counts
        desc[:, 1] = offsets
        return desc.view(np.uint8).reshape(n, 8), flat.tobytes()
    if fld.is_array:
        return _fixed_array(array, fld), None
    if fld.datatype == "boolean":
        values = array.fill_null(False).to_numpy(zero_copy_only=False)
        cells = np.where(values, 84, 70).astype(np.uint8)
        cells[array.is_null().to_numpy(zero_copy_only=False)] = 0
        return cells.reshape(n, 1), None
    if fld.datatype in _TNULL and array.null_count:
        array = array.fill_null(_TNULL[fld.datatype])
    return _numbers(array, fld.datatype), None
