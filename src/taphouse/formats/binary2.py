"""Vectorised VOTable BINARY2 and BINARY row encoding (VOTable 1.4, sections 5.4-5.5).

A BINARY2 row is a null-flag bitmap (one bit per column, most significant bit first)
followed by each cell; a BINARY row is the cells alone, nulls written in the cell itself
(:data:`INT_NULLS` for integers, declared as ``VALUES null``; NaN for floats; ``?`` for
booleans; an empty string or array for the variable-size ones). Cells: fixed-size values big-endian, variable-size ones (``arraysize="*"``) as a
4-byte big-endian element count followed by the elements. ``char`` is one byte per
character, ``unicodeChar`` two (UTF-16BE), ``boolean`` one byte ``T``/``F``.

Rows are built column-wise with numpy: when every column has a fixed size the rows form
one ``(n, row_size)`` byte matrix; otherwise runs of fixed columns become such matrices
and Arrow's element-wise binary join concatenates them with the variable parts.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taphouse.formats.columns import Field, concat_values, normalise
from taphouse.formats.errors import FormatError

_NUMPY: dict[str, np.dtype] = {
    "unsignedByte": np.dtype(">u1"),
    "short": np.dtype(">i2"),
    "int": np.dtype(">i4"),
    "long": np.dtype(">i8"),
    "float": np.dtype(">f4"),
    "double": np.dtype(">f8"),
    "boolean": np.dtype("u1"),
}
_NON_ASCII = "[^\\x00-\\x7f]"

#: The value that stands for a null integer in BINARY (``<VALUES null="..."/>``): the
#: type's most negative value (255 for unsignedByte). A real value equal to it reads as
#: null; the writer says so in a trailing INFO when that happens.
INT_NULLS = {"unsignedByte": 255, "short": -(2**15), "int": -(2**31), "long": -(2**63)}


def _fill(values: pa.Array, datatype: str, binary1: bool = False) -> pa.Array:
    if values.null_count == 0:
        return values
    if datatype in ("float", "double"):
        return values.fill_null(float("nan"))
    if datatype == "boolean":
        return values.fill_null(False)
    return values.fill_null(INT_NULLS[datatype] if binary1 else 0)


def _numbers(values: pa.Array, datatype: str, binary1: bool = False) -> np.ndarray:
    """Big-endian bytes of a flat numeric (or boolean) array, one row per value (BINARY:
    nulls as the null value of the type, ``?`` for booleans)."""
    nulls = values.null_count
    mask = values.is_null().to_numpy(zero_copy_only=False) if nulls and binary1 else None
    values = _fill(values, datatype, binary1)
    if datatype == "boolean":
        raw = np.where(values.to_numpy(zero_copy_only=False), 84, 70).astype(np.uint8)
        if mask is not None:
            raw[mask] = 63
        return raw.reshape(-1, 1)
    dtype = _NUMPY[datatype]
    arr = values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    raw_bytes: np.ndarray = arr.view(np.uint8).reshape(len(arr), dtype.itemsize)
    return raw_bytes


def _counts(array: pa.Array) -> np.ndarray:
    counts: np.ndarray = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False)
    return counts


def _fixed_array(array: pa.Array, fld: Field, binary1: bool = False) -> np.ndarray:
    n = fld.count or 0
    counts = _counts(array)
    valid = ~array.is_null().to_numpy(zero_copy_only=False)
    if np.any(counts[valid] != n):
        bad = int(counts[valid][counts[valid] != n][0])
        raise FormatError(
            f"column {fld.meta.name!r} is declared with arraysize {fld.meta.arraysize} "
            f"but holds an array of {bad} elements")
    if array.null_count:
        filler = pa.scalar([None] * n, array.type)
        array = array.fill_null(filler)
    flat = _numbers(pc.list_flatten(array), fld.datatype, binary1)
    return flat.reshape(len(array), n * flat.shape[1])


def _var_array(array: pa.Array, fld: Field,
               binary1: bool = False) -> tuple[np.ndarray, pa.Array]:
    counts = _counts(array)
    flat = _numbers(pc.list_flatten(array), fld.datatype, binary1)
    width = flat.shape[1] if flat.ndim == 2 else _NUMPY[fld.datatype].itemsize
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts * width, out=offsets[1:])
    payload = pa.Array.from_buffers(
        pa.binary(), len(counts),
        [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(flat))])
    return _prefix(counts), payload


def _prefix(counts: np.ndarray) -> np.ndarray:
    return counts.astype(">i4").view(np.uint8).reshape(len(counts), 4)


def _utf16(text: pa.Array) -> tuple[np.ndarray, pa.Array]:
    encoded = [("" if s is None else s).encode("utf-16-be") for s in text.to_pylist()]
    payload = pa.array(encoded, pa.binary())
    counts = pc.binary_length(payload).to_numpy(zero_copy_only=False) // 2
    return _prefix(counts), payload


def _fixed_string(text: pa.Array, fld: Field) -> np.ndarray:
    n = fld.count or 1
    if fld.datatype == "unicodeChar":
        values = [("" if s is None else s).encode("utf-16-be")[:2 * n] for s in text.to_pylist()]
        raw = np.array(values, dtype=f"S{2 * n}")
        return raw.view(np.uint8).reshape(len(text), 2 * n)
    raw = np.array(text.fill_null("").cast(pa.binary()).to_pylist(), dtype=f"S{n}")
    return raw.view(np.uint8).reshape(len(text), n)


class Binary2Encoder:
    """Encodes record batches of one result into BINARY2 row bytes (``binary1=True``:
    BINARY rows, without the null flags).

    ``replaced`` lists the ``char`` columns in which non-ASCII characters had to be
    replaced by ``?``; ``cut`` the fixed-width text columns holding longer values (cut
    to the declared width: a remote's metadata may declare less than its data holds); ``clashes`` (BINARY) the integer columns holding a real value
    equal to their null value (it reads back as null).
    """

    def __init__(self, fields: list[Field], binary1: bool = False):
        self.fields = fields
        self.binary1 = binary1
        self.flag_bytes = 0 if binary1 else (len(fields) + 7) // 8
        self.replaced: list[str] = []
        self.clashes: list[str] = []
        self.cut: list[str] = []

    def _check_null_value(self, array: pa.Array, fld: Field) -> None:
        null = INT_NULLS.get(fld.datatype)
        if null is None or fld.meta.name in self.clashes:
            return
        values = pc.list_flatten(array) if fld.is_array else array
        if pc.any(pc.equal(values, null)).as_py():
            self.clashes.append(fld.meta.name)

    def _cell(self, array: pa.Array, fld: Field) -> np.ndarray | tuple[np.ndarray, pa.Array]:
        if self.binary1:
            self._check_null_value(array, fld)
        if fld.is_array:
            if fld.count is None:
                return _var_array(array, fld, self.binary1)
            return _fixed_array(array, fld, self.binary1)
        if fld.datatype == "char" or fld.datatype == "unicodeChar":
            text = array.fill_null("") if array.null_count else array
            if fld.datatype == "char" and pc.all(pc.string_is_ascii(text)).as_py() is False:
                text = pc.replace_substring_regex(text, _NON_ASCII, "?")
                if fld.meta.name not in self.replaced:
                    self.replaced.append(fld.meta.name)
            if fld.count is not None:
                if fld.meta.name not in self.cut and \
                        (pc.max(pc.utf8_length(text)).as_py() or 0) > fld.count:
                    self.cut.append(fld.meta.name)
                return _fixed_string(text, fld)
            if fld.datatype == "unicodeChar":
                return _utf16(text)
            payload = text.cast(pa.binary())
            return _prefix(pc.binary_length(payload).to_numpy(zero_copy_only=False)), payload
        return _numbers(array, fld.datatype, self.binary1)

    def _flags(self, arrays: list[pa.Array], n: int) -> np.ndarray:
        flags = np.zeros((n, self.flag_bytes), dtype=np.uint8)
        for j, array in enumerate(arrays):
            if array.null_count:
                mask = array.is_null().to_numpy(zero_copy_only=False)
                flags[:, j // 8] |= mask.astype(np.uint8) << np.uint8(7 - j % 8)
        return flags

    def encode(self, batch: pa.RecordBatch) -> bytes | memoryview:
        """The BINARY2 bytes of every row of ``batch``."""
        n = batch.num_rows
        arrays = [normalise(a, f) for a, f in zip(batch.columns, self.fields, strict=True)]
        parts: list[np.ndarray | pa.Array] = [] if self.binary1 else [self._flags(arrays, n)]
        for array, fld in zip(arrays, self.fields, strict=True):
            cell = self._cell(array, fld)
            if isinstance(cell, tuple):
                parts.extend(cell)
            else:
                parts.append(cell)
        if all(isinstance(p, np.ndarray) for p in parts):
            return _stack(parts, n).data
        return _join(parts, n)


def _stack(parts: list, n: int) -> np.ndarray:
    width = sum(p.shape[1] for p in parts)
    out = np.empty((n, width), dtype=np.uint8)
    pos = 0
    for p in parts:
        out[:, pos:pos + p.shape[1]] = p
        pos += p.shape[1]
    return out


def _as_binary(matrix: np.ndarray) -> pa.Array:
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_binary(), n, [
        None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(matrix))])


def _join(parts: list, n: int) -> bytes:
    runs: list[pa.Array] = []
    pending: list[np.ndarray] = []
    for p in parts:
        if isinstance(p, np.ndarray):
            pending.append(p)
            continue
        if pending:
            runs.append(_as_binary(_stack(pending, n)))
            pending = []
        runs.append(p.cast(pa.large_binary()))
    if pending:
        runs.append(_as_binary(_stack(pending, n)))
    return concat_values(pc.binary_join_element_wise(*runs, pa.scalar(b"", pa.large_binary())))
