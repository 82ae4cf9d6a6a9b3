"""Vectorised VOTable TABLEDATA rows: each cell becomes text with Arrow string kernels,
then one element-wise join builds ``<TR><TD>..</TD>..</TR>`` per row.

Nulls are empty cells; float NaN is ``NaN``, infinities ``+Inf``/``-Inf``; booleans
``T``/``F``; arrays are space-separated values (NaN for null elements).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from taphouse.formats.columns import STRING_TYPES, Field, concat_values, normalise

# Characters XML 1.0 does not allow in a document at all.
_XML_INVALID = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x{fffe}\\x{ffff}]"


def xml_text(text: pa.Array) -> pa.Array:
    """Escape a string array for XML character data."""
    if pc.any(pc.match_substring_regex(text, "[&<>\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]")).as_py():
        text = pc.replace_substring(text, "&", "&amp;")
        text = pc.replace_substring(text, "<", "&lt;")
        text = pc.replace_substring(text, ">", "&gt;")
        text = pc.replace_substring_regex(text, _XML_INVALID, "\ufffd")
    return text


def number_text(values: pa.Array) -> pa.Array:
    """Numbers as text: shortest round-trip floats, NaN and +Inf/-Inf as VOTable spells them."""
    text = pc.cast(values, pa.string())
    if pa.types.is_floating(values.type):
        odd = pc.invert(pc.is_finite(values))
        if pc.any(odd).as_py():
            text = pc.if_else(pc.is_nan(values), "NaN", text)
            text = pc.if_else(pc.is_inf(values),
                              pc.if_else(pc.greater(values, 0), "+Inf", "-Inf"), text)
    return text


def cell_text(array: pa.Array, fld: Field, *, null: str = "",
              booleans: tuple[str, str] = ("T", "F")) -> pa.Array:
    """Text of each cell (without XML escaping), ``null`` for null cells."""
    if fld.datatype in STRING_TYPES:
        text = array
    elif fld.is_array:
        flat = pc.list_flatten(array)
        if fld.datatype == "boolean":
            items = pc.if_else(flat, *booleans).fill_null("?")
        else:
            items = number_text(flat).fill_null("NaN")
        offsets = pc.subtract(array.offsets, array.offsets[0]) if len(array) else array.offsets
        lists = pa.ListArray.from_arrays(offsets, items, mask=array.is_null())
        text = pc.binary_join(lists, " ")
        if fld.count is not None and fld.datatype in ("float", "double") and not null:
            # votlint rejects an empty cell for a fixed-size array: write NaNs.
            null = " ".join(["NaN"] * fld.count)
    elif fld.datatype == "boolean":
        text = pc.if_else(array, *booleans)
    else:
        text = number_text(array)
    return text.fill_null(null) if text.null_count else text


class TabledataEncoder:
    """Encodes record batches into TABLEDATA ``<TR>`` rows (UTF-8 bytes)."""

    def __init__(self, fields: list[Field]):
        self.fields = fields

    def encode(self, batch: pa.RecordBatch) -> bytes:
        pieces: list[pa.Array | str] = ["<TR><TD>"]
        for j, (array, fld) in enumerate(zip(batch.columns, self.fields, strict=True)):
            if j:
                pieces.append("</TD><TD>")
            text = cell_text(normalise(array, fld), fld)
            if fld.datatype in STRING_TYPES:
                text = xml_text(text)
            pieces.append(text)
        pieces.append("</TD></TR>\n")
        if len(self.fields) == 0:
            pieces = ["<TR></TR>\n"]
        texts = [p for p in pieces if isinstance(p, str)]
        if len(texts) == len(pieces):
            return "".join(texts).encode() * int(batch.num_rows)
        rows = pc.binary_join_element_wise(*pieces, "")
        joined: bytes = concat_values(rows)
        return joined
