"""Vectorised reading of the rows of an uploaded VOTable (TABLEDATA, BINARY, BINARY2).

astropy's VOTable parser converts every cell with a Python call (1-5 s for 100,000 rows
of three columns); here the whole DATA element is cut out of the document, the rest (the
metadata: FIELDs, COOSYS, ...) is still parsed by astropy, and the rows are decoded
column by column:

- TABLEDATA: one regular expression finds every ``<TD>`` (C speed), each column is the
  strided slice of the cells, converted with Arrow's string kernels;
- BINARY / BINARY2: with fixed-size columns only, the decoded stream is an ``(n, row)``
  byte matrix; with variable-size text columns, one Python step per row reads only their
  4-byte counts, then every column is gathered with numpy (null flags of BINARY2 unpacked
  with ``np.unpackbits``; BINARY nulls from ``VALUES null`` for integers, NaN for floats).

Numeric arrays of one dimension (``arraysize="3"``, ``"*"``, ``"10*"``) become Arrow
fixed-size lists and lists, as astropy's reading makes them (upload.py ``_from_astropy``):
an element that is NaN or the ``VALUES null`` value is a null element; a cell is null
when it is empty in TABLEDATA, flagged in BINARY2, or a fixed-size array whose every
element is null (how BINARY writes a null array); an empty variable-size cell is an
empty array.

What this does not cover returns ``None`` and the caller falls back to astropy: arrays
of ``boolean`` or ``bit``, arrays of more than one dimension, complex types, CDATA,
comments or ``encoding`` inside TABLEDATA, namespaced tags, ragged rows, values Arrow
cannot read (e.g. hexadecimal integers). Nulls follow astropy's reading: an empty cell,
the ``VALUES null`` value of an integer column and NaN are null.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Cell text cannot hold "<" (CDATA and comments are refused first), nor can attribute
# values, so "[^<]*" and "[^<>]*" keep the search linear whatever the input (with "[^>]*"
# for the attributes, "<TD<TD<TD..." rescanned to the end from every tag: quadratic); a
# cell with markup inside fails to match, the cell count then differs from rows x fields
# and astropy reads the document.
_TD = re.compile(rb"<TD\b[^<>]*?(?:/>|>([^<]*)</TD\s*>)")
_TR_ATTRS = re.compile(rb"<TR\s")
_SCALARS = {"boolean": 1, "bit": 1, "unsignedByte": 1, "short": 2, "int": 4, "long": 8, "float": 4,
            "double": 8}
_NUMPY = {"unsignedByte": ">u1", "short": ">i2", "int": ">i4", "long": ">i8", "float": ">f4",
          "double": ">f8"}
_ARROW = {"unsignedByte": pa.uint8(), "short": pa.int16(), "int": pa.int32(),
          "long": pa.int64(), "float": pa.float32(), "double": pa.float64()}


class Unsupported(Exception):
    """The document needs astropy's general parser."""


class _Kind(NamedTuple):
    """How a FIELD's cells are stored: ``width`` is the fixed size in bytes (None if
    variable); ``items`` the element count of a fixed-size numeric array, ``-1`` for a
    variable-size one, None for scalars and text; ``per`` the bytes of one element (of one
    character for text)."""

    datatype: str
    width: int | None
    items: int | None = None
    per: int = 1


