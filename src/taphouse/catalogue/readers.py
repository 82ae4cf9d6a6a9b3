"""Readers that stream a table file as Arrow record batches, with its column metadata.

Supported, chosen by file extension:

========================  ============================================================
``.parquet``, ``.pq``     pyarrow, batch by batch; units, UCDs and descriptions from
                          Arrow field metadata (``unit``, ``ucd``, ``utype``,
                          ``description``) or astropy's ``table_meta_yaml``.
``.csv`` (``.gz``/...)    pyarrow's streaming CSV reader (types inferred from the first
                          block); no column metadata.
``.ecsv``                 the ECSV YAML header gives types, units, descriptions and
                          ``meta.ucd``; rows are streamed by pyarrow.
``.fits``, ``.fit``,      first binary table HDU, memory-mapped and read in row slices;
``.fts`` (``.gz``)        TUNITn, TCOMMn, TUCDn, TUTYPn and astropy's serialized-column
                          block; TNULLn and NaN become NULL.
``.vot``, ``.votable``,   first TABLE, parsed by astropy (the whole table is held in
``.xml``                  memory); FIELD unit/ucd/utype and DESCRIPTION.
========================  ============================================================

Frames and time systems, where the file gives them: VOTable COOSYS and TIMESYS
referenced by a FIELD (also inside a VO-Parquet file's embedded VOTable); FITS
RADESYS/EQUINOX for equatorial positions, TCTYPn (``RA---``/``DEC--``, ``GLON``/``GLAT``,
``ELON``/``ELAT`` axes; a time scale or ``TIME`` for a time column), TRPOSn/TREFPOS,
TIMESYS and MJDREF/JDREF/DATEREF (the FITS time paper, Rots et al. 2015).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from taphouse.catalogue.model import (
    REFPOSITIONS,
    TIMESCALES,
    CatalogueError,
    CoordSys,
    TimeSys,
    epoch_text,
    frame_name,
)

#: Rows per batch handed to the ingest.
BATCH_ROWS = 262_144
#: Bytes per CSV block; column types are inferred from the first block.
CSV_BLOCK_BYTES = 16 << 20

_EXTENSIONS = {
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".ecsv": "ecsv",
    ".fits": "fits", ".fit": "fits", ".fts": "fits",
    ".vot": "votable", ".votable": "votable", ".xml": "votable",
}
_COMPRESSION = (".gz", ".bz2")


@dataclass
class FieldInfo:
    """Metadata a file gives about one column (any of it may be missing)."""

    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
    coosys: CoordSys | None = None
    timesys: TimeSys | None = None


@dataclass
class FileTable:
    """One opened table file: its Arrow schema, its metadata and a batch iterator."""

    path: Path
    format: str
    schema: pa.Schema
    fields: dict[str, FieldInfo] = field(default_factory=dict)
    description: str | None = None
    nrows: int | None = None  # None when unknown before reading (CSV)
    coosys: CoordSys | None = None  # the file's frame of equatorial positions (FITS)

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (memory maps, handles)."""


