"""Result parsing (astropy VOTable) and conversion to the requested output type.

pandas, polars and pyarrow are imported only when asked for, with a clear message if
they are missing (the base install has none of them).
"""

from __future__ import annotations

import importlib
import inspect
import io
import warnings
from typing import Any

import numpy as np
from astropy.table import Table

OUTPUTS = ("astropy", "pandas", "polars", "pyarrow")


def check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r} is not one of {', '.join(OUTPUTS)}")
    return output


def parse_votable(content: bytes) -> tuple[Table | None, dict[str, str], str]:
    """``(table or None, {INFO name: value}, QUERY_STATUS message)`` of a result VOTable."""
    from astropy.io.votable import parse
    from astropy.io.votable.exceptions import VOWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VOWarning)
        vot = parse(io.BytesIO(content), verify="ignore")
    infos: dict[str, str] = {}
    message = ""
    everything = list(vot.infos)
    for res in vot.iter_resources() if hasattr(vot, "iter_resources") else vot.resources:
        everything.extend(res.infos)
        for extra in getattr(res, "postinfos", []):
            everything.append(extra)
    for info in everything:
        infos[info.name] = info.value
        if info.name == "QUERY_STATUS":
            message = (getattr(info, "content", None) or "").strip()
    try:
        vtable = vot.get_first_table()
    except IndexError:
        return None, infos, message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VOWarning)
        table = vtable.to_table(use_names_over_ids=True)
    return table, infos, message


def _need(module: str, output: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise ImportError(f"output={output!r} needs the {package} package, which is not"
                          f" installed: pip install {package}") from None


def to_arrow(table: Table, output: str = "pyarrow") -> Any:
    """An Arrow table from an astropy Table; unit, UCD and description go into each
    field's metadata."""
    pa = _need("pyarrow", output)
    arrays, fields = [], []
    for name in table.colnames:
        col = table[name]
        mask = np.asarray(col.mask) if getattr(col, "mask", None) is not None else None
        data = np.asarray(col)
        if data.dtype.kind == "S":
            data = np.char.decode(data, "utf-8")
        if data.ndim > 1:
            arr = pa.array(list(data), mask=mask if mask is not None and mask.ndim == 1 else None)
        else:
            use = mask if mask is not None and mask.any() else None
            arr = pa.array(data, mask=use)
        meta = {k: str(v) for k, v in (("unit", col.unit), ("ucd", col.meta.get("ucd")),
                                        ("description", col.description)) if v}
        arrays.append(arr)
        fields.append(pa.field(name, arr.type, metadata=meta or None))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def convert(table: Table, output: str) -> Any:
    """``table`` as the requested ``output`` type (astropy, pandas, polars, pyarrow)."""
    check_output(output)
    if output == "astropy":
        return table
    if output == "pandas":
        _need("pandas", output)
        return table.to_pandas()
    arrow = to_arrow(table, output)
    if output == "pyarrow":
        return arrow
    pl = _need("polars", output)
    return pl.from_arrow(arrow)


def as_table(data: Any) -> Table:
    """An astropy Table from an astropy Table, pandas or polars DataFrame or Arrow table."""
    if isinstance(data, Table):
        return data
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return Table.from_pandas(data)
    if module in {"polars", "pyarrow"}:
        return Table.from_pandas(data.to_pandas())
    raise TypeError(f"cannot use a {type(data).__name__} as a table: give an astropy Table,"
                    " a pandas DataFrame, or a file path")


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside this package."""
    level = 1
    for frame in inspect.stack()[1:]:
        level += 1
        if not frame.frame.f_globals.get("__name__", "").startswith("taphouse.client"):
            return level - 1
    return level


__all__ = ["parse_votable", "convert", "to_arrow", "as_table", "check_output", "OUTPUTS"]
