"""Turn table files (Parquet, FITS, VOTable, CSV/ECSV) into a catalogue table version.

The rows are read batch by batch, checked, given a HEALPix index column
(:data:`~taphouse.catalogue.model.HEALPIX_COLUMN`: nested, order 29, int64) when the
table has positions, and streamed as Arrow batches into DuckDB, which sorts them by that
index into a new immutable version file, written under a temporary name and renamed when
complete. Publishing it is one metadata transaction, so a running server keeps serving
the previous version until the switch, and a failed ingest leaves the previous version
untouched. Memory is bounded by the batch size and the DuckDB ``memory_limit`` (the sort
spills to a temporary directory beside the tables).

Floating-point NaN is stored as NULL. Column names are stored lower-case; characters other than letters, digits and ``_`` are
replaced by ``_`` (``B-V`` becomes ``b_v``). A source column named ``_healpix_29`` (HATS)
or ``healpix_index`` (older taphouse exports) is replaced by the recomputed index when
the table has positions. The index is an internal column: not listed with the table's
columns, not in ``SELECT *``, named ``"_healpix_29"`` in ADQL.

Metadata file
-------------
Units, UCDs and descriptions come from the file where it has them; a small YAML file
(``--meta``) sets or overrides them. Units are stored in canonical VOUnit (``mas yr-1``
becomes ``mas/yr``); a unit that no unit syntax accepts is refused with the column
named, or kept as given and flagged with ``allow_bad_units``. Every key is optional::

    description: Bright stars of the survey, as published in ...   # table description
    database_description: The survey's catalogues                  # the database's
    epoch: 2016.0             # Julian year of the positions (or "J2016.0")
    ra: ra_icrs               # position columns (else found from UCDs or common names)
    dec: de_icrs
    extra:                    # free-form provenance kept with the table version
      credit: ...
    columns:                  # per column, by its name in the file or lower-cased
      ra_icrs:
        unit: deg
        ucd: pos.eq.ra;meta.main
        description: Right ascension (ICRS)
        principal: true       # shown by default in TAP clients
      flux:
        utype: ...
        std: false
      band:
        arraysize: 2          # text of at most 2 characters: written fixed-width, which
                              # VOTable readers parse faster (longer values are refused)

Positions are found, in order, from the ``ra``/``dec`` arguments, the metadata file, the
UCDs ``pos.eq.ra``/``pos.eq.dec`` (those with ``meta.main`` first) and common names
(``ra``, ``ra_icrs``, ``raj2000``, ``dec``, ``de_icrs``, ``dej2000`` ...). Positions must
be ICRS degrees: RA in 0..360, Dec in -90..90.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taphouse.catalogue.hats import (
    DUCKDB_COPY,
    RESERVED_COLUMNS,
    VERSION_SUFFIX,
    PartitionOptions,
    write_collection,
)
from taphouse.catalogue.healpix import healpix_index
from taphouse.catalogue.model import (
    FRAMES,
    HEALPIX_COLUMN,
    HEALPIX_ORDER,
    LEGACY_HEALPIX_COLUMN,
    REFPOSITIONS,
    TIMESCALES,
    CatalogueError,
    ColumnMeta,
    CoordSys,
    TableMeta,
    TimeSys,
    check_database_name,
    check_name,
    epoch_text,
    frame_name,
    votable_type_for_arrow,
)
from taphouse.catalogue.readers import FieldInfo, FileTable, file_format, open_table
from taphouse.catalogue.store import (
    CatalogueStore,
    install_version_file,
    remove_version_file,
)
from taphouse.catalogue.units import check_unit

_RA_NAMES = ("ra", "ra_icrs", "raj2000", "ra_j2000", "radeg", "ra_deg", "ra_d", "alpha",
             "ra2000", "ramean")
_DEC_NAMES = ("dec", "de", "dec_icrs", "de_icrs", "dej2000", "decj2000", "dec_j2000",
              "dedeg", "dec_deg", "de_d", "decl", "delta", "dec2000", "decmean")
#: Rows per DuckDB row group in a version file (DuckDB's default). Measured on the
#: 10M-row bench catalogue (bench/adql.py), smaller groups do not help: cone p50 2.1 ms
#: at 122,880 rows, 2.3 ms at 32,768, 2.5 ms at 16,384 (best of 5 per position, 200
#: positions), because the HEALPix range filter already skips by zone map; full-scan
#: GROUP BYs were the same within noise.
ROW_GROUP_SIZE = 122_880
_META_KEYS = {"description", "database_description", "epoch", "frame", "equinox",
              "refposition", "ra", "dec", "positions", "extra", "columns"}
_COLUMN_KEYS = {"unit", "ucd", "utype", "description", "principal", "std", "arraysize"}
#: Column keys that make it a time column (a TIMESYS in results).
_TIME_KEYS = {"timescale", "refposition", "timeorigin"}
_PAIR_KEYS = {"lon", "lat", "frame", "epoch", "equinox", "refposition"}
#: Frames the main positions (those of the HEALPix index and the spatial functions)
#: may be in; FK5 (J2000) differs from ICRS by less than 0.1 arcsec.
_INDEX_FRAMES = ("ICRS", "FK5")



# --- metadata file --------------------------------------------------------------------
@dataclass
class MetaFile:
    """The parsed ``--meta`` YAML file (see the module docstring for its format)."""

    description: str | None = None
    database_description: str | None = None
    epoch: float | None = None
    ra: str | None = None
    dec: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    frame: str | None = None
    equinox: str | None = None
    refposition: str | None = None
    positions: list[dict[str, Any]] = field(default_factory=list)


def load_meta_file(path: Path) -> MetaFile:
    """Read and check a metadata YAML file; :class:`CatalogueError` names what is wrong."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read metadata file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if doc is None:
        return MetaFile()
    if not isinstance(doc, dict):
        raise CatalogueError(f"{path}: expected a mapping of keys such as 'description', "
                             "'epoch', 'columns'")
    unknown = set(doc) - _META_KEYS
    if unknown:
        raise CatalogueError(f"{path}: unknown key(s) {sorted(unknown)}; "
                             f"allowed: {sorted(_META_KEYS)}")
    columns = doc.get("columns") or {}
    if not isinstance(columns, dict):
        raise CatalogueError(f"{path}: 'columns' must map column names to settings")
    for name, settings in columns.items():
        if not isinstance(settings, dict):
            raise CatalogueError(f"{path}: column {name!r}: expected keys such as "
                                 "'unit', 'ucd', 'description'")
        bad = set(settings) - _COLUMN_KEYS - _TIME_KEYS
        if bad:
            raise CatalogueError(f"{path}: column {name!r}: unknown key(s) {sorted(bad)}; "
                                 f"allowed: {sorted(_COLUMN_KEYS | _TIME_KEYS)}")
        if set(settings) & _TIME_KEYS:
            _time_system(settings, f"{path}: column {name!r}")
    extra = doc.get("extra") or {}
    if not isinstance(extra, dict):
        raise CatalogueError(f"{path}: 'extra' must be a mapping")
    positions = doc.get("positions") or []
    if not isinstance(positions, list) or not all(isinstance(p, dict) for p in positions):
        raise CatalogueError(f"{path}: 'positions' must be a list of mappings such as "
                             "{lon: glon, lat: glat, frame: GALACTIC}")
    for pair in positions:
        bad = set(pair) - _PAIR_KEYS
        if bad or not {"lon", "lat"} <= set(pair):
            raise CatalogueError(f"{path}: positions: {pair!r}: give 'lon' and 'lat' and "
                                 f"any of 'frame', 'epoch', 'equinox', 'refposition'")
        _frame(pair.get("frame"), f"{path}: positions")
        _epoch(pair.get("epoch"), path)
    frame = _frame(doc.get("frame"), str(path))
    return MetaFile(
        description=_opt_str(doc.get("description")),
        database_description=_opt_str(doc.get("database_description")),
        epoch=_epoch(doc.get("epoch"), path), ra=_opt_str(doc.get("ra")),
        dec=_opt_str(doc.get("dec")), extra=extra,
        columns={str(k): v for k, v in columns.items()}, frame=frame,
        equinox=_opt_str(doc.get("equinox")),
        refposition=_refposition(doc.get("refposition"), str(path)), positions=positions)