def split(doc: bytes) -> tuple[bytes, str, bytes] | None:
    """``(document without the first table's DATA, serialization, payload)``: the payload
    is the text inside TABLEDATA or the base64 inside the BINARY/BINARY2 STREAM."""
    table = doc.find(b"<TABLE")
    if table < 0:
        return None
    start = doc.find(b"<DATA", table)
    if start < 0 or doc.find(b"</TABLE", table, start) >= 0:
        return None
    end = doc.find(b"</DATA>", start)
    if end < 0:
        return None
    if _hidden_markup(doc, end):
        return None
    inner = doc[doc.find(b">", start) + 1:end]
    body = inner.lstrip()
    for kind in (b"TABLEDATA", b"BINARY2", b"BINARY"):
        if body.startswith(b"<" + kind + b">"):
            close = body.rfind(b"</" + kind + b">")
            if close < 0:
                return None
            payload = body[len(kind) + 2:close]
            if kind != b"TABLEDATA":
                stream = re.fullmatch(rb"\s*<STREAM\b([^>]*)>(.*)</STREAM>\s*", payload,
                                      re.DOTALL)
                if stream is None or b'encoding="base64"' not in stream.group(1).replace(
                        b"'", b'"') or b"href" in stream.group(1):
                    return None
                payload = stream.group(2)
                if b"<" in payload:  # markup inside the base64 (a comment...)
                    return None
            header = doc[:start] + doc[end + len(b"</DATA>"):]
            return header, kind.decode(), payload
    return None


_HIDING = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))
_TABLE_TAGS = (b"<TABLE", b"<DATA", b"</DATA", b"<TR", b"<TD", b"<STREAM", b"<FIELD")


def _hidden_markup(doc: bytes, end: int) -> bool:
    """Whether the document up to the first ``</DATA>`` has text that only looks like the
    table: table tags in a comment, CDATA section or processing instruction ("<!-- <TABLE>
    <DATA>... -->" would be read instead of the real rows), or entity declarations (a
    cell's "&x;" is then not a character reference). astropy reads those documents."""
    before = doc[:end]
    if b"<!ENTITY" in before:
        return True
    for opening, closing in _HIDING:
        i = before.find(opening)
        while i >= 0:
            j = doc.find(closing, i + len(opening))
            if j < 0 or any(t in doc[i:j] for t in _TABLE_TAGS):
                return True
            i = before.find(opening, j)
    return False


def _kind(field: Any) -> _Kind:
    """How the field's cells are stored; Unsupported when this module cannot read them."""
    datatype = field.datatype
    arraysize = field.arraysize
    if datatype in ("char", "unicodeChar"):
        per = 1 if datatype == "char" else 2
        if arraysize is None or arraysize == "":
            return _Kind(datatype, per, None, per)
        if "*" in arraysize or "x" in arraysize:
            return _Kind(datatype, None, None, per)
        return _Kind(datatype, per * int(arraysize), None, per)
    if datatype not in _SCALARS:
        raise Unsupported(datatype)
    size = _SCALARS[datatype]
    if arraysize in (None, "", "1"):
        return _Kind(datatype, size, None, size)
    if datatype not in _NUMPY or "x" in arraysize:
        raise Unsupported(f"{datatype} array")  # boolean/bit arrays, several dimensions
    if arraysize.endswith("*"):
        return _Kind(datatype, None, -1, size)
    items = int(arraysize)
    if items <= 0:
        raise Unsupported("arraysize")
    return _Kind(datatype, size * items, items, size)


def _null_value(field: Any) -> Any:
    values = getattr(field, "values", None)
    return None if values is None else values.null


def read_rows(fields: list[Any], serialization: str, payload: bytes,
              max_rows: int | None = None) -> list[pa.Array] | None:
    """The columns of the rows in ``payload``, or None when astropy must do it.

    Raises :class:`TooManyRows` as soon as a binary stream is seen to hold more than
    ``max_rows`` rows (TABLEDATA rows are counted before anything is converted)."""
    try:
        kinds = [_kind(f) for f in fields]
        if serialization == "TABLEDATA":
            return _tabledata(fields, kinds, payload, max_rows)
        return _binary(fields, kinds, payload, serialization == "BINARY2", max_rows)
    except (Unsupported, pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError,
            UnicodeDecodeError, OverflowError):
        return None


