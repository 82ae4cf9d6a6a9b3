"""What a writer needs to know about a result besides its rows, and the MAXREC cut."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa


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
    rows: int = 0
    overflow: bool = False
    error: str | None = None

    @property
    def status(self) -> str:
        """``OK``, ``OVERFLOW`` or ``ERROR``: the DALI QUERY_STATUS after the rows."""
        if self.error is not None:
            return "ERROR"
        return "OVERFLOW" if self.overflow else "OK"


def limit_batches(batches: Iterator[pa.RecordBatch], info: ResultInfo
                  ) -> Iterator[pa.RecordBatch]:
    """Yield the non-empty batches, cut to ``info.limit`` rows; count rows into ``info``.

    Sets ``info.overflow`` when a row beyond the limit arrives, and then stops reading
    (the caller asked for ``limit + 1`` rows, so nothing useful is left).
    """
    limit = info.limit
    for batch in batches:
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


def started_batches(batches: Iterable[pa.RecordBatch], info: ResultInfo
                    ) -> Iterator[pa.RecordBatch]:
    """:func:`limit_batches`, with the first batch already read.

    Writers call this before yielding anything, so that a query failing on its first
    rows fails the first ``next()`` (the caller can still answer with an error document).
    """
    rows = limit_batches(iter(batches), info)
    first = next(rows, None)
    return rows if first is None else itertools.chain([first], rows)