def _frame(value: Any, where: str) -> str | None:
    if value is None:
        return None
    name = frame_name(str(value))
    if name is None:
        raise CatalogueError(f"{where}: frame {value!r} is not one of {', '.join(FRAMES)}")
    return name


def _refposition(value: Any, where: str) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    if text not in REFPOSITIONS:
        raise CatalogueError(f"{where}: refposition {value!r} is not one of "
                             f"{', '.join(REFPOSITIONS)}")
    return text


def _time_system(settings: dict[str, Any], where: str) -> TimeSys:
    """The TimeSys of a column's timescale/refposition/timeorigin keys."""
    scale = str(settings.get("timescale", "")).strip().upper()
    if scale not in TIMESCALES:
        raise CatalogueError(f"{where}: a time column needs a timescale, one of "
                             f"{', '.join(TIMESCALES)} (got {settings.get('timescale')!r})")
    origin = settings.get("timeorigin")
    if origin is not None:
        origin = str(origin).strip()
        if origin not in ("MJD-origin", "JD-origin"):
            try:
                origin = repr(float(origin))
            except ValueError:
                raise CatalogueError(
                    f"{where}: timeorigin {settings['timeorigin']!r} is not a Julian date, "
                    "'MJD-origin' or 'JD-origin'") from None
    return TimeSys(scale, _refposition(settings.get("refposition"), where) or "UNKNOWN",
                   origin)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value).strip() or None


def _epoch(value: Any, path: Path) -> float | None:
    if value is None:
        return None
    text = str(value).strip().upper().removeprefix("J")
    try:
        return float(text)
    except ValueError:
        raise CatalogueError(f"{path}: epoch {value!r} is not a Julian year such as 2016.0"
                             ) from None


# --- column planning ------------------------------------------------------------------
def column_name(name: str) -> str:
    """The stored (lower-case, ADQL-regular) name of a source column."""
    lname = re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_")
    if not lname:
        lname = "col"
    if not lname[0].isalpha():
        lname = "col_" + lname
    return lname


