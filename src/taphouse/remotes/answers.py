"""A remote's answer to a query (VOTable in any serialisation, or VO-Parquet) as Arrow,
with its QUERY_STATUS: an OVERFLOW is kept, never dropped, and an error document
becomes :class:`RemoteQueryFailed` quoting the remote's message."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from taphouse.catalogue.model import ColumnMeta
from taphouse.remotes.errors import RemoteOverflow, RemoteQueryFailed, RemoteUnavailable
from taphouse.remotes.vosi import clean

#: The prolog of an XML document may hold a DOCTYPE; remote answers may not.
_PROLOG_BYTES = 4096


@dataclass
class RemoteAnswer:
    """The rows a remote returned for one query.

    ``overflow`` is True when the remote says it cut the result (MAXREC or its hard
    limit): the rows are then *not* the complete answer. ``adql`` is the exact query
    sent, ``remote`` the service's name, ``nbytes`` the size of the document received.
    """

    remote: str
    adql: str
    table: pa.Table
    columns: list[ColumnMeta]
    overflow: bool = False
    nbytes: int = 0
    seconds: float = 0.0
    mode: str = "sync"
    job_url: str | None = None
    infos: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    def require_complete(self) -> RemoteAnswer:
        """Self, or :class:`RemoteOverflow` when the remote cut the result."""
        if self.overflow:
            raise RemoteOverflow(
                f"remote {self.remote!r} truncated its answer at {self.rows} rows (its"
                " QUERY_STATUS is OVERFLOW): the result would be incomplete; ask for"
                " fewer rows (TOP, a narrower WHERE) or raise MAXREC within the remote's"
                " limit")
        return self

    def batches(self, max_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """The rows as record batches of at most ``max_rows`` rows."""
        yield from self.table.to_batches(max_chunksize=max_rows)


def refuse_doctype(body: bytes, what: str) -> None:
    """Raise when an XML document declares a DTD (entities, external references)."""
    head = body[:_PROLOG_BYTES]
    root = head.find(b"<VOTABLE")
    prolog = head if root < 0 else head[:root]
    if b"<!DOCTYPE" in prolog.upper() or b"<!ENTITY" in prolog.upper():
        raise RemoteUnavailable(f"{what} declares a DTD: refused (remote documents may"
                                " not)")


def read_answer(remote: str, adql: str, body: bytes, content_type: str | None,
                what: str, maxrec: int | None = None) -> RemoteAnswer:
    """Decode one result document (``what`` names it in errors). An answer with more
    rows than the ``maxrec`` asked for is refused (for Parquet before it is decoded: its
    few compressed bytes may stand for any number of rows)."""
    head = body[:8].lstrip()
    if head.startswith(b"PAR1"):
        table, columns, infos = _parquet(body, what, maxrec)
    elif head.startswith(b"<"):
        if maxrec is not None:
            _count_first(body, what, maxrec)
        table, columns, infos = _votable(body, what)
    else:
        ctype = (content_type or "?").split(";")[0]
        raise RemoteUnavailable(f"{what} is neither a VOTable nor Parquet (content type"
                                f" {clean(ctype, 80)!r})")
    statuses = [(value or "").upper() for name, value, _ in infos if name == "QUERY_STATUS"]
    if "ERROR" in statuses:
        message = next((text or value for name, value, text in infos
                        if name == "QUERY_STATUS" and (value or "").upper() == "ERROR"), "")
        raise RemoteQueryFailed(f"remote {remote!r} reported an error: "
                                f"{clean(message, 2000) or '(no message)'}")
    if table is None:
        raise RemoteUnavailable(f"{what} holds no table and no error message")
    _check_rows(table.num_rows, maxrec, what)
    return RemoteAnswer(remote=remote, adql=adql, table=table, columns=columns,
                        overflow="OVERFLOW" in statuses, nbytes=len(body),
                        infos=[(n, v or "") for n, v, _ in infos])


def _infos(vot: Any) -> list[tuple[str, str, str | None]]:
    """Every INFO of the document: also those inside a TABLE (after its DATA, where the
    VOTable schema allows them and some services write QUERY_STATUS) and in nested
    RESOURCEs: an OVERFLOW or ERROR there must not read as a complete answer."""
    out = [(i.name, i.value, i.content) for i in vot.infos]
    pending = list(vot.resources)
    while pending:
        resource = pending.pop(0)
        out += [(i.name, i.value, i.content) for i in resource.infos]
        for table in resource.tables:
            out += [(i.name, i.value, i.content) for i in table.infos]
        pending += list(resource.resources)
    return out


def _parse_votable(body: bytes, what: str) -> Any:
    from astropy.io.votable import parse
    from astropy.io.votable.exceptions import VOWarning

    from taphouse.formats.upload import refuse_stream_links

    refuse_doctype(body, what)
    try:
        refuse_stream_links(body)  # astropy would open the link (file: on this server)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VOWarning)
            return parse(io.BytesIO(body), verify="ignore")
    except Exception as exc:  # noqa: BLE001  (astropy raises many kinds for bad input)
        raise RemoteUnavailable(f"{what} is not a readable VOTable ({clean(str(exc), 300)})"
                                ) from None


def _votable(body: bytes, what: str) -> tuple[pa.Table | None, list[ColumnMeta],
                                                list[tuple[str, str, str | None]]]:
    from taphouse.formats.upload import votable_to_arrow

    vot = _parse_votable(body, what)
    infos = _infos(vot)
    if not any(r.tables for r in vot.resources):
        return None, [], infos
    try:
        table, columns = votable_to_arrow(vot)
    except Exception as exc:  # noqa: BLE001
        raise RemoteUnavailable(f"{what}: its table cannot be read ({clean(str(exc), 300)})"
                                ) from None
    return table, columns, infos


def _count_first(body: bytes, what: str, maxrec: int) -> None:
    """Refuse a VOTable answer with more rows than ``maxrec`` before astropy reads it
    (one Python step a cell: 1,000,000 short TABLEDATA rows took minutes to be refused),
    its rows counted without decoding (TR tags, or the stream's length over the row's)."""
    from taphouse.formats import votable_read

    parts = votable_read.split(body)
    if parts is None:
        return  # a shape the counter does not know: astropy reads it, then it is checked
    header, serialization, payload = parts
    fields: list[Any] = []
    if serialization != "TABLEDATA":
        try:
            fields = list(_parse_votable(header, what).get_first_table().fields)
        except IndexError:
            return
    rows = votable_read.count_rows(fields, serialization, payload)
    if rows is not None:
        _check_rows(rows, maxrec, what)


def _check_rows(rows: int, maxrec: int | None, what: str) -> None:
    if maxrec is not None and rows > maxrec:
        raise RemoteUnavailable(f"{what} has {rows} rows although MAXREC={maxrec} was"
                                " asked for: refused")


def _parquet(body: bytes, what: str, maxrec: int | None = None
             ) -> tuple[pa.Table, list[ColumnMeta], list[tuple[str, str, str | None]]]:
    import pyarrow.parquet as pq

    from taphouse.formats.columns import columns_from_schema
    from taphouse.formats.parquet import CONTENT_KEY

    try:
        source = pq.ParquetFile(io.BytesIO(body))
    except Exception as exc:  # noqa: BLE001
        raise RemoteUnavailable(f"{what} is not readable Parquet ({clean(str(exc), 300)})"
                                ) from None
    _check_rows(source.metadata.num_rows, maxrec, what)
    try:
        table = _decode_parquet(body, what)
    except RemoteUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001
        raise RemoteUnavailable(f"{what} is not readable Parquet ({clean(str(exc), 300)})"
                                ) from None
    columns = columns_from_schema(table.schema)
    content = (source.metadata.metadata or {}).get(CONTENT_KEY.encode())
    infos: list[tuple[str, str, str | None]] = []
    if content:
        vot = _parse_votable(content, what + " (its VOTable metadata)")
        infos = _infos(vot)
        try:
            fields = {f.name: f for f in vot.get_first_table().fields}
        except IndexError:
            fields = {}
        for meta in columns:
            fld = fields.get(meta.name)
            if fld is not None:
                meta.unit = str(fld.unit) if fld.unit is not None else None
                meta.ucd, meta.description = fld.ucd, fld.description or None
    return table, columns, infos


def _decode_parquet(body: bytes, what: str) -> pa.Table:
    """The Parquet answer as one Arrow table, refused before it is expanded when it would
    decode to more than its cap (:func:`taphouse.formats.parquet.read_bounded`)."""
    from taphouse.formats.parquet import DecodedTooLarge, read_bounded

    try:
        return read_bounded(io.BytesIO(body), len(body))
    except DecodedTooLarge as exc:
        raise _too_big(what, exc.size, exc.cap) from None


def _too_big(what: str, size: int, cap: int) -> RemoteUnavailable:
    return RemoteUnavailable(f"{what}: the Parquet answer would take {size:,} bytes once"
                             f" decoded, more than {cap:,}: refused (ask for fewer rows or"
                             " columns)")


def cut_to(answer: RemoteAnswer, maxrec: int | None) -> RemoteAnswer:
    """An answer to ``maxrec`` rows asked for as ``maxrec + 1``: more than ``maxrec``
    rows means the result goes on (whatever the remote's QUERY_STATUS says): cut to
    ``maxrec``, an overflow."""
    if maxrec is not None and answer.rows > maxrec:
        answer.table = answer.table.slice(0, maxrec)
        answer.overflow = True
    return answer


def suspect_cut(answer: RemoteAnswer, limit: int | None) -> RemoteAnswer:
    """An answer of exactly ``limit`` rows, the remote's hard limit (which the platform
    cannot ask one row past), is possibly cut even without an OVERFLOW status: taken as
    an overflow (a federated block is halved, a DEST refused, a response says OVERFLOW)."""
    if limit and not answer.overflow and answer.rows >= limit:
        answer.overflow = True
        answer.infos.append(("WARNING", f"remote {answer.remote!r} returned exactly its"
                             f" limit of {limit} rows without an OVERFLOW status: taken as"
                             " possibly truncated"))
    return answer


__all__ = ["RemoteAnswer", "read_answer", "refuse_doctype", "cut_to", "suspect_cut"]
