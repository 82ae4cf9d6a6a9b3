"""What a writer needs to know about a result besides its rows; the MAXREC cut; the
byte bounds every writer keeps.

Bounds: :func:`limit_batches` hands a writer its rows in slices of at most
:data:`BATCH_BYTES` (Arrow bytes, measured row by row, so one very wide row does not
make a whole batch huge), and :class:`ByteCap` counts what a writer emits against
``ResultInfo.max_bytes``. Formats that can say a result was cut (VOTable, JSON, Parquet)
stop before the cap and report OVERFLOW; CSV, TSV and FITS raise
:class:`~taphouse.formats.errors.ResultTooLarge`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from taphouse.formats.errors import ResultTooLarge

#: Arrow bytes of one slice of rows a writer encodes at a time. Text formats expand a
#: slice about 2-4 times; with the few copies an encoder makes, a writer holds a few
#: tens of MB at most, whatever the row width.
BATCH_BYTES = 4 * 1024 * 1024


@dataclass
class ResultInfo:
    """Context of one result, shared between the caller and a writer.

    Parameters
    ----------
    query
        The ADQL text, echoed as ``INFO name="QUERY"`` where the format can hold it.
    limit
        MAXREC. The caller reads ``limit + 1`` rows; the writer emits at most ``limit``
        rows and sets :attr:`overflow` if another row arrives. ``None``: no limit.
        ``0``: metadata only.
    infos
        Extra ``(name, value)`` pairs written as VOTable INFOs (and into the other formats'
        metadata where they have room), e.g. ``("DEST", "mydb.t1")``.
    table_name
        Name of the result table (VOTable ``TABLE name``).
    spool_dir
        Where a writer that spools (FITS) puts its temporary files: the data directory's
        ``tmp/`` on a server; ``None``, the system's temporary directory.
    max_bytes
        Most bytes the document may have (``None``: no cap). A writer that can say the
        result was cut stops before it and sets :attr:`overflow` and
        :attr:`size_limited`; the others raise ``ResultTooLarge``.

    After the writer's iterator is exhausted, :attr:`rows` holds the number of rows
    written, :attr:`overflow` whether MAXREC cut the result, and :attr:`error` the message
    of an error that ended the stream (the writer has re-raised it unless the format could
    record it).
    """

    query: str | None = None
    limit: int | None = None
    infos: list[tuple[str, str]] = field(default_factory=list)
    table_name: str = "result"
    spool_dir: Path | str | None = None
    max_bytes: int | None = None
    rows: int = 0
    overflow: bool = False
    size_limited: bool = False
    error: str | None = None

    @property
    def size_note(self) -> str:
        """Why the rows stop early when :attr:`size_limited` (for a trailing warning)."""
        return (f"the result was cut at {self.rows} rows to stay within the size limit of"
                f" {self.max_bytes} bytes per result; select fewer rows or columns (MAXREC,"
                " TOP, WHERE) to get the rest")

    @property
    def status(self) -> str:
        """``OK``, ``OVERFLOW`` or ``ERROR``: the DALI QUERY_STATUS after the rows."""
        if self.error is not None:
            return "ERROR"
        return "OVERFLOW" if self.overflow else "OK"


def limit_batches(batches: Iterator[pa.RecordBatch], info: ResultInfo,
                  max_bytes: int = BATCH_BYTES) -> Iterator[pa.RecordBatch]:
    """Yield the non-empty batches in slices of at most ``max_bytes`` (see
    :func:`byte_slices`), cut to ``info.limit`` rows; count rows into ``info``.

    Sets ``info.overflow`` when a row beyond the limit arrives, and then stops reading
    (the caller asked for ``limit + 1`` rows, so nothing useful is left).
    """
    limit = info.limit
    for whole in batches:
        for batch in byte_slices(whole, max_bytes):
            if batch.num_rows == 0:
                continue
            if limit is not None:
                room = limit - info.rows
                if batch.num_rows > room:
                    info.overflow = True
                    if room > 0:
                        info.rows += room
                        yield batch.slice(0, room)
                    return
            info.rows += batch.num_rows
            yield batch


def byte_slices(batch: pa.RecordBatch, max_bytes: int) -> Iterator[pa.RecordBatch]:
    """``batch`` as zero-copy slices of at most ``max_bytes`` Arrow bytes each (a single
    row larger than that is a slice of its own)."""
    if batch.num_rows <= 1 or batch.nbytes <= max_bytes:
        yield batch
        return
    sizes = np.cumsum(row_nbytes(batch))
    start = 0
    n = batch.num_rows
    while start < n:
        base = sizes[start - 1] if start else 0
        end = int(np.searchsorted(sizes, base + max_bytes, side="right"))
        end = min(max(end, start + 1), n)
        yield batch.slice(start, end - start)
        start = end


def row_nbytes(batch: pa.RecordBatch) -> np.ndarray:
    """Bytes of each row: fixed widths, plus the value bytes of strings and lists."""
    n = batch.num_rows
    total = np.zeros(n, dtype=np.int64)
    for array in batch.columns:
        total += _column_nbytes(array, n)
    return total


def _column_nbytes(array: pa.Array, n: int) -> np.ndarray | int:
    t = array.type
    if pa.types.is_dictionary(t):
        return _column_nbytes(array.dictionary_decode(), n)
    if (pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t)
            or pa.types.is_large_binary(t)):
        import pyarrow.compute as pc

        lengths: np.ndarray = pc.binary_length(array).fill_null(0).to_numpy(
            zero_copy_only=False)
        return lengths + 4
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        import pyarrow.compute as pc

        counts = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False)
        flat = array.flatten()
        per_item = flat.nbytes / len(flat) if len(flat) else 0.0
        sizes: np.ndarray = (counts * per_item).astype(np.int64) + 4
        return sizes
    try:
        width: int = t.bit_width // 8 or 1
    except ValueError:  # nested types: spread the batch's bytes evenly
        return int(array.nbytes // max(n, 1) + 1)
    return width


class ByteCap:
    """Counts the bytes a writer emits against ``info.max_bytes``, keeping ``reserve``
    bytes for the end of the document (status, footer)."""

    def __init__(self, info: ResultInfo, reserve: int = 8192) -> None:
        self.info = info
        self.limit = None if info.max_bytes is None else max(info.max_bytes - reserve, 0)
        self.used = 0

    def take(self, nbytes: int) -> bool:
        """Count ``nbytes`` about to be emitted; False (nothing counted) when they would
        not fit."""
        if self.limit is not None and self.used + nbytes > self.limit:
            return False
        self.used += nbytes
        return True

    def fit(self, batch: pa.RecordBatch, size: int, encode: Any,
            cost: Any = len) -> tuple[Any, int]:
        """The encoding of the longest leading part of ``batch`` that still fits, and its
        number of rows (``None, 0`` if not even one row fits). ``size`` is the cost of
        the whole batch, which did not fit; ``encode(slice)`` encodes, ``cost(encoded)``
        is what it counts against the cap."""
        room = (self.limit or 0) - self.used
        n = batch.num_rows
        while n > 0 and room > 0:
            n = min(n - 1, int(n * room / max(size, 1)))
            if n <= 0:
                break
            part = encode(batch.slice(0, n))
            size = cost(part)
            if size <= room:
                self.used += size
                return part, n
        return None, 0

    def cut(self, batch_rows: int) -> None:
        """The rows of a slice that did not fit: they are not in the document."""
        self.info.rows -= batch_rows
        self.info.overflow = True
        self.info.size_limited = True

    def too_large(self) -> ResultTooLarge:
        """The error of a format that cannot say its result was cut."""
        message = (f"the result is larger than the limit of {self.info.max_bytes} bytes"
                   " per result in this format; select fewer rows or columns (MAXREC,"
                   " TOP, WHERE), or use VOTable, JSON or Parquet, which can say that a"
                   " result was cut")
        self.info.error = message
        return ResultTooLarge(message)


def started_batches(batches: Iterable[pa.RecordBatch], info: ResultInfo
                    ) -> Iterator[pa.RecordBatch]:
    """:func:`limit_batches`, with the first batch already read.

    Writers call this before yielding anything, so that a query failing on its first
    rows fails the first ``next()`` (the caller can still answer with an error document).
    """
    rows = limit_batches(iter(batches), info)
    first = next(rows, None)
    return rows if first is None else itertools.chain([first], rows)