def _tabledata(fields: list[Any], kinds: list[_Kind],
               payload: bytes, max_rows: int | None = None) -> list[pa.Array]:
    if b"<![CDATA[" in payload or b"<!--" in payload or b"encoding" in payload:
        raise Unsupported("TABLEDATA markup")
    rows = payload.count(b"<TR>") + len(_TR_ATTRS.findall(payload))
    if max_rows is not None and rows > max_rows:
        raise TooManyRows(rows)  # before a Python object is made for each cell
    _check_cells_per_row(payload, rows, len(fields))
    cells = _TD.findall(payload)
    nf = len(fields)
    if nf == 0 or len(cells) != rows * nf:
        raise Unsupported("ragged rows")
    out = []
    for j, (field, kind) in enumerate(zip(fields, kinds, strict=True)):
        datatype = kind.datatype
        text = pa.array(cells[j::nf], pa.binary()).cast(pa.string())
        if datatype in ("char", "unicodeChar"):
            out.append(_xml_strings(text))
            continue
        text = pc.utf8_trim_whitespace(text)
        if kind.items is not None:
            out.append(_tabledata_array(field, kind, text))
            continue
        empty = pc.equal(text, "")
        if datatype in ("boolean", "bit"):
            low = pc.utf8_lower(text)
            true = pc.is_in(low, pa.array(["t", "true", "1"]))
            false = pc.is_in(low, pa.array(["f", "false", "0"]))
            out.append(pc.if_else(true, True, pc.if_else(false, False, pa.scalar(None,
                                                                                 pa.bool_()))))
            continue
        out.append(_numbers(pc.if_else(empty, pa.scalar(None, pa.string()), text), datatype,
                            field))
    return out


def _numbers(text: pa.Array, datatype: str, field: Any) -> pa.Array:
    """Numbers from their TABLEDATA text (no empty strings): NaN and the ``VALUES null``
    value of an integer column null."""
    if datatype in ("float", "double"):
        values = pc.cast(text, _ARROW[datatype])
        return pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
    if pc.any(pc.starts_with(text, "+")).as_py():
        text = pc.replace_substring_regex(text, r"^\+", "")
    values = pc.cast(text, _ARROW[datatype])
    null = _null_value(field)
    if null is not None:
        values = pc.if_else(pc.equal(values, pa.scalar(int(null), values.type)),
                            pa.scalar(None, values.type), values)
    return values


def _tabledata_array(field: Any, kind: _Kind, text: pa.Array) -> pa.Array:
    """A numeric array column from its (trimmed) TD texts: numbers separated by
    whitespace; an empty cell is a null fixed-size array or an empty variable-size one."""
    empty = pc.equal(text, "").to_numpy(zero_copy_only=False)
    words = pc.utf8_split_whitespace(pc.if_else(pa.array(empty), pa.scalar(None, pa.string()),
                                                text))
    counts = pc.list_value_length(words).fill_null(0).to_numpy(zero_copy_only=False)
    values = _numbers(pc.list_flatten(words), kind.datatype, field)
    if kind.items is not None and kind.items > 0 and np.any(counts[~empty] != kind.items):
        raise Unsupported("array length")  # astropy says which row
    fixed = kind.items is not None and kind.items > 0
    return _array(values, counts, empty if fixed else np.zeros(len(empty), bool), kind)


def _array(values: pa.Array, counts: np.ndarray, mask: np.ndarray, kind: _Kind) -> pa.Array:
    """A list column of ``counts[i]`` elements a row from ``values`` (null elements
    included); rows in ``mask`` null, and fixed-size rows whose elements are all null."""
    n = len(counts)
    if kind.items is not None and kind.items > 0:
        slots = values
        if len(values) != n * kind.items:  # rows without values (empty TDs)
            full = np.repeat(counts > 0, kind.items)
            slots = pa.nulls(n * kind.items, values.type)
            if len(values):
                index = np.zeros(n * kind.items, dtype=np.int64)
                index[full] = np.arange(len(values))
                slots = pc.if_else(pa.array(full), pc.take(values, pa.array(index)), slots)
        nulls = slots.is_null().to_numpy(zero_copy_only=False).reshape(n, kind.items)
        mask = mask | nulls.all(axis=1)
        return pa.FixedSizeListArray.from_arrays(slots, kind.items,
                                                 mask=pa.array(mask) if mask.any() else None)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise Unsupported("more than 2**31 array elements")
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values,
                                    mask=pa.array(mask) if mask.any() else None)


