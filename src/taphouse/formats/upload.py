"""TAP_UPLOAD tables: VOTable (TABLEDATA, BINARY, BINARY2), CSV, Parquet and FITS into
an Arrow table plus column metadata (units, UCDs, descriptions kept where the format
has them).

Rows are decoded column by column, never cell by cell in Python: VOTable rows by
:mod:`taphouse.formats.votable_read` (astropy reads the metadata; documents that module
does not cover fall back to astropy's parser), CSV and Parquet by pyarrow, FITS by astropy
(numpy columns).

Column names become lower-case ADQL regular identifiers: characters other than letters,
digits and ``_`` become ``_``, and a name not starting with a letter gets a ``col_``
prefix. Two columns ending up with the same name is an error that names both.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import IO, Any

import numpy as np
import pyarrow as pa

from taphouse.catalogue.model import ColumnMeta, CoordSys, TimeSys, epoch_text, frame_name
from taphouse.catalogue.units import check_unit
from taphouse.formats.columns import columns_from_schema
from taphouse.formats.errors import FormatError

_KINDS = {
    "votable": ("xml", "votable"),
    "csv": ("csv", "comma-separated"),
    "parquet": ("parquet",),
    "fits": ("fits",),
}


def _kind(data: bytes, content_type: str | None) -> str:
    ctype = (content_type or "").lower()
    head = data[:2048]
    if head.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark (was read as CSV)
        head = head[3:]
    head = head.lstrip()
    if head.startswith((b"\xff\xfe<\x00", b"\xfe\xff\x00<", b"<\x00", b"\x00<")):
        return "votable"  # XML in UTF-16
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith(b"<"):
        return "votable"
    for kind, words in _KINDS.items():
        if any(w in ctype for w in words):
            return kind
    return "csv"


def identifier(name: str, index: int) -> str:
    """A column name as a lower-case ADQL regular identifier."""
    out = re.sub(r"[^a-z0-9_]", "_", name.strip().lower())
    if not out:
        return f"col{index + 1}"
    if not out[0].isalpha() or not out[0].isascii():
        out = "col_" + out
    return out


def _rename(columns: list[ColumnMeta], name: str) -> None:
    seen: dict[str, str] = {}
    for i, col in enumerate(columns):
        new = identifier(col.name, i)
        if new in seen:
            raise FormatError(
                f"upload {name}: columns {seen[new]!r} and {col.name!r} both become "
                f"{new!r} as ADQL names; rename one of them")
        seen[new] = col.name
        col.name = new


def _from_astropy(table: Any) -> tuple[pa.Table, list[ColumnMeta]]:
    """An astropy Table (with masks, units, UCDs) to Arrow plus column metadata."""
    arrays, metas = [], []
    for col in table.itercols():
        values = np.asarray(col)
        if values.dtype.kind in "biuf" and not values.dtype.isnative:
            values = values.astype(values.dtype.newbyteorder("="))
        mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else None
        if values.dtype.kind == "O":
            objects = [None if (mask is not None and np.all(mask[i])) else v
                       for i, v in enumerate(values)]
            array = pa.array([_plain(v) for v in objects])
        elif values.dtype.kind in "SU":
            texts = values.astype(str)
            m = mask if mask is not None and mask.ndim == 1 else None
            array = pa.array(texts.tolist(), pa.string(), mask=m)
        elif values.ndim > 1:
            flat = values.reshape(len(values), -1)
            inner = pa.array(flat.ravel())
            array = pa.FixedSizeListArray.from_arrays(inner, flat.shape[1])
            if mask is not None and mask.ndim > 1:
                rowmask = np.all(mask.reshape(len(values), -1), axis=1)
                if rowmask.any():
                    array = pa.array([None if m else v for m, v in
                                      zip(rowmask, array.to_pylist(), strict=True)], array.type)
        else:
            m = mask if mask is not None and mask.any() else None
            array = pa.array(values, mask=m)
        arrays.append(array)
        meta = ColumnMeta(name=col.name, datatype="char")
        set_unit(meta, col.unit)
        meta.description = col.description or None
        col_meta = getattr(col, "meta", {}) or {}
        meta.ucd = col_meta.get("ucd")
        meta.utype = col_meta.get("utype")
        metas.append(meta)
    names = [c.name for c in table.itercols()]
    arrow = pa.table(arrays, names=names)
    typed = columns_from_schema(arrow.schema)
    for meta, t in zip(metas, typed, strict=True):
        meta.datatype, meta.arraysize, meta.xtype = t.datatype, t.arraysize, t.xtype
    return arrow, metas


def set_unit(meta: ColumnMeta, unit: Any) -> None:
    """Give an uploaded column its unit in canonical VOUnit; one that is not a unit is
    kept as given and flagged (an upload is not refused for it)."""
    check = check_unit(None if unit is None else str(unit))
    meta.unit, meta.bad_unit = check.unit, not check.valid


def _plain(value: Any) -> Any:
    if isinstance(value, np.ma.MaskedArray):
        return [None if m else v for v, m in
                zip(value.data.tolist(), np.ma.getmaskarray(value).tolist(), strict=True)]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def refuse_stream_links(data: bytes) -> None:
    """FormatError if a VOTable has a STREAM that names its data by ``href`` (astropy
    would open the link itself: :mod:`taphouse.votable_links`). Call it on any untrusted
    VOTable before astropy parses it."""
    from taphouse.votable_links import MESSAGE, find_stream_link

    if find_stream_link(data) is not None:
        raise FormatError(MESSAGE)


def _parse_votable(data: bytes) -> Any:
    """astropy's VOTable tree of uploaded bytes, after :func:`refuse_stream_links`."""
    from astropy.io.votable import parse
    from astropy.io.votable.exceptions import W51

    refuse_stream_links(data)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", W51)
        vot = parse(io.BytesIO(data), verify="warn")
    for w in seen:
        if isinstance(w.message, W51):
            # astropy clamps the value to the type's range (300 -> 255, 10^22 -> 2^63-1):
            # an upload is not silently changed
            where = re.match(r"\S*?:(\d+):(\d+): W51: (.*)", str(w.message))
            raise FormatError(f"line {where.group(1)}: {where.group(3)}" if where
                              else str(w.message))
    return vot