def _storage_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type a column is stored as (matching its VOTable datatype)."""
    if pa.types.is_dictionary(t):
        return _storage_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_null(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_time(t):
        # A time of day (CSV "12:34:56"): kept as its text; VOTable has no such type.
        return pa.string()
    if t == pa.int8():
        return pa.int16()
    if t == pa.uint16():
        return pa.int32()
    if t in (pa.uint32(), pa.uint64()):
        return pa.int64()
    if t == pa.float16():
        return pa.float32()
    if pa.types.is_large_list(t):
        return pa.list_(_storage_type(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(_storage_type(t.value_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(_storage_type(t.value_type), t.list_size)
    return t


@dataclass
class _Plan:
    """What the ingest writes: stored names and types, metadata, position columns."""

    sources: list[str]  # source names in the order of the first file
    names: list[str]  # stored names, same order
    schema: pa.Schema  # stored schema, without the HEALPix column
    columns: list[ColumnMeta]
    ra: str | None
    dec: str | None
    drop: set[str]  # source columns not stored (a source healpix_index)

    @property
    def positions(self) -> bool:
        return self.ra is not None

    @property
    def widths(self) -> dict[str, int]:
        """Declared fixed widths of text columns (``arraysize: N`` in the metadata)."""
        return {c.name: int(c.arraysize) for c in self.columns
                if c.datatype in ("char", "unicodeChar") and c.arraysize
                and c.arraysize.isdigit()}

    @property
    def epoch(self) -> float | None:
        """Julian year of the main positions, if known."""
        for c in self.columns:
            if c.name == self.ra and c.coosys is not None:
                return c.coosys.julian_year
        return None


def _rename_map(reader: FileTable) -> dict[str, str]:
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for source in reader.schema.names:
        stored = column_name(source)
        if stored in seen:
            raise CatalogueError(
                f"{reader.path}: duplicate column names after lower-casing: "
                f"{seen[stored]!r} and {source!r} (both become {stored!r})")
        seen[stored] = source
        mapping[source] = stored
    return mapping


def _plan(readers: list[FileTable], ra: str | None, dec: str | None, meta: MetaFile,
          meta_path: Path | None, allow_bad_units: bool = False) -> _Plan:
    first = readers[0]
    if not first.schema.names:
        raise CatalogueError(f"{first.path}: no columns")
    renames = [_rename_map(r) for r in readers]
    names = list(renames[0].values())
    for reader, mapping in zip(readers[1:], renames[1:], strict=True):
        if sorted(mapping.values()) != sorted(names):
            missing = sorted(set(names) - set(mapping.values()))
            added = sorted(set(mapping.values()) - set(names))
            raise CatalogueError(
                f"{reader.path}: columns differ from {first.path}"
                + (f"; missing {missing}" if missing else "")
                + (f"; extra {added}" if added else ""))
    # unify the types of all files, by stored name
    types: dict[str, pa.DataType] = {}
    for reader, mapping in zip(readers, renames, strict=True):
        for f in reader.schema:
            stored = mapping[f.name]
            t = _storage_type(f.type)
            if stored not in types:
                types[stored] = t
            elif types[stored] != t:
                try:
                    types[stored] = pa.unify_schemas(
                        [pa.schema([(stored, types[stored])]), pa.schema([(stored, t)])],
                        promote_options="permissive").field(stored).type
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise CatalogueError(
                        f"{reader.path}: column {f.name!r} is {t}, but {types[stored]} in "
                        f"{first.path}") from None
    # metadata: file, then the metadata file (by source or stored name)
    infos: dict[str, FieldInfo] = {}
    for reader, mapping in zip(readers, renames, strict=True):
        for source, stored in mapping.items():
            if stored not in infos and source in reader.fields:
                infos[stored] = reader.fields[source]
    source_of = {stored: source for source, stored in renames[0].items()}
    overrides: dict[str, dict[str, Any]] = {}
    for key, settings in meta.columns.items():
        target = renames[0].get(key) or (column_name(key) if column_name(key) in types else None)
        if target is None:
            raise CatalogueError(f"{meta_path or 'metadata'}: column {key!r} is not in "
                                 f"{first.path}")
        overrides[target] = settings

    ra_col = _given_column(ra or meta.ra, renames[0], first, "RA")
    dec_col = _given_column(dec or meta.dec, renames[0], first, "Dec")
    columns: list[ColumnMeta] = []
    for stored in names:
        info = infos.get(stored, FieldInfo())
        try:
            datatype, arraysize, xtype = votable_type_for_arrow(types[stored])
        except CatalogueError as exc:
            raise CatalogueError(f"{first.path}: column {source_of[stored]!r}: {exc}") from None
        cm = ColumnMeta(name=check_name(stored, "column"), datatype=datatype,
                        arraysize=arraysize, xtype=xtype, unit=info.unit, ucd=info.ucd,
                        utype=info.utype, description=info.description,
                        coosys=info.coosys, timesys=info.timesys)
        settings = overrides.get(stored, {})
        for key, value in settings.items():
            if key not in _TIME_KEYS:
                setattr(cm, key,
                        bool(value) if key in ("principal", "std") else _opt_str(value))
        if set(settings) & _TIME_KEYS:
            cm.timesys = _time_system(settings, f"{meta_path or 'metadata'}: column "
                                                f"{source_of[stored]!r}")
        _check_unit(cm, source_of[stored], first.path,
                    meta_path if "unit" in overrides.get(stored, {}) else None,
                    allow_bad_units)
        if "arraysize" in settings:
            cm.arraysize = _fixed_width(cm, settings["arraysize"], source_of[stored],
                                        meta_path)
        columns.append(cm)
    if ra_col is None:
        ra_col = _find_position(columns, "pos.eq.ra", _RA_NAMES)
    if dec_col is None:
        dec_col = _find_position(columns, "pos.eq.dec", _DEC_NAMES)
    if (ra_col is None) != (dec_col is None):
        found, lacking = ("RA", "Dec") if ra_col else ("Dec", "RA")
        raise CatalogueError(
            f"{first.path}: found the {found} column {ra_col or dec_col!r} but no {lacking} "
            f"column; name it with --{lacking.lower()} COLUMN")
    drop: set[str] = set()
    if ra_col is not None and dec_col is not None:  # both or neither (checked above)
        for col, what, ucd in ((ra_col, "RA", "pos.eq.ra"), (dec_col, "Dec", "pos.eq.dec")):
            _check_position_column(first.path, col, source_of[col], types[col], what,
                                   first.schema.field(source_of[col]).type)
            cm = next(c for c in columns if c.name == col)
            cm.unit = cm.unit or "deg"
            _check_degrees(first.path, source_of[col], cm.unit, what)
            cm.ucd = cm.ucd or f"{ucd};meta.main"
            if col not in overrides or "principal" not in overrides[col]:
                cm.principal = True
        frame = _main_frame(first, infos.get(ra_col), meta, meta_path)
        for cm in columns:
            if cm.name in (ra_col, dec_col):
                cm.coosys = frame
        for stored in [n for n in names if n == LEGACY_HEALPIX_COLUMN
                       or source_of[n].strip().lower() == HEALPIX_COLUMN]:
            drop.add(source_of[stored])
            columns = [c for c in columns if c.name != stored]
            names.remove(stored)
    for pair in meta.positions:
        _set_pair_frame(columns, pair, renames[0], first, meta_path)
    for cm in columns:
        if cm.ucd and "meta.main" in cm.ucd and not (
                cm.name in overrides and "principal" in overrides[cm.name]):
            cm.principal = True
    schema = pa.schema([(n, types[n]) for n in names])
    return _Plan(sources=[source_of[n] for n in names], names=names, schema=schema,
                 columns=columns, ra=ra_col, dec=dec_col, drop=drop)


def _main_frame(reader: FileTable, info: FieldInfo | None, meta: MetaFile,
                meta_path: Path | None) -> CoordSys:
    """The frame of the main positions: the metadata file, else the file (the RA
    column's COOSYS, the FITS RADESYS), else ICRS. Only ICRS and FK5 are accepted: the
    HEALPix index and the ADQL spatial functions take them as ICRS."""
    given = (info.coosys if info is not None else None) or reader.coosys or CoordSys()
    system = meta.frame or given.system
    if system not in _INDEX_FRAMES:
        where = meta_path if meta.frame else reader.path
        raise CatalogueError(
            f"{where}: the positions are in the {system} frame; the position columns "
            "that cone searches and crossmatches use must be ICRS (or FK5 J2000): convert "
            "them (e.g. with astropy SkyCoord(...).icrs), or keep them as a further pair "
            "under 'positions:' in the metadata file and name ICRS columns with --ra/--dec")
    return CoordSys(
        system,
        epoch_text(meta.epoch) if meta.epoch is not None else given.epoch,
        meta.equinox or (given.equinox if system == given.system else None),
        meta.refposition or given.refposition)


def _set_pair_frame(columns: list[ColumnMeta], pair: dict[str, Any], mapping: dict[str, str],
                    reader: FileTable, meta_path: Path | None) -> None:
    """A further position pair of the metadata file: both columns get its frame."""
    frame = CoordSys(frame_name(str(pair.get("frame", "ICRS"))) or "ICRS",
                     epoch_text(_epoch(pair.get("epoch"), meta_path or reader.path)),
                     _opt_str(pair.get("equinox")),
                     _refposition(pair.get("refposition"), f"{meta_path}: positions"))
    for key in ("lon", "lat"):
        name = _given_column(str(pair[key]), mapping, reader, f"positions {key}")
        column = next(c for c in columns if c.name == name)
        column.coosys = frame


def _check_unit(cm: ColumnMeta, source: str, path: Path, meta_path: Path | None,
                allow_bad_units: bool) -> None:
    """Store the column's unit in canonical VOUnit; refuse one that is no unit, unless
    ``allow_bad_units`` (then it is kept as given and flagged)."""
    check = check_unit(cm.unit)
    if check.valid:
        cm.unit = check.unit
        return
    if allow_bad_units:
        cm.bad_unit = True
        return
    where = f"{meta_path or 'metadata'} (for {path})" if meta_path else str(path)
    raise CatalogueError(
        f"{where}: column {source!r}: bad unit: {check.problem}. Write it in VOUnit "
        f"(e.g. mas/yr, km/s, deg**2) in the metadata file (--meta: columns: {source}: "
        "unit: ...), or ingest with --allow-bad-units to keep it as given (flagged)")


def _fixed_width(cm: ColumnMeta, value: Any, source: str, meta_path: Path | None) -> str:
    """The declared fixed width of a text column (``arraysize: N``), checked."""
    where = f"{meta_path or 'metadata'}: column {source!r}"
    if cm.datatype not in ("char", "unicodeChar") or cm.xtype:
        raise CatalogueError(f"{where}: arraysize applies to text columns only (this one"
                             f" is {cm.datatype})")
    if isinstance(value, bool) or not isinstance(value, int | str) \
            or not str(value).isdigit() or not 0 < int(value) <= 65_535:
        raise CatalogueError(f"{where}: arraysize must be a number of characters from 1"
                             f" to 65535 (got {value!r})")
    return str(int(value))


def _given_column(name: str | None, mapping: dict[str, str], reader: FileTable,
                  what: str) -> str | None:
    if name is None:
        return None
    stored = mapping.get(name) or column_name(name)
    if stored not in mapping.values():
        raise CatalogueError(f"{reader.path}: no {what} column {name!r}; columns are "
                             f"{', '.join(reader.schema.names[:30])}")
    return stored


def _find_position(columns: list[ColumnMeta], ucd: str, names: tuple[str, ...]) -> str | None:
    def words(c: ColumnMeta) -> list[str]:
        return [w.strip().lower() for w in (c.ucd or "").split(";")]

    with_ucd = [c for c in columns if words(c) and words(c)[0] == ucd]
    main = [c for c in with_ucd if "meta.main" in words(c)]
    if main or with_ucd:
        return (main or with_ucd)[0].name
    by_name = {c.name: c for c in columns}
    for n in names:
        if n in by_name:
            return n
    return None


def _check_position_column(path: Path, stored: str, source: str, t: pa.DataType,
                           what: str, source_type: pa.DataType | None = None) -> None:
    if pa.types.is_floating(t) or pa.types.is_integer(t):
        return
    flag = f"--{what.lower()}"
    if source_type is not None and pa.types.is_time(source_type) or pa.types.is_string(t):
        unit = "hourangle" if what == "RA" else "deg"
        raise CatalogueError(
            f"{path}: {what} column {source!r} holds text"
            + (" read as times of day (sexagesimal such as 12:34:56?)"
               if source_type is not None and pa.types.is_time(source_type) else "")
            + f", not numbers: positions must be decimal degrees. Convert the column "
            f"first (for example astropy.coordinates.Angle(values, unit='{unit}').degree), "
            f"or name the numeric position columns with --ra and --dec")
    raise CatalogueError(f"{path}: {what} column {source!r} is {t}, not a number: positions "
                         f"must be decimal degrees; name the right column with {flag}")


def _check_degrees(path: Path, source: str, unit: str, what: str) -> None:
    import astropy.units as u

    parsed = u.Unit(unit, parse_strict="silent")
    if isinstance(parsed, u.UnrecognizedUnit) or parsed != u.deg:
        raise CatalogueError(f"{path}: {what} column {source!r} has unit {unit!r}; positions "
                             "must be ICRS degrees (convert the column or fix its unit)")


# --- batches --------------------------------------------------------------------------
def _prepare(batch: pa.RecordBatch, plan: _Plan, mapping: dict[str, str], path: Path,
             first_row: int) -> pa.RecordBatch:
    by_stored = {mapping[n]: batch.column(i) for i, n in enumerate(batch.schema.names)
                 if n not in plan.drop}
    arrays = []
    for f in plan.schema:
        arr = by_stored[f.name]
        if arr.type != f.type:
            try:
                arr = arr.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise CatalogueError(f"{path}: column {f.name!r}: cannot store as {f.type}: "
                                     f"{str(exc).splitlines()[0]}") from None
        if f.name in plan.widths:
            _check_width(arr, plan.widths[f.name], f.name, path, first_row)
        if pa.types.is_floating(f.type):
            # NaN is how FITS and VOTable write NULL; in SQL it would compare as a value.
            nan = pc.is_nan(arr)
            if pc.any(nan).as_py():
                arr = pc.if_else(nan, pa.scalar(None, f.type), arr)
        arrays.append(arr)
    if plan.ra is not None and plan.dec is not None:  # plan.positions
        ra = _degrees(arrays[plan.names.index(plan.ra)])
        dec = _degrees(arrays[plan.names.index(plan.dec)])
        _check_range(path, ra, 0.0, 360.0, plan.ra, "RA", first_row)
        _check_range(path, dec, -90.0, 90.0, plan.dec, "Dec", first_row)
        index, missing = healpix_index(ra, dec)
        arrays.append(pa.array(index, type=pa.int64(), mask=missing))
        names = plan.names + [HEALPIX_COLUMN]
    else:
        names = plan.names
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _check_width(arr: pa.Array, width: int, column: str, path: Path, first_row: int) -> None:
    """Values of a fixed-width text column must fit its width (they would be cut)."""
    lengths = pc.utf8_length(arr)
    longest = pc.max(lengths).as_py()
    if longest is not None and longest > width:
        row = first_row + int(pc.index(pc.greater(lengths, width), True).as_py()) + 1
        raise CatalogueError(f"{path}: column {column!r} is declared arraysize {width} but"
                             f" row {row} holds a longer value (the longest has {longest}"
                             " characters): declare a larger arraysize")


def _degrees(arr: pa.Array) -> np.ndarray:
    arr = arr.cast(pa.float64())
    if arr.null_count:
        arr = pc.fill_null(arr, np.nan)
    values: np.ndarray = arr.to_numpy(zero_copy_only=False)
    return values


def _check_range(path: Path, values: np.ndarray, low: float, high: float, column: str,
                 what: str, first_row: int) -> None:
    with np.errstate(invalid="ignore"):
        bad = (values < low) | (values > high) | np.isinf(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CatalogueError(
            f"{path}: {what} column {column!r} out of range {low:g}..{high:g}: "
            f"{float(values[i])!r} in row {first_row + i + 1}; positions must be ICRS "
            "decimal degrees (check the unit and the column)")


# --- the ingest -----------------------------------------------------------------------
def ingest_files(store: CatalogueStore, files: list[Path], database: str, table: str, *,
                 ra: str | None = None, dec: str | None = None,
                 meta_file: Path | MetaFile | None = None, description: str | None = None,
                 progress: bool = False, engine_memory_limit: str = "1GB",
                 allow_bad_units: bool = False, epoch: float | str | None = None,
                 work_dir: Path | None = None,
                 partitioned: PartitionOptions | None = None,
                 if_exists: str = "replace") -> TableMeta:
    """Ingest table files as the new current version of ``database.table``.

    Parameters
    ----------
    store
        The catalogue store to write to.
    files
        Parquet, FITS, VOTable, CSV or ECSV files (by extension) with the same columns;
        their rows are concatenated.
    database, table
        Target names; the database is created if it does not exist, and an existing
        table is replaced atomically.
    ra, dec
        Position columns, when they cannot be found from UCDs or common names.
    meta_file
        YAML metadata that sets or overrides units, UCDs, descriptions, the epoch and the
        table description (format in the module docstring), or a :class:`MetaFile`.
    description
        Table description; overrides the metadata file and the source file.
    progress
        Show a progress bar (tqdm) on stderr.
    engine_memory_limit
        DuckDB memory limit for staging and sorting; the rest spills to disk.
    allow_bad_units
        Keep a unit that is not a valid VOUnit as given (the column is flagged
        ``bad_unit``) instead of refusing the file.
    epoch
        Julian year of the positions (``2016.0`` or ``"J2016.0"``); overrides the
        metadata file and the source file.
    work_dir
        Directory for the sort's spill files and the version being written (default: a
        private area of this process in the data directory's ``tmp/``, removed after).
    partitioned
        Write the version in the HATS layout (HEALPix-partitioned Parquet with a margin
        catalogue, a directory; see :mod:`taphouse.catalogue.hats`) instead of one
        DuckDB file. The table needs positions.
    if_exists
        What to do when the table exists: ``"refuse"`` (CatalogueError; nothing is
        read), ``"replace"`` (a new version; the table's description stays unless a new
        one is given) or ``"append"`` (a new version holding the current rows and the
        files' rows; the columns must match by name and type, and the table's metadata
        stays). The previous version is retained for rollback either way.

    Returns
    -------
    TableMeta
        The published table version.

    Raises
    ------
    CatalogueError
        One message naming the file and the problem; the previous version of the table,
        if any, stays current.
    StorageFull
        The disk filled up; nothing was stored, the previous version stays current.
    """
    files = expand_inputs([Path(f) for f in files])
    if partitioned is not None:
        partitioned.check()
    if not files:
        raise CatalogueError("no input files given")
    dbname = check_database_name(database)
    tname = check_name(table, "table")
    if if_exists not in {"refuse", "replace", "append"}:
        raise ValueError(f"if_exists: refuse, replace or append, not {if_exists!r}")
    existing = store.table(dbname, tname)
    if existing is not None and if_exists == "refuse":
        raise CatalogueError(
            f"table {dbname}.{tname} exists ({existing.nrows:,} rows, "
            f"{len(_public_columns(existing))} columns): give --replace to make these files"
            " its new version, or --append to add their rows (the current version is kept"
            " for rollback either way)")
    if existing is not None and if_exists == "append":
        if partitioned is not None or (existing.path is not None and existing.path.is_dir()):
            raise CatalogueError(f"{dbname}.{tname}: --append works on single-file tables"
                                 " only, not the partitioned (HATS) layout: use --replace"
                                 " with all the files")
        ra = ra or existing.ra_column
        dec = dec or existing.dec_column
    else:
        existing = existing if if_exists == "replace" else None
    if isinstance(meta_file, MetaFile):
        meta, meta_file = meta_file, None
    else:
        meta = load_meta_file(Path(meta_file)) if meta_file is not None else MetaFile()
    if epoch is not None:
        meta = dataclasses.replace(meta, epoch=_epoch(epoch, Path("--epoch")))
    readers: list[FileTable] = []
    try:
        for path in files:
            readers.append(open_table(path))
            if readers[-1].nrows == 0:
                raise CatalogueError(f"{path}: no rows")
        appending = existing if if_exists == "append" else None
        if appending is not None:
            _check_same_names(appending, readers[0])
        plan = _plan(readers, ra, dec, meta, meta_file, allow_bad_units)
        if appending is not None:
            _check_same_columns(appending, plan, files[0])
        if partitioned is not None:
            _check_partitionable(plan, readers[0].path)
        final = store.new_version_path(
            dbname, tname, suffix=VERSION_SUFFIX if partitioned is not None else ".duckdb")
        with store.files_held() if appending is not None else contextlib.nullcontext():
            base = appending.path if appending is not None else None
            nrows = _write_version(readers, plan, final, store, work_dir, progress,
                                   engine_memory_limit, partitioned, f"{dbname}.{tname}",
                                   base=base, base_rows=appending.nrows if appending else 0)
    finally:
        for reader in readers:
            reader.close()
    if appending is not None:
        table_meta = dataclasses.replace(
            appending, nrows=nrows,
            description=description or meta.description or appending.description,
            extra={**(appending.extra or {}), "source_files": sorted(
                {*((appending.extra or {}).get("source_files") or []), *(p.name for p in files)})})
    else:
        table_meta = TableMeta(
            database=dbname, name=tname, columns=plan.columns,
            description=(description or meta.description or readers[0].description
                         or (existing.description if existing is not None else "") or ""),
            ra_column=plan.ra, dec_column=plan.dec,
            healpix_column=HEALPIX_COLUMN if plan.positions else None,
            healpix_order=HEALPIX_ORDER, epoch=plan.epoch, nrows=nrows,
            extra={"source_files": [p.name for p in files], **meta.extra})
    try:
        if store.database(dbname) is None:
            store.create_database(dbname, meta.database_description or "")
        elif meta.database_description:
            store.create_database(dbname, meta.database_description)
        # "refuse" is checked again in the publishing transaction (a concurrent ingest).
        return store.publish(table_meta, final, replace=if_exists != "refuse")
    except BaseException as exc:
        remove_version_file(final)
        _raise_if_disk_full(exc, f"{dbname}.{tname}")
        raise


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Input files, with each directory replaced by the table files in it (those whose
    extension names a known format), in name order; sub-directories are not entered."""
    out: list[Path] = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and _known_format(p))
        if not found:
            raise CatalogueError(f"{path}: a directory with no table files (Parquet, FITS,"
                                 " VOTable, CSV or ECSV, by extension)")
        out.extend(found)
    return out