def _check_cells_per_row(payload: bytes, rows: int, nf: int) -> None:
    """Every row has ``nf`` cells (a total of rows x fields is not enough: "<TR> 3 cells
    </TR><TR> 1 cell </TR>" would be read as two rows of two); Unsupported otherwise, and
    astropy reports the ragged row. Tags are found with numpy: "<" is in no cell text."""
    data = np.frombuffer(payload, dtype=np.uint8)
    if len(data) < 3:
        return
    lt = np.flatnonzero(data[:-2] == ord("<"))
    tag = lt[data[lt + 1] == ord("T")]
    second = data[tag + 2]
    tr, td = tag[second == ord("R")], tag[second == ord("D")]
    if len(tr) != rows:
        raise Unsupported("row tags")
    # cells before the first row tag count in per_row[0], those of row i in per_row[i + 1]
    per_row = np.bincount(np.searchsorted(tr, td, side="right"), minlength=rows + 1)
    if per_row[0] or np.any(per_row[1:] != nf):
        raise Unsupported("ragged rows")


def _xml_strings(text: pa.Array) -> pa.Array:
    """TD text: entities decoded, empty cells null."""
    if pc.any(pc.match_substring(text, "&")).as_py():
        text = pa.array([None if s is None else html.unescape(s) if "&" in s else s
                         for s in text.to_pylist()], pa.string())
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _binary(fields: list[Any], kinds: list[_Kind], payload: bytes,
            binary2: bool, max_rows: int | None = None) -> list[pa.Array]:
    raw = base64.b64decode(payload)
    nf = len(fields)
    flag_bytes = (nf + 7) // 8 if binary2 else 0
    data = np.frombuffer(raw, dtype=np.uint8)
    if all(kind.width is not None for kind in kinds):
        row = flag_bytes + sum(kind.width or 0 for kind in kinds)
        if nf == 0 or row == 0 or len(raw) % row:
            raise Unsupported("stream length")
        n = len(raw) // row
        if max_rows is not None and n > max_rows:
            raise TooManyRows(n)
        row_starts = np.arange(n, dtype=np.int64) * row
        starts, lengths = _fixed_layout(kinds, flag_bytes, row_starts)
    else:
        row_starts, starts, lengths = _walk_rows(raw, kinds, flag_bytes, max_rows)
        n = len(row_starts)
    flags = None
    if binary2:
        bits = _gather(data, row_starts + 0, flag_bytes)
        flags = np.unpackbits(bits, axis=1)[:, :nf].astype(bool)
    out = []
    for j, (field, kind) in enumerate(zip(fields, kinds, strict=True)):
        datatype, width = kind.datatype, kind.width
        mask = flags[:, j].copy() if flags is not None else np.zeros(n, dtype=bool)
        if width is None:
            length = lengths[j]
            assert length is not None  # a stream with variable columns was walked
            if kind.items is not None:
                _, values = _cell_bytes(data, starts[j], length)
                numbers = _binary_numbers(values.view(_NUMPY[datatype]), field)
                out.append(_array(numbers, length // kind.per, mask, kind))
            else:
                out.append(_variable_text(data, starts[j], length, datatype, mask))
            continue
        cell = _gather(data, starts[j], width)
        if kind.items is not None:
            numbers = _binary_numbers(cell.view(_NUMPY[datatype]).ravel(), field)
            out.append(_array(numbers, np.full(n, kind.items), mask, kind))
            continue
        if datatype == "char":
            values = cell.view(f"S{width}").ravel()
            text = pa.array(values, pa.binary()).cast(pa.string())
            text = pc.utf8_rtrim(text, characters="\x00")
            out.append(pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), text)
                       if mask.any() else text)
            continue
        if datatype == "unicodeChar":
            units = cell.view(">u2").astype(np.uint32)
            if ((units >= 0xD800) & (units <= 0xDFFF)).any():
                raise Unsupported("UTF-16 surrogates")
            values = units.view(f"<U{width // 2}").ravel()
            out.append(pa.array(values, pa.string(), mask=mask if mask.any() else None))
            continue
        if datatype == "bit":  # one bit, the most significant of its byte (astropy
            # writes 0x08 for 1: any bit set is true, the rest is padding)
            out.append(pa.array(cell[:, 0] != 0, mask=mask if mask.any() else None))
            continue
        if datatype == "boolean":
            byte = cell[:, 0]
            true = np.isin(byte, np.frombuffer(b"Tt1", np.uint8))
            false = np.isin(byte, np.frombuffer(b"Ff0", np.uint8))
            out.append(pa.array(true, mask=mask | ~(true | false)))
            continue
        out.append(_binary_numbers(cell.view(_NUMPY[datatype]).ravel(), field, mask))
    return out