def _votable(data: Any, head: bytes,
             max_rows: int | None = None) -> tuple[pa.Table, list[ColumnMeta]]:
    from astropy.io.votable.exceptions import VOWarning

    if isinstance(data, io.BytesIO):
        raw = data.getvalue()
    else:
        with open(data, "rb") as f:
            raw = f.read()
    fast = _votable_vectorised(raw, max_rows)
    if fast is not None:
        return fast
    data = io.BytesIO(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VOWarning)
        vot = _parse_votable(raw)
    arrow, metas = votable_to_arrow(vot)
    binary1 = re.search(rb"<(?:\w+:)?BINARY[\s>]", raw) is not None
    return _empty_text_null(arrow, vot, binary1), metas


def _empty_text_null(arrow: pa.Table, vot: Any, binary1: bool) -> pa.Table:
    """Text columns read by astropy with their nulls back: astropy reads an empty TD
    and a BINARY2 null flag of a ``char``/``unicodeChar`` cell alike as "" (a null string
    of an upload holding a column the vectorised reader leaves to astropy, e.g. a boolean
    array, was lost); here "" is NULL, as an empty TD is in the vectorised reader. BINARY
    has no null for text: its empty strings stay "". (A BINARY2 empty string that was not
    flagged cannot be told from a null one once astropy has read it: NULL too.)"""
    import pyarrow.compute as pc

    if binary1:  # (astropy's ``format`` says how it would write the table, not how it read)
        return arrow
    for i, fld in enumerate(vot.get_first_table().fields):
        column = arrow.column(i)
        if fld.datatype in ("char", "unicodeChar") and pa.types.is_string(column.type):
            arrow = arrow.set_column(i, arrow.field(i), pc.if_else(
                pc.equal(column, ""), pa.scalar(None, pa.string()), column))
    return arrow


def votable_to_arrow(vot: Any) -> tuple[pa.Table, list[ColumnMeta]]:
    """The first TABLE of a parsed VOTable (astropy ``VOTableFile``) as Arrow plus column
    metadata (units, UCDs, frames kept; names not yet made ADQL identifiers)."""
    from astropy.io.votable.exceptions import VOWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VOWarning)
        try:
            vtable = vot.get_first_table()
        except IndexError:
            raise FormatError("the VOTable holds no TABLE") from None
        table = vtable.to_table(use_names_over_ids=True)
    arrow, metas = _from_astropy(table)
    systems = _votable_systems(vot)
    for meta, fld in zip(metas, vtable.fields, strict=True):
        meta.ucd = fld.ucd or meta.ucd
        meta.utype = fld.utype or meta.utype
        _field_type_and_system(meta, fld, systems)
    return arrow, metas