def _known_format(path: Path) -> bool:
    try:
        file_format(path)
    except CatalogueError:
        return False
    return True


def _check_partitionable(plan: _Plan, path: Path) -> None:
    if not plan.positions:
        raise CatalogueError(f"{path}: a partitioned table needs positions (RA and Dec"
                             " columns; name them with --ra and --dec)")
    clash = sorted(set(plan.names) & set(RESERVED_COLUMNS))
    if clash:
        raise CatalogueError(f"{path}: column(s) {clash} are reserved in the partitioned"
                             " (HATS) layout; rename them, or ingest without --partitioned")


def _raise_if_disk_full(exc: BaseException, table: str) -> None:
    from taphouse.storage import StorageFull, is_disk_full

    if is_disk_full(exc) and not isinstance(exc, StorageFull):
        raise StorageFull(what=f"the ingest of {table} stored nothing; the table is as it"
                          " was") from exc


def _public_columns(table: TableMeta) -> list[Any]:
    return [c for c in table.columns if c.name not in {HEALPIX_COLUMN, LEGACY_HEALPIX_COLUMN}]


def _check_same_names(table: TableMeta, reader: FileTable) -> None:
    have = {c.name for c in _public_columns(table)}
    new = set(_rename_map(reader).values()) - {HEALPIX_COLUMN, LEGACY_HEALPIX_COLUMN}
    if have != new:
        raise CatalogueError(
            f"{reader.path}: cannot append to {table.qualified_name}: its columns differ"
            f" (missing {sorted(have - new)}; extra {sorted(new - have)}); use --replace to"
            " make a new table")