def file_format(path: Path) -> str:
    """The format name of ``path`` from its extension; :class:`CatalogueError` if unknown."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext not in _EXTENSIONS:
        known = ", ".join(sorted(_EXTENSIONS))
        raise CatalogueError(
            f"{path}: unknown file type {ext or '(no extension)'!r}; expected one of {known}")
    return _EXTENSIONS[ext]


def open_table(path: Path) -> FileTable:
    """Open ``path`` for reading; raises :class:`CatalogueError` naming the file."""
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise CatalogueError(f"{path}: no such file")
    opener = {"parquet": _ParquetTable.open, "csv": _CsvTable.open, "ecsv": _EcsvTable.open,
              "fits": _FitsTable.open, "votable": _VoTable.open}[fmt]
    try:
        return opener(path)
    except CatalogueError:
        raise
    except Exception as exc:  # every library has its own exceptions for a bad file
        raise CatalogueError(f"{path}: cannot read as {fmt}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = " ".join(str(value).split())
    return value or None


# --- numpy -> Arrow -----------------------------------------------------------------------
def arrow_array(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Arrow array of a numpy column; ``mask`` True marks NULL; float NaN becomes NULL."""
    values = np.asarray(values)
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim > 1:
            mask = np.asarray(mask.all(axis=tuple(range(1, mask.ndim))))
        if not mask.any():
            mask = None
    if values.dtype.kind == "f" and values.ndim == 1:
        nan = np.isnan(values)
        if nan.any():
            mask = nan if mask is None else (mask | nan)
    if values.ndim > 1:
        inner = arrow_array(values.reshape(len(values), -1).ravel())
        width = int(np.prod(values.shape[1:]))
        arr = pa.FixedSizeListArray.from_arrays(inner, width)
        if mask is not None:
            arr = pa.FixedSizeListArray.from_arrays(inner, width, mask=pa.array(mask))
        return arr
    if values.dtype.kind == "S":
        values = np.char.decode(values, "ascii", "replace")
    if values.dtype.kind == "U":
        values = np.char.rstrip(values)
        return pa.array(values, type=pa.string(), mask=mask)
    if values.dtype.kind == "O":
        items = [None if (mask is not None and m) else _object_item(v)
                 for v, m in zip(values, mask if mask is not None else [False] * len(values),
                                 strict=True)]
        return pa.array(items)
    return pa.array(values, mask=mask)