def _votable_vectorised(raw: bytes, max_rows: int | None = None
                        ) -> tuple[pa.Table, list[ColumnMeta]] | None:
    """The upload read by :mod:`taphouse.formats.votable_read` (astropy parses only the
    metadata); None when that module does not cover the document."""
    from taphouse.formats import votable_read

    parts = votable_read.split(raw)
    if parts is None:
        return None
    header, serialization, payload = parts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            vot = _parse_votable(header)
            vtable = vot.get_first_table()
        except FormatError:
            raise
        except Exception:  # noqa: BLE001 - astropy's parser will say what is wrong
            return None
    fields = list(vtable.fields)
    columns = votable_read.read_rows(fields, serialization, payload, max_rows)
    if columns is None:
        if max_rows is not None:  # astropy reads it: refuse what is past the limit first
            n = votable_read.count_rows(fields, serialization, payload)
            if n is not None and n > max_rows:
                raise votable_read.TooManyRows(n)
        return None
    names = [f.name or f.ID or f"col{i + 1}" for i, f in enumerate(fields)]
    arrow = pa.Table.from_arrays(columns, names=names)
    metas = columns_from_schema(arrow.schema)
    systems = _votable_systems(vot)
    for meta, fld in zip(metas, fields, strict=True):
        set_unit(meta, fld.unit)
        meta.description = fld.description or None
        meta.ucd, meta.utype = fld.ucd or None, fld.utype or None
        _field_type_and_system(meta, fld, systems)
    return arrow, metas


def _field_type_and_system(meta: ColumnMeta, fld: Any,
                           systems: dict[str, CoordSys | TimeSys]) -> None:
    """What a FIELD adds to a column's type (xtype, unicodeChar) and the COOSYS or
    TIMESYS its ``ref`` names, whichever reader decoded the rows."""
    meta.xtype = fld.xtype or meta.xtype
    if fld.datatype == "unicodeChar":
        meta.datatype = "unicodeChar"
    system = systems.get(fld.ref) if fld.ref else None
    if isinstance(system, CoordSys):
        meta.coosys = system
    elif isinstance(system, TimeSys):
        meta.timesys = system


def _votable_systems(vot: Any) -> dict[str, CoordSys | TimeSys]:
    """The COOSYS and TIMESYS of an uploaded VOTable, by ID, as the catalogue models
    them (so an uploaded table's positions keep their frame and epoch)."""
    out: dict[str, CoordSys | TimeSys] = {}
    for c in vot.iter_coosys():
        if c.ID:
            try:
                epoch = epoch_text(c.epoch)
            except ValueError:
                epoch = None
            out[c.ID] = CoordSys(frame_name(c.system) or str(c.system).upper(), epoch,
                                 c.equinox or None, getattr(c, "refposition", None) or None)
    for t in vot.iter_timesys():
        if t.ID:
            origin = t.timeorigin
            out[t.ID] = TimeSys(str(t.timescale).upper(), str(t.refposition).upper(),
                                None if origin is None else str(origin))
    return out


def _fits(data: Any, head: bytes) -> tuple[pa.Table, list[ColumnMeta]]:
    from astropy.table import Table

    table = Table.read(data, format="fits")
    arrow, metas = _from_astropy(table)
    for n, meta in enumerate(metas, start=1):  # the TUCDn/TCOMMn convention of STIL
        meta.ucd = meta.ucd or table.meta.get(f"TUCD{n}")
        meta.description = meta.description or table.meta.get(f"TCOMM{n}")
    return arrow, metas


def _parquet(data: Any, head: bytes,
             max_rows: int | None = None) -> tuple[pa.Table, list[ColumnMeta]]:
    import pyarrow.parquet as pq

    from taphouse.formats.parquet import CONTENT_KEY, read_bounded
    from taphouse.formats.votable_read import TooManyRows

    source = pq.ParquetFile(data)
    if max_rows is not None and source.metadata.num_rows > max_rows:
        # from the footer, before decoding: a few kB of one repeated value can stand for
        # millions of rows (gigabytes once read)
        raise TooManyRows(source.metadata.num_rows)
    # within the row limit, a few rows may still hold one huge dictionary string each
    if isinstance(data, str):
        nbytes = os.path.getsize(data)
    else:
        nbytes = data.seek(0, io.SEEK_END)
        data.seek(0)
    arrow = read_bounded(data, nbytes)
    metas = columns_from_schema(arrow.schema)
    content = (source.metadata.metadata or {}).get(CONTENT_KEY.encode())
    if content:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fields = _parse_votable(content).get_first_table().fields
        by_name = {f.name: f for f in fields}
        for meta in metas:
            fld = by_name.get(meta.name)
            if fld is not None:
                set_unit(meta, fld.unit)
                meta.ucd, meta.utype = fld.ucd, fld.utype
                meta.xtype = fld.xtype or meta.xtype
                meta.description = fld.description or None
    return arrow, metas