def _check_same_columns(table: TableMeta, plan: _Plan, path: Path) -> None:
    """``--append`` needs the files' columns to be the table's, by name and type."""
    have = [(c.name, c.datatype, c.arraysize) for c in _public_columns(table)]
    new = [(c.name, c.datatype, c.arraysize) for c in plan.columns
           if c.name not in {HEALPIX_COLUMN, LEGACY_HEALPIX_COLUMN}]
    if sorted(have, key=str) == sorted(new, key=str) and \
            (table.ra_column is None) == (plan.ra is None):
        return
    missing = sorted({n for n, *_ in have} - {n for n, *_ in new})
    extra = sorted({n for n, *_ in new} - {n for n, *_ in have})
    typed = sorted(f"{n} ({d}{'[' + a + ']' if a else ''} in the table)" for n, d, a in have
                   if n not in missing and (n, d, a) not in new)
    parts = ([f"missing {missing}"] if missing else []) + ([f"extra {extra}"] if extra else []) \
        + ([f"other types: {', '.join(typed)}"] if typed else [])
    if not parts:
        parts = ["the table has positions and the files have none, or the other way round"]
    raise CatalogueError(f"{path}: cannot append to {table.qualified_name}: its columns"
                         f" differ ({'; '.join(parts)}); use --replace to make a new table")