def _binary_numbers(big_endian: np.ndarray, field: Any,
                    mask: np.ndarray | None = None) -> pa.Array:
    """Numbers from their big-endian values: those in ``mask``, NaN and the ``VALUES
    null`` value of an integer column null."""
    values = big_endian.astype(big_endian.dtype.newbyteorder("="))
    mask = np.zeros(len(values), bool) if mask is None else mask
    if values.dtype.kind == "f":
        mask = mask | np.isnan(values)
    else:
        null = _null_value(field)
        if null is not None:
            mask = mask | (values == int(null))
    return pa.array(values, mask=mask if mask.any() else None)


_SIZES = {**_SCALARS, "char": 1, "unicodeChar": 2, "floatComplex": 8, "doubleComplex": 16}


def count_rows(fields: list[Any], serialization: str, payload: bytes) -> int | None:
    """The number of rows in ``payload`` without decoding a cell (for documents left to
    astropy, whose reading costs ~13 us a row: a 200 MB stream past the row limit took
    minutes before the limit was checked); None when it cannot be known (a column of
    variable size, an unknown datatype)."""
    if serialization == "TABLEDATA":
        return payload.count(b"<TR>") + len(_TR_ATTRS.findall(payload))
    row = (len(fields) + 7) // 8 if serialization == "BINARY2" else 0
    for field in fields:
        size = _SIZES.get(field.datatype)
        arraysize = field.arraysize or "1"
        if size is None or "*" in arraysize:
            return None
        try:
            count = int(np.prod([int(x) for x in arraysize.split("x")]))
        except ValueError:
            return None
        row += (count + 7) // 8 if field.datatype == "bit" else size * count
    if row <= 0:
        return None
    try:
        return len(base64.b64decode(payload)) // row
    except ValueError:
        return None


class TooManyRows(Exception):
    """The stream holds more rows than the caller accepts (``args[0]``: how many were
    seen)."""