_UNSIGNED_NOTE = ("unsigned 64-bit integers written as decimal text: VOTable has no"
                  " unsigned long and some values are 2**63 or more")


def _unsigned_long(arrow: pa.Table, metas: list[ColumnMeta]) -> pa.Table:
    """Unsigned 64-bit columns (Parquet, FITS): ``long`` when every value fits one, else
    the exact values as decimal text, said in the column's description (a ``double``
    would round them past 2**53, a wrapped ``long`` would be wrong)."""
    import pyarrow.compute as pc

    for i, meta in enumerate(metas):
        column = arrow.column(i)
        if column.type != pa.uint64():
            continue
        largest = pc.max(column).as_py()
        if largest is None or largest < 2**63:
            arrow = arrow.set_column(i, arrow.field(i).name, column.cast(pa.int64()))
            continue
        arrow = arrow.set_column(i, arrow.field(i).name, column.cast(pa.string()))
        meta.datatype, meta.arraysize, meta.xtype = "char", "*", None
        meta.description = (f"{meta.description} ({_UNSIGNED_NOTE})" if meta.description
                            else _UNSIGNED_NOTE[0].upper() + _UNSIGNED_NOTE[1:])
    return arrow


def _csv(data: Any, head: bytes) -> tuple[pa.Table, list[ColumnMeta]]:
    import pyarrow.csv as pacsv

    delimiter = "\t" if b"\t" in head.split(b"\n", 1)[0] else ","
    arrow = pacsv.read_csv(data, parse_options=pacsv.ParseOptions(delimiter=delimiter))
    return arrow, columns_from_schema(arrow.schema)


_READERS = {"votable": _votable, "fits": _fits, "parquet": _parquet, "csv": _csv}


def read_upload(data: bytes | IO[bytes] | str | os.PathLike, *, content_type: str | None,
                name: str,
                max_rows: int) -> tuple[pa.Table, list[ColumnMeta]]:
    """Read one uploaded table.

    Parameters
    ----------
    data
        The uploaded bytes, a binary file object, or the path of a file holding them
        (read from there, not loaded whole first).
    content_type
        The part's declared content type; the bytes themselves decide where they are
        unambiguous (Parquet, FITS, XML), the content type picks CSV otherwise.
    name
        The TAP_UPLOAD table name, for messages.
    max_rows
        Largest number of rows accepted.

    Returns
    -------
    (pyarrow.Table, list of ColumnMeta)
        Columns renamed to lower-case ADQL identifiers, in the same order.

    Raises
    ------
    FormatError
        Unreadable data, clashing column names, or too many rows.
    """
    source: Any
    if isinstance(data, str | os.PathLike):
        # A file (an upload spooled to disk): the readers stream it from there.
        source = os.fspath(data)
        with open(source, "rb") as f:
            head = f.read(64 * 1024)
    else:
        if not isinstance(data, bytes | bytearray | memoryview):
            data = data.read()
        head = bytes(data[:64 * 1024])
        source = io.BytesIO(data)
    kind = _kind(head, content_type)
    from taphouse.formats.votable_read import TooManyRows

    try:
        if kind == "votable":  # (stops reading once past the limit)
            arrow, metas = _votable(source, head, max_rows)
        elif kind == "parquet":  # (the footer's row count is checked first)
            arrow, metas = _parquet(source, head, max_rows)
        else:
            arrow, metas = _READERS[kind](source, head)
    except FormatError as e:
        if str(e).startswith(f"upload {name}"):
            raise
        raise FormatError(f"upload {name}: {e}") from None  # which upload it is
    except TooManyRows:
        raise FormatError(f"upload {name} has more than {max_rows} rows; the limit is"
                          f" {max_rows}") from None
    except Exception as e:  # noqa: BLE001 - any parser failure is the upload's fault
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise FormatError(f"upload {name}: cannot read it as {kind}: {first}") from None
    if arrow.num_rows > max_rows:
        raise FormatError(f"upload {name} has {arrow.num_rows} rows; the limit is {max_rows}")
    if not metas:
        raise FormatError(f"upload {name} has no columns")
    arrow = _unsigned_long(arrow, metas)
    _rename(metas, name)
    arrow = arrow.rename_columns([m.name for m in metas])
    return arrow, metas