def _write_version(readers: list[FileTable], plan: _Plan, final: Path,
                   store: CatalogueStore, work_dir: Path | None, progress: bool,
                   memory_limit: str, partitioned: PartitionOptions | None = None,
                   name: str = "", base: Path | None = None, base_rows: int = 0) -> int:
    """Stream all rows through DuckDB's sort into ``final`` (after the rows of the
    version file ``base``, when appending); returns the row count.

    Partitioned: the sorted file is written in the work directory, then cut into the
    HATS layout there, and the finished directory is moved to ``final``."""
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            from taphouse.storage.datadir import TmpArea

            work_dir = stack.enter_context(TmpArea(store.root / "tmp")).path
        try:
            if partitioned is None:
                return _write_in(readers, plan, final, work_dir, progress, memory_limit,
                                 base, base_rows)
            work = Path(stack.enter_context(
                tempfile.TemporaryDirectory(dir=work_dir, prefix="hats-")))
            staged = work / "sorted.duckdb"
            nrows = _write_in(readers, plan, staged, work, progress, memory_limit)
            assert plan.ra is not None and plan.dec is not None
            written = work / ("version" + VERSION_SUFFIX)
            write_collection(staged, written, name=name, ra=plan.ra, dec=plan.dec,
                             options=partitioned, memory_limit=memory_limit,
                             work_dir=work, progress=progress)
            if partitioned.duckdb_copy:  # the sorted file, kept for DuckDB's reads
                staged.rename(written / DUCKDB_COPY)
            else:
                remove_version_file(staged)
            install_version_file(written, final)
            return nrows
        except BaseException as exc:
            _raise_if_disk_full(exc, f"{final.parent.parent.name}.{final.parent.name}")
            raise