def _gather(data: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bytes at each start, as an ``(n, width)`` matrix."""
    if len(starts) > 1 and np.all(np.diff(starts) == starts[1] - starts[0]) and \
            starts[1] - starts[0] >= width:
        # rows of equal size: a strided view, no index arrays
        step = int(starts[1] - starts[0])
        view = np.lib.stride_tricks.as_strided(data[int(starts[0]):], shape=(len(starts), width),
                                               strides=(step, 1))
        return np.ascontiguousarray(view)
    return data[starts[:, None] + np.arange(width)]


def _fixed_layout(kinds: list[_Kind], flag_bytes: int,
                  row_starts: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    starts = []
    pos = flag_bytes
    for kind in kinds:
        starts.append(row_starts + pos)
        pos += kind.width or 0
    return starts, [None] * len(kinds)


def _walk_rows(raw: bytes, kinds: list[_Kind], flag_bytes: int,
               max_rows: int | None) -> tuple[np.ndarray, list[np.ndarray], list[Any]]:
    """Row and cell positions of a stream with variable-size (text) columns: one Python
    step per row and variable column, reading only the 4-byte counts; the cells are then
    taken column by column with numpy."""
    import struct

    # Segments: fixed bytes before each variable column (since the row start or the end of
    # the previous variable column), then the fixed bytes after the last one.
    anchors: list[tuple[int, int]] = []  # per column: (variable column it follows, offset)
    gaps: list[int] = []
    per_item: list[int] = []  # bytes of a character or array element
    pos, anchor = flag_bytes, -1
    for kind in kinds:
        if kind.width is None:
            anchors.append((-2, len(gaps)))  # marker: variable column number len(gaps)
            gaps.append(pos)
            per_item.append(kind.per)
            pos, anchor = 0, len(gaps) - 1
        else:
            anchors.append((anchor, pos))
            pos += kind.width
    tail = pos
    count = struct.Struct(">I").unpack_from
    total = len(raw)
    row_starts: list[int] = []
    var_starts: list[list[int]] = [[] for _ in gaps]
    var_lengths: list[list[int]] = [[] for _ in gaps]
    segments = list(zip(gaps, per_item, var_starts, var_lengths, strict=True))
    p = 0
    try:
        while p < total:
            row_starts.append(p)
            if max_rows is not None and len(row_starts) > max_rows:
                raise TooManyRows(len(row_starts))
            for gap, per, at, sizes in segments:
                p += gap
                n = count(raw, p)[0] * per
                p += 4
                at.append(p)
                sizes.append(n)
                p += n
            p += tail
    except struct.error:
        raise Unsupported("stream ends inside a row") from None
    if p != total:
        raise Unsupported("stream ends inside a row")
    rows = np.array(row_starts, dtype=np.int64)
    var_at = [np.array(a, dtype=np.int64) for a in var_starts]
    var_n = [np.array(a, dtype=np.int64) for a in var_lengths]
    starts: list[np.ndarray] = []
    lengths: list[Any] = []
    for anchor, offset in anchors:
        if anchor == -2:
            starts.append(var_at[offset])
            lengths.append(var_n[offset])
        elif anchor == -1:
            starts.append(rows + offset)
            lengths.append(None)
        else:
            starts.append(var_at[anchor] + var_n[anchor] + offset)
            lengths.append(None)
    return rows, starts, lengths


def _cell_bytes(data: np.ndarray, starts: np.ndarray,
                lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, bytes)``: the ``lengths[i]`` bytes at each ``starts[i]`` of the stream,
    one after the other, and where each cell starts in them."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # The cells' bytes in order, through a one-byte-per-byte mask of the stream (+1 where
    # a cell starts, -1 where it ends, summed): an index of eight bytes per text byte
    # made a 28 MB upload peak at 390 MB. Cells of one column never touch (a 4-byte count
    # lies between them), so no start falls on another cell's end.
    some = lengths > 0
    marks = np.zeros(len(data) + 1, dtype=np.int8)
    marks[starts[some]] = 1
    marks[starts[some] + lengths[some]] = -1
    inside = np.cumsum(marks[:-1], dtype=np.int8).view(np.bool_)
    del marks
    return offsets, data[inside]


def _variable_text(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, datatype: str,
                   mask: np.ndarray) -> pa.Array:
    offsets, values = _cell_bytes(data, starts, lengths)
    if datatype == "char":
        array = pa.Array.from_buffers(pa.large_binary(), len(lengths), [
            None, pa.py_buffer(offsets), pa.py_buffer(values)])
        text = array.cast(pa.large_string()).cast(pa.string())
        text = pc.utf8_rtrim(text, characters="\x00")
    else:
        blob = values.tobytes()
        text = pa.array([blob[a:b].decode("utf-16-be") for a, b in
                         zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)],
                        pa.string())
    if mask.any():
        text = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), text)
    return text