def _object_item(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if np.ma.isMaskedArray(value):
            value = value.filled(np.nan) if value.dtype.kind == "f" else value.data
        return value.tolist()
    return value


# --- Parquet ------------------------------------------------------------------------------
class _ParquetTable(FileTable):
    _file: Any  # pyarrow.parquet.ParquetFile

    @classmethod
    def open(cls, path: Path) -> _ParquetTable:
        import pyarrow.parquet as pq

        # pre_buffer would keep read-ahead buffers for the whole file alive: memory
        # then grows with the file instead of staying at about one row group.
        pf = pq.ParquetFile(path, pre_buffer=False)
        schema = pf.schema_arrow
        table = cls(path=path, format="parquet", schema=schema,
                    nrows=pf.metadata.num_rows)
        table._file = pf
        table.fields, table.description = _arrow_metadata(schema, pf.metadata.metadata)
        return table

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        for group in range(self._file.num_row_groups):
            yield from self._file.iter_batches(batch_size=batch_rows, row_groups=[group],
                                               use_threads=True)

    def close(self) -> None:
        self._file.close()


#: Key of the VOTable a VO-Parquet file embeds (IVOA VO-Parquet note).
VO_PARQUET_CONTENT = b"IVOA.VOTable-Parquet.content"


def _arrow_metadata(schema: pa.Schema, file_metadata: dict[bytes, bytes] | None = None
                    ) -> tuple[dict[str, FieldInfo], str | None]:
    fields: dict[str, FieldInfo] = {}
    # key-value metadata written after the rows (VO-Parquet) is in the file's footer only
    smeta = {**(file_metadata or {}), **(schema.metadata or {})}
    description = None
    if VO_PARQUET_CONTENT in smeta:  # FIELDs, COOSYS, TIMESYS of a VO-Parquet file
        import io

        fields, description = _votable_metadata(io.BytesIO(smeta[VO_PARQUET_CONTENT]))
    if b"table_meta_yaml" in smeta:  # written by astropy
        header = _astropy_header(smeta[b"table_meta_yaml"].decode().splitlines())
        fields.update(header[0])
        description = header[1]
    for key in (b"description", b"DESCRIPTION"):
        if key in smeta:
            description = _text(smeta[key])
    for f in schema:
        md = {k.decode().lower(): v for k, v in (f.metadata or {}).items()}
        info = fields.setdefault(f.name, FieldInfo())
        info.unit = _text(md.get("unit")) or info.unit
        info.ucd = _text(md.get("ucd")) or info.ucd
        info.utype = _text(md.get("utype")) or info.utype
        info.description = _text(md.get("description")) or info.description
    return fields, description


def _astropy_header(lines: list[str]) -> tuple[dict[str, FieldInfo], str | None]:
    """Column metadata from an astropy/ECSV YAML header (lines without ``# ``)."""
    from astropy.table import meta as table_meta

    header = table_meta.get_header_from_yaml(lines)
    fields = {}
    for col in header.get("datatype", []):
        cmeta = col.get("meta") or {}
        fields[col["name"]] = FieldInfo(unit=_text(col.get("unit")), ucd=_text(cmeta.get("ucd")),
                                        utype=_text(cmeta.get("utype")),
                                        description=_text(col.get("description")))
    tmeta = header.get("meta") or {}
    return fields, _text(tmeta.get("description"))


# --- CSV and ECSV -------------------------------------------------------------------------
class _CsvTable(FileTable):
    _skip_rows = 0
    _column_types: dict[str, pa.DataType] | None = None
    _delimiter = ","
    _names: list[str] | None = None

    @classmethod
    def open(cls, path: Path) -> _CsvTable:
        table = cls(path=path, format="csv", schema=pa.schema([]))
        table._peek()
        return table

    def _peek(self) -> None:
        reader = self._reader()
        self.schema = reader.schema
        try:
            while not reader.read_next_batch().num_rows:
                pass
        except StopIteration:
            self.nrows = 0  # otherwise unknown until read

    def _reader(self) -> Any:  # a pyarrow CSV stream reader
        import pyarrow.csv as pacsv

        read = pacsv.ReadOptions(skip_rows=self._skip_rows, block_size=CSV_BLOCK_BYTES,
                                 column_names=self._names)
        parse = pacsv.ParseOptions(delimiter=self._delimiter)
        convert = pacsv.ConvertOptions(column_types=self._column_types,
                                       strings_can_be_null=True)
        stream = pa.input_stream(str(self.path), compression="detect")
        return pacsv.open_csv(stream, read_options=read, parse_options=parse,
                              convert_options=convert)

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        for batch in self._reader():
            if batch.num_rows:
                yield batch


_ECSV_TYPES = {
    "bool": pa.bool_(), "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(),
    "int64": pa.int64(), "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(),
    "uint64": pa.uint64(), "float16": pa.float32(), "float32": pa.float32(),
    "float64": pa.float64(), "float128": pa.float64(), "string": pa.string(),
}


class _EcsvTable(_CsvTable):
    @classmethod
    def open(cls, path: Path) -> _EcsvTable:
        header: list[str] = []
        with pa.input_stream(str(path), compression="detect") as stream:
            import io

            text = io.TextIOWrapper(stream, encoding="utf-8")
            first = text.readline()
            if not first.startswith("# %ECSV"):
                raise CatalogueError(f"{path}: not an ECSV file (no '# %ECSV' first line)")
            for line in text:
                if not line.startswith("#"):
                    break
                header.append(line[2:].rstrip("\n") if line.startswith("# ") else line[1:])
        from astropy.table import meta as table_meta

        parsed = table_meta.get_header_from_yaml(header)
        table = cls(path=path, format="ecsv", schema=pa.schema([]))
        table._delimiter = parsed.get("delimiter", " ")
        types = {}
        for col in parsed.get("datatype", []):
            dtype = col.get("datatype", "string")
            if dtype not in _ECSV_TYPES or col.get("subtype"):
                raise CatalogueError(
                    f"{path}: column {col['name']!r} has ECSV type {dtype}"
                    f"{'/' + col['subtype'] if col.get('subtype') else ''}, which is not supported")
            types[col["name"]] = _ECSV_TYPES[dtype]
        table._column_types = types
        # skip the comment lines and the column-name line
        table._skip_rows = 1 + len(header) + 1
        table._names = list(types)
        table.fields, table.description = _astropy_header(header)
        table._peek()
        return table


# --- FITS ---------------------------------------------------------------------------------
class _FitsTable(FileTable):
    _hdul: Any  # astropy's HDUList and BinTableHDU
    _hdu: Any

    @classmethod
    def open(cls, path: Path) -> _FitsTable:
        from astropy.io import fits

        hdul = fits.open(path, memmap=True, lazy_load_hdus=True)
        hdu = None
        for h in hdul:
            if isinstance(h, fits.BinTableHDU):
                hdu = h
                break
        if hdu is None:
            hdul.close()
            raise CatalogueError(f"{path}: no binary table extension in this FITS file")
        table = cls(path=path, format="fits", schema=pa.schema([]),
                    nrows=int(hdu.header.get("NAXIS2", 0)))
        table._hdul = hdul
        table._hdu = hdu
        table.fields, table.description = _fits_metadata(hdu.header)
        table.coosys = _fits_frame(hdu.header)
        if hdu.data is not None:
            table.schema = table._convert(hdu.data[:1]).schema
        return table

    def _convert(self, chunk: Any) -> pa.RecordBatch:
        arrays, names = [], []
        raw = chunk.view(np.ndarray) if len(chunk) else None
        for i, col in enumerate(self._hdu.columns):
            values = chunk.field(i)
            mask = None
            if col.null is not None and raw is not None and np.asarray(values).dtype.kind in "iu":
                mask = raw[raw.dtype.names[i]] == col.null
            if values.dtype.kind == "b" and raw is not None and values.ndim == 1:
                mask = raw[raw.dtype.names[i]] == 0  # FITS logical: 0 byte means undefined
                mask = mask if mask.any() else None
            arrays.append(arrow_array(values, mask))
            names.append(col.name)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        data = self._hdu.data
        for start in range(0, self.nrows or 0, batch_rows):
            yield self._convert(data[start:start + batch_rows])

    def close(self) -> None:
        self._hdul.close()


def _fits_metadata(header: Any) -> tuple[dict[str, FieldInfo], str | None]:
    fields: dict[str, FieldInfo] = {}
    comments = [str(c) for c in header.get("COMMENT", [])]
    if "--BEGIN-ASTROPY-SERIALIZED-COLUMNS--" in comments:
        start = comments.index("--BEGIN-ASTROPY-SERIALIZED-COLUMNS--") + 1
        end = comments.index("--END-ASTROPY-SERIALIZED-COLUMNS--")
        try:
            fields, _ = _astropy_header(_joined_comment_lines(comments[start:end]))
        except Exception:  # a damaged block only loses descriptions
            fields = {}
    for n in range(1, int(header.get("TFIELDS", 0)) + 1):
        name = str(header.get(f"TTYPE{n}", f"col{n}")).strip()
        info = fields.setdefault(name, FieldInfo())
        info.unit = _text(header.get(f"TUNIT{n}")) or info.unit
        info.ucd = _text(header.get(f"TUCD{n}")) or info.ucd
        info.utype = _text(header.get(f"TUTYP{n}")) or info.utype
        info.description = (_text(header.get(f"TCOMM{n}")) or info.description
                            or _text(header.comments[f"TTYPE{n}"]))
    description = _text(header.get("DESCRIP")) or _text(header.get("DESCRIPTION"))
    frame = _fits_frame(header)
    for n in range(1, int(header.get("TFIELDS", 0)) + 1):
        name = str(header.get(f"TTYPE{n}", f"col{n}")).strip()
        info = fields[name]
        axis = str(header.get(f"TCTYP{n}", "")).strip().upper()
        if axis[:4] in _FITS_AXES:
            system, ucd = _FITS_AXES[axis[:4]]
            info.coosys = (frame or CoordSys("ICRS")) if system == "eq" else CoordSys(system)
            info.ucd = info.ucd or ucd
        else:
            info.timesys = _fits_time_system(header, n, name, info.unit)
    return fields, description


# First four characters of a FITS TCTYPn celestial axis -> (system, UCD).
_FITS_AXES = {"RA--": ("eq", "pos.eq.ra"), "DEC-": ("eq", "pos.eq.dec"),
              "GLON": ("GALACTIC", "pos.galactic.lon"), "GLAT": ("GALACTIC", "pos.galactic.lat"),
              "ELON": ("ECLIPTIC", "pos.ecliptic.lon"), "ELAT": ("ECLIPTIC", "pos.ecliptic.lat")}
_FITS_TIME_UNITS = ("s", "d", "a", "cy", "min", "h", "yr", "ta", "Ba")
# FITS time scale codes that the IVOA timescale vocabulary spells otherwise.
_FITS_SCALES = {"IAT": "TAI", "ET": "TT", "TDT": "TT", "GMT": "UTC", "UT1": "UT"}


def _fits_frame(header: Any) -> CoordSys | None:
    """The frame of a FITS file's equatorial coordinates: RADESYS, else by EQUINOX
    (FK4 before 1984, FK5 after), else None (the file does not say)."""
    system = header.get("RADESYS", header.get("RADECSYS"))
    equinox = header.get("EQUINOX", header.get("EPOCH"))  # EPOCH: an old name of EQUINOX
    try:
        equinox = float(equinox) if equinox is not None else None
    except (TypeError, ValueError):
        equinox = None
    if system is None and equinox is None:
        return None
    name = frame_name(system) if system is not None else ("FK4" if equinox < 1984 else "FK5")
    if name is None:
        return CoordSys(str(system).strip().upper())  # refused at ingest, with its name
    if name == "FK4":
        return CoordSys(name, equinox=f"B{equinox if equinox is not None else 1950.0!r}")
    if name == "FK5":
        return CoordSys(name, equinox=f"J{equinox if equinox is not None else 2000.0!r}")
    return CoordSys(name)


def _fits_time_system(header: Any, n: int, name: str, unit: str | None) -> TimeSys | None:
    """The time system of column n if it is a time column by the FITS time paper:
    TCTYPn a time scale (or TIME), a time unit in TCUNIn, TRPOSn given, or a column
    named TIME in a time unit."""
    ctype = str(header.get(f"TCTYP{n}", "")).strip().upper()
    cunit = header.get(f"TCUNI{n}")
    refpos = header.get(f"TRPOS{n}")
    scale_of = _fits_scale(ctype)
    if not (scale_of or ctype == "TIME" or refpos is not None
            or (cunit is not None and str(cunit).strip() in _FITS_TIME_UNITS)
            or (name.upper() == "TIME" and (unit or "").strip() in _FITS_TIME_UNITS)):
        return None
    scale = scale_of or _fits_scale(str(header.get("TIMESYS", "UTC"))) or "UNKNOWN"
    position = str(refpos if refpos is not None else header.get("TREFPOS", "TOPOCENTER"))
    position = position.strip().upper()
    if position not in REFPOSITIONS:
        position = "UNKNOWN"
    return TimeSys(scale, position, _fits_time_origin(header))


def _fits_scale(code: str) -> str | None:
    code = code.strip().upper()
    code = _FITS_SCALES.get(code, code)
    return code if code in TIMESCALES else None


def _fits_time_origin(header: Any) -> str:
    """The Julian date of the zero of the file's numeric times (MJDREF, JDREF, DATEREF;
    MJD 0 when none is given, as the FITS standard says)."""
    if "MJDREFI" in header or "MJDREFF" in header:
        mjd = float(header.get("MJDREFI", 0)) + float(header.get("MJDREFF", 0))
    elif "MJDREF" in header:
        mjd = float(header["MJDREF"])
    elif "JDREF" in header:
        return repr(float(header["JDREF"]))
    elif "DATEREF" in header:
        from astropy.time import Time

        return repr(float(Time(str(header["DATEREF"]), format="fits").jd))
    else:
        mjd = 0.0
    return "MJD-origin" if mjd == 0 else repr(mjd + 2400000.5)


#: Characters of one line of astropy's serialized-columns block per COMMENT card; a
#: longer line continues on the next card after a backslash in column 71.
_COMMENT_LINE = 70


def _joined_comment_lines(cards: list[str]) -> list[str]:
    """The YAML lines of astropy's serialized-columns block: COMMENT cards that end in
    a continuation backslash are joined to the next card (as astropy reads them)."""
    lines: list[str] = []
    continued = False
    for card in cards:
        if continued:
            lines[-1] += card[:_COMMENT_LINE]
        else:
            lines.append(card[:_COMMENT_LINE])
        continued = len(card) == _COMMENT_LINE + 1 and card.endswith("\\")
    return lines


# --- VOTable ------------------------------------------------------------------------------
class _VoTable(FileTable):
    _names: list[str]
    _array: Any  # astropy's masked record array

    @classmethod
    def open(cls, path: Path) -> _VoTable:
        import warnings

        from astropy.io.votable import parse

        from taphouse.votable_links import MESSAGE, find_stream_link

        with pa.input_stream(str(path), compression="detect") as stream:
            fields, description = _votable_metadata(stream)
        # astropy would open a STREAM's href itself (a file of this machine, a request
        # from it): the rows must be in the file
        with pa.input_stream(str(path), compression="detect") as stream:
            link = find_stream_link(stream)
        if link is not None:
            raise CatalogueError(f"{path}: {MESSAGE} (it names {link[:200]!r})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vot = parse(str(path), verify="ignore")
        resource_tables = list(vot.iter_tables())
        if not resource_tables:
            raise CatalogueError(f"{path}: no TABLE in this VOTable")
        vtable = resource_tables[0]
        array = vtable.array
        table = cls(path=path, format="votable", schema=pa.schema([]), nrows=len(array),
                    fields=fields, description=description)
        table._names = [f.name for f in vtable.fields]
        table._array = array
        table.schema = table._convert(array[:1]).schema
        return table

    def _convert(self, chunk: Any) -> pa.RecordBatch:
        arrays = []
        for i in range(len(self._names)):
            col = chunk[chunk.dtype.names[i]]
            mask = np.ma.getmaskarray(col) if np.ma.isMaskedArray(col) else None
            arrays.append(arrow_array(np.ma.getdata(col), mask))
        return pa.RecordBatch.from_arrays(arrays, names=self._names)

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        for start in range(0, self.nrows or 0, batch_rows):
            yield self._convert(self._array[start:start + batch_rows])


def _votable_metadata(stream: Any) -> tuple[dict[str, FieldInfo], str | None]:
    """FIELD attributes as written in the file (astropy would rewrite unit strings),
    with the COOSYS and TIMESYS each FIELD refers to."""
    fields: dict[str, FieldInfo] = {}
    refs: dict[str, str] = {}
    systems: dict[str, CoordSys | TimeSys] = {}
    table_description = None
    depth_table = 0
    current: FieldInfo | None = None
    for event, elem in ET.iterparse(stream, events=("start", "end")):
        tag = re.sub(r"^\{.*\}", "", elem.tag)
        if event == "start":
            if tag == "TABLE":
                depth_table += 1
            elif tag in ("COOSYS", "TIMESYS") and elem.get("ID"):
                systems[elem.get("ID")] = _votable_system(tag, elem)
            elif tag in ("DATA", "GROUP") and depth_table:
                if tag == "DATA":
                    break
            elif tag == "PARAM" and depth_table:
                current = FieldInfo()  # its DESCRIPTION is not the table's
            elif tag == "FIELD" and depth_table:
                current = FieldInfo(unit=_text(elem.get("unit")), ucd=_text(elem.get("ucd")),
                                    utype=_text(elem.get("utype")))
                name = elem.get("name") or elem.get("ID") or f"col{len(fields)}"
                fields[name] = current
                if elem.get("ref"):
                    refs[name] = elem.get("ref")
        else:
            if tag == "DESCRIPTION" and depth_table:
                if current is not None:
                    current.description = _text(elem.text)
                elif table_description is None:
                    table_description = _text(elem.text)
            elif tag in ("FIELD", "PARAM"):
                current = None
            elif tag == "TABLE":
                break
    for name, ref in refs.items():
        system = systems.get(ref)
        if isinstance(system, CoordSys):
            fields[name].coosys = system
        elif isinstance(system, TimeSys):
            fields[name].timesys = system
    return fields, table_description


def _votable_system(tag: str, elem: ET.Element) -> CoordSys | TimeSys:
    if tag == "COOSYS":
        system = elem.get("system", "eq_FK5")  # the VOTable default
        try:
            epoch = epoch_text(elem.get("epoch"))
        except ValueError:
            epoch = None
        return CoordSys(frame_name(system) or system.strip().upper(), epoch,
                        _text(elem.get("equinox")), _text(elem.get("refposition")))
    return TimeSys(str(elem.get("timescale", "UNKNOWN")).strip().upper(),
                   str(elem.get("refposition", "UNKNOWN")).strip().upper(),
                   _text(elem.get("timeorigin")))