def _write_in(readers: list[FileTable], plan: _Plan, final: Path, work_dir: Path,
              progress: bool, memory_limit: str, base: Path | None = None,
              base_rows: int = 0) -> int:
    import duckdb
    from tqdm import tqdm

    sizes = [r.nrows for r in readers if r.nrows is not None]
    total = sum(sizes) if len(sizes) == len(readers) else None
    failure: list[BaseException] = []
    counted = [0]
    bar = tqdm(total=total, unit="rows", unit_scale=True, disable=not progress,
               desc="reading", file=sys.stderr)

    def prepared_batches() -> Iterator[pa.RecordBatch]:
        # DuckDB pulls these batches; an error is kept here and re-raised as it was.
        try:
            for reader in readers:
                mapping = _rename_map(reader)
                file_rows = 0
                for batch in _batches(reader):
                    yield _prepare(batch, plan, mapping, reader.path, file_rows)
                    file_rows += batch.num_rows
                    bar.update(batch.num_rows)
                if file_rows == 0:
                    raise CatalogueError(f"{reader.path}: no rows")
                counted[0] += file_rows
            bar.close()
            if progress:
                what = "sorting by HEALPix index and writing" if plan.positions else "writing"
                print(f"{what} {counted[0]:,} rows ...", file=sys.stderr, flush=True)
        except BaseException as exc:
            failure.append(exc)
            raise

    # Spill files and the file being written live in the work directory (tmp/, same
    # disk as the tables); the finished file is moved into the tables directory.
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="ingest-") as work:
        tmp = Path(work) / "version.duckdb"
        con = duckdb.connect(":memory:", config={
            "threads": max(1, min(4, os.cpu_count() or 1)), "memory_limit": memory_limit,
            "temp_directory": str(Path(work) / "spill"), "preserve_insertion_order": True,
            "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        try:
            stream = pa.RecordBatchReader.from_batches(_with_healpix(plan), prepared_batches())
            con.register("source_rows", stream)
            order = f' ORDER BY "{HEALPIX_COLUMN}"' if plan.positions else ""
            con.execute(f"ATTACH '{_sql_str(str(tmp))}' AS version_file"
                        f" (ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
            source = "source_rows"
            if base is not None:
                con.execute(f"ATTACH '{_sql_str(str(base))}' AS base_version (READ_ONLY)")
                source = ("(SELECT * FROM base_version.main.data UNION ALL BY NAME"
                          " SELECT * FROM source_rows)")
            try:
                con.execute("CREATE TABLE version_file.main.data AS"
                            f" SELECT * FROM {source}{order}")
            except duckdb.Error:
                if failure:
                    raise failure[0] from None
                raise
            written = con.execute("SELECT count(*) FROM version_file.main.data").fetchall()
            con.execute("DETACH version_file")
            if base is not None:
                con.execute("DETACH base_version")
            if written[0][0] != counted[0] + base_rows:
                raise CatalogueError(f"internal error: wrote {written[0][0]} of "
                                     f"{counted[0] + base_rows} rows")
        finally:
            con.close()
            bar.close()
        install_version_file(tmp, final)
    return counted[0] + base_rows


def _batches(reader: FileTable) -> Iterator[pa.RecordBatch]:
    """The reader's batches, with library errors turned into one clear message."""
    iterator = reader.batches()
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except CatalogueError:
            raise
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise CatalogueError(f"{reader.path}: cannot read {reader.format} rows: "
                                 f"{text[0] if text else type(exc).__name__}") from exc
        yield batch


def _with_healpix(plan: _Plan) -> pa.Schema:
    if plan.positions:
        return plan.schema.append(pa.field(HEALPIX_COLUMN, pa.int64()))
    return plan.schema


def _sql_str(text: str) -> str:
    return text.replace("'", "''")
