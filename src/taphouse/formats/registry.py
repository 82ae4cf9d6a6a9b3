"""The output formats a service offers, by TAP name and MIME type."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats.errors import FormatError
from taphouse.formats.result import ResultInfo


class Writer(Protocol):
    """What :func:`get_writer` returns."""

    name: str
    mime: str
    extension: str

    def write(self, batches: Iterable[pa.RecordBatch], columns: list[ColumnMeta],
              info: ResultInfo) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class FormatDescriptor:
    """One output format as the capabilities document lists it.

    ``mime`` is the identifier (with a ``serialization`` parameter where needed),
    ``aliases`` the short names (the first is the TAP name), ``content_type`` what the
    HTTP response carries.
    """

    mime: str
    aliases: tuple[str, ...]
    description: str
    content_type: str
    extension: str
    factory: Callable[[], Writer]


def _votable(serialization: str) -> Callable[[], Writer]:
    def make() -> Writer:
        from taphouse.formats.votable import VOTableWriter
        return VOTableWriter(serialization)
    return make


def _csv() -> Writer:
    from taphouse.formats.text import DelimitedWriter
    return DelimitedWriter(",")


def _tsv() -> Writer:
    from taphouse.formats.text import DelimitedWriter
    return DelimitedWriter("\t")


def _fits() -> Writer:
    from taphouse.formats.fits import FitsWriter
    return FitsWriter()


def _parquet() -> Writer:
    from taphouse.formats.parquet import ParquetWriter
    return ParquetWriter()


def _json() -> Writer:
    from taphouse.formats.jsontable import JsonWriter
    return JsonWriter()


_VOT = "application/x-votable+xml"
FORMATS: list[FormatDescriptor] = [
    # The default is BINARY: astropy/pyvo read it ~1.7x faster than BINARY2 or
    # TABLEDATA (README, Benchmarks). Integer nulls: VALUES null; float nulls: NaN.
    FormatDescriptor(_VOT, ("votable", "votable/b"),
                     "VOTable 1.4, BINARY serialization (default; integer nulls declared"
                     " as VALUES null, float nulls NaN)", _VOT, "vot", _votable("BINARY")),
    FormatDescriptor(f"{_VOT};serialization=BINARY2", ("votable/b2",),
                     "VOTable 1.4, BINARY2 serialization (null flags per row)", _VOT, "vot",
                     _votable("BINARY2")),
    FormatDescriptor(f"{_VOT};serialization=TABLEDATA", ("votable/td",),
                     "VOTable 1.4, TABLEDATA serialization", _VOT, "vot",
                     _votable("TABLEDATA")),
    FormatDescriptor("text/csv", ("csv",), "comma-separated values (RFC 4180) with a header row",
                     "text/csv", "csv", _csv),
    FormatDescriptor("text/tab-separated-values", ("tsv",),
                     "tab-separated values with a header row", "text/tab-separated-values",
                     "tsv", _tsv),
    FormatDescriptor("application/fits", ("fits",), "FITS binary table (units and UCDs kept)",
                     "application/fits", "fits", _fits),
    FormatDescriptor("application/vnd.apache.parquet", ("parquet",),
                     "Parquet with embedded VOTable metadata (IVOA VO-Parquet 1.0)",
                     "application/vnd.apache.parquet", "parquet", _parquet),
    FormatDescriptor("application/json", ("json",),
                     'JSON: {"metadata": [...], "data": [[...], ...], "status": ...}',
                     "application/json", "json", _json),
]

# Further spellings clients send; keys are lower-case, without parameters.
_EXTRA = {
    "text/xml": 0, "application/xml": 0, "application/x-votable+xml": 0, "votable": 0,
    "text/csv": 3, "text/tab-separated-values": 4, "image/fits": 5, "application/fits": 5,
    "application/x-fits-table": 5, "application/x-parquet": 6, "application/parquet": 6,
    "application/vnd.apache.parquet": 6, "application/json": 7, "text/json": 7,
}
_SERIALIZATIONS = {"binary": 0, "binary2": 1, "tabledata": 2}


def _lookup(responseformat: str) -> FormatDescriptor | None:
    text = responseformat.strip()
    base, _, params = text.partition(";")
    base = base.strip().lower()
    serialization = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "serialization":
            serialization = value.strip().strip('"').lower()
    for fmt in FORMATS:
        if base in fmt.aliases and not params:
            return fmt
    if base in _EXTRA:
        index = _EXTRA[base]
        if index == 0 and serialization is not None:
            if serialization not in _SERIALIZATIONS:
                return None
            index = _SERIALIZATIONS[serialization]
        return FORMATS[index]
    return None


def get_writer(responseformat: str) -> Writer:
    """A new writer for a RESPONSEFORMAT value (TAP short name or MIME type).

    Raises
    ------
    FormatError
        The format is unknown; the message lists the accepted values.
    """
    fmt = _lookup(responseformat or "votable")
    if fmt is None:
        names = ", ".join(a for f in FORMATS for a in (f.aliases[0], f.mime))
        raise FormatError(f"unknown RESPONSEFORMAT {responseformat!r}; use one of: {names}")
    return fmt.factory()
