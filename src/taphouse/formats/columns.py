"""Column metadata as the writers see it: one :class:`Field` per result column.

A writer trusts the declared VOTable ``datatype``/``arraysize`` of each
:class:`~taphouse.catalogue.model.ColumnMeta` and casts the Arrow data to the matching
canonical Arrow type (:func:`normalise`), so every format writes what the metadata says.

Strings: ``char`` holds ASCII text, ``unicodeChar`` anything else (written as UTF-16BE in
binary serialisations, as astropy and STIL read it). A ``char`` column whose first batch
holds non-ASCII text is declared ``unicodeChar`` instead (:func:`promote_unicode`); the
VOTable writer replaces non-ASCII characters that show up in a ``char`` column only in
later batches by ``?`` and says so in a trailing INFO.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from taphouse.catalogue.model import ColumnMeta, votable_type_for_arrow
from taphouse.formats.errors import FormatError

#: Canonical Arrow type of each scalar VOTable datatype.
ARROW_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "unsignedByte": pa.uint8(),
    "short": pa.int16(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "char": pa.string(),
    "unicodeChar": pa.string(),
}
STRING_TYPES = ("char", "unicodeChar")


@dataclass(frozen=True)
class Field:
    """How one column is encoded.

    ``count`` is the fixed number of elements (characters for strings) per value, or
    ``None`` when variable (arraysize ``*`` or ``n*``). ``is_array`` is true for numeric
    arrays (a string is a scalar here, whatever its arraysize).
    """

    meta: ColumnMeta
    datatype: str
    count: int | None
    is_array: bool

    @property
    def arrow_type(self) -> pa.DataType:
        base = ARROW_TYPES[self.datatype]
        return pa.list_(base) if self.is_array else base


def _count(arraysize: str | None) -> int | None:
    if arraysize is None or arraysize == "":
        return 1
    if arraysize.endswith("*"):
        return None
    n = 1
    for part in arraysize.split("x"):
        if part.endswith("*"):
            return None
        n *= int(part)
    return n


def field_for(meta: ColumnMeta) -> Field:
    """The :class:`Field` of a column; :class:`FormatError` if its type cannot be written."""
    if meta.datatype not in ARROW_TYPES:
        raise FormatError(
            f"column {meta.name!r}: datatype {meta.datatype!r} cannot be written; "
            f"use one of {', '.join(ARROW_TYPES)}")
    try:
        count = _count(meta.arraysize)
    except ValueError:
        raise FormatError(
            f"column {meta.name!r}: bad arraysize {meta.arraysize!r}") from None
    is_array = meta.datatype not in STRING_TYPES and meta.arraysize not in (None, "", "1")
    return Field(meta, meta.datatype, count, is_array)


def columns_from_schema(schema: pa.Schema) -> list[ColumnMeta]:
    """Plain :class:`ColumnMeta` (name and type only) for each field of an Arrow schema."""
    out = []
    for f in schema:
        datatype, arraysize, xtype = votable_type_for_arrow(f.type)
        out.append(ColumnMeta(name=f.name, datatype=datatype, arraysize=arraysize,
                              xtype=xtype))
    return out


def _to_string(array: pa.Array) -> pa.Array:
    t = array.type
    if pa.types.is_dictionary(t):
        array = array.dictionary_decode()
        t = array.type
    if pa.types.is_timestamp(t):
        return pc.strftime(array, format="%Y-%m-%dT%H:%M:%S")
    if pa.types.is_date(t):
        return pc.strftime(array, format="%Y-%m-%d")
    if pa.types.is_boolean(t):
        return pc.if_else(array, "T", "F")
    return pc.cast(array, pa.string())


def normalise(array: pa.Array, fld: Field) -> pa.Array:
    """Cast one column's data to the canonical Arrow type of its field."""
    target = fld.arrow_type
    if array.type == target:
        return array
    try:
        if fld.datatype in STRING_TYPES:
            return _to_string(array)
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if fld.is_array and _is_bytes(array.type):
            return _bytes_as_list(array, target)
        return pc.cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise FormatError(
            f"column {fld.meta.name!r}: cannot write {array.type} values as "
            f"{fld.datatype}{'[' + (fld.meta.arraysize or '') + ']' if fld.is_array else ''}"
            f": {e}") from None


def _is_bytes(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t)
                or pa.types.is_fixed_size_binary(t))


def _bytes_as_list(array: pa.Array, target: pa.DataType) -> pa.Array:
    """A BLOB column (Arrow binary) as the list of bytes it is declared as
    (``unsignedByte`` arrays): Arrow has no cast from binary to list."""
    if pa.types.is_fixed_size_binary(array.type):
        array = array.cast(pa.binary())
    if pa.types.is_large_binary(array.type):  # (offsets past 2 GiB cannot be a list)
        array = array.cast(pa.binary())
    import numpy as np

    n = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=n + 1,
                            offset=array.offset * 4)
    data = array.buffers()[2]
    start, end = int(offsets[0]), int(offsets[-1])
    values = (pa.Array.from_buffers(pa.uint8(), end - start, [None, data], offset=start)
              if end > start else pa.array([], pa.uint8()))
    mask = array.is_null() if array.null_count else None
    return pc.cast(pa.ListArray.from_arrays(pa.array(offsets - start), values, mask=mask),
                   target)


def promote_unicode(fields: list[Field], batch: pa.RecordBatch | None) -> list[Field]:
    """Declare ``unicodeChar`` for ``char`` columns whose data in ``batch`` is not ASCII."""
    if batch is None:
        return fields
    out = []
    for fld, array in zip(fields, batch.columns, strict=True):
        if fld.datatype == "char":
            text = normalise(array, fld)
            if pc.all(pc.string_is_ascii(text)).as_py() is False:
                meta = dataclasses.replace(fld.meta, datatype="unicodeChar")
                fld = dataclasses.replace(fld, meta=meta, datatype="unicodeChar")
        out.append(fld)
    return out


def check_columns(columns: list[ColumnMeta], schema: pa.Schema) -> None:
    if len(columns) != len(schema):
        raise FormatError(
            f"the result has {len(schema)} columns but {len(columns)} column descriptions")


def concat_values(array: pa.Array) -> bytes:
    """All values of a (large) string or binary array, concatenated, as bytes."""
    import numpy as np

    n = len(array)
    if n == 0:
        return b""
    large = pa.types.is_large_binary(array.type) or pa.types.is_large_string(array.type)
    width = 8 if large else 4
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64 if large else np.int32,
                            count=n + 1, offset=array.offset * width)
    data: bytes = array.buffers()[2][int(offsets[0]):int(offsets[-1])].to_pybytes()
    return data
