"""A result as one JSON document, streamed::

    {"query": "...", "infos": {"name": "value"},
     "metadata": [{"name": "ra", "datatype": "double", "arraysize": null, "xtype": null,
                   "unit": "deg", "ucd": "pos.eq.ra", "utype": null, "description": "..."}],
     "data": [[1.5, "abc", null, [1.0, 2.0]], ...],
     "rows": 2, "overflow": false, "status": "OK"}

``status`` is ``OK``, ``OVERFLOW`` (MAXREC or the size limit per result cut the rows,
``overflow`` is true; for the size limit ``warning`` says so) or
``ERROR`` (the rows failed part way; ``error`` holds the message and ``data`` is
incomplete). NaN and infinities are ``null``, as JSON has no such numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats.columns import (
    STRING_TYPES,
    Field,
    check_columns,
    concat_values,
    field_for,
    normalise,
)
from taphouse.formats.result import ByteCap, ResultInfo, started_batches

_META_KEYS = ("name", "datatype", "arraysize", "xtype", "unit", "ucd", "utype", "description")


def _numbers(values: pa.Array) -> pa.Array:
    text = pc.cast(values, pa.string())
    if pa.types.is_floating(values.type):
        bad = pc.invert(pc.is_finite(values))
        text = pc.if_else(bad, pa.scalar(None, pa.string()), text)
    return text.fill_null("null")


def _strings(text: pa.Array) -> pa.Array:
    if pc.any(pc.match_substring_regex(text, "[\\x00-\\x1f]")).as_py():
        return pa.array([json.dumps(s, ensure_ascii=False) if s is not None else "null"
                         for s in text.to_pylist()], pa.string())
    text = pc.replace_substring(text, "\\", "\\\\")
    text = pc.replace_substring(text, '"', '\\"')
    return pc.binary_join_element_wise('"', text, '"', "").fill_null("null")


def json_cells(array: pa.Array, fld: Field) -> pa.Array:
    """JSON text of each cell."""
    if fld.datatype in STRING_TYPES:
        return _strings(array)
    if fld.is_array:
        flat = pc.list_flatten(array)
        if fld.datatype == "boolean":
            items = pc.if_else(flat, "true", "false").fill_null("null")
        else:
            items = _numbers(flat)
        offsets = pc.subtract(array.offsets, array.offsets[0]) if len(array) else array.offsets
        lists = pa.ListArray.from_arrays(offsets, items, mask=array.is_null())
        joined = pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")
        return joined.fill_null("null")
    if fld.datatype == "boolean":
        return pc.if_else(array, "true", "false").fill_null("null")
    return _numbers(array)


class JsonWriter:
    """Streams a result as the JSON document described in this module."""

    name, mime, extension = "json", "application/json", "json"

    def write(self, batches: Iterable[pa.RecordBatch], columns: list[ColumnMeta],
              info: ResultInfo) -> Iterator[bytes]:
        """Yield the metadata, then the rows of each batch, then the status fields."""
        fields = [field_for(c) for c in columns]
        rows = started_batches(batches, info)
        head = {"query": info.query, "infos": dict(info.infos),
                "metadata": [{k: getattr(c, k) for k in _META_KEYS} for c in columns]}
        start = (json.dumps(head, ensure_ascii=False)[:-1] + ',\n"data": [\n').encode()
        cap = ByteCap(info)
        cap.take(len(start))
        yield start
        sep = b""

        def encode(batch: pa.RecordBatch) -> bytes:
            pieces: list[pa.Array | str] = ["["]
            for j, (array, fld) in enumerate(zip(batch.columns, fields, strict=True)):
                if j:
                    pieces.append(",")
                pieces.append(json_cells(normalise(array, fld), fld))
            pieces.append("],\n")
            return concat_values(pc.binary_join_element_wise(*pieces, ""))

        try:
            for batch in rows:
                check_columns(columns, batch.schema)
                text = encode(batch)
                if not cap.take(len(text)):
                    text, n = cap.fit(batch, len(text), encode)
                    cap.cut(batch.num_rows - n)
                    if text is not None:
                        yield sep + text[:-2]
                    break
                yield sep + text[:-2]
                sep = b",\n"
        except Exception as e:  # noqa: BLE001 - the document reports it
            info.error = str(e) or type(e).__name__
        tail: dict[str, object] = {"rows": info.rows, "overflow": info.overflow,
                                   "status": info.status}
        if info.error is not None:
            tail["error"] = info.error
        elif info.size_limited:
            tail["warning"] = info.size_note
        yield ("\n], " + json.dumps(tail, ensure_ascii=False)[1:] + "\n").encode()

