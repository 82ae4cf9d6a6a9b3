"""Catalogue metadata: databases (ADQL schemas), tables and columns.

A table's metadata and its data file form one *version*; switching versions switches
both at once.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taphouse.errors import ServiceError

#: Order of the stored HEALPix index (29 is the deepest that fits in an int64).
HEALPIX_ORDER = 29
#: Name of the HEALPix (nested, order 29) index column added to tables with positions:
#: an internal column, absent from SELECT *, TAP_SCHEMA and /tables, that ADQL can
#: name as the delimited identifier "_healpix_29" (the name HATS gives the same value).
HEALPIX_COLUMN = "_healpix_29"
#: What versions written before the index became internal call it in their files; it
#: reads as HEALPIX_COLUMN in ADQL (stored files are immutable, so it is aliased).
LEGACY_HEALPIX_COLUMN = "healpix_index"
#: The metadata of the internal index column as a query that names it sees it.
HEALPIX_META_DESCRIPTION = (
    f"HEALPix index (nested scheme, order {HEALPIX_ORDER}) of the position; the rows are"
    " stored in this order. An internal column: not in SELECT * or the table's metadata,"
    f' named "{HEALPIX_COLUMN}" (with the quotes) in ADQL')

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED_DATABASES = ("mydb", "tap_schema", "tap_upload")
RESERVED_DATABASE_PREFIXES = ("user_", "tap_", "archived_")


class CatalogueError(ServiceError):
    """A catalogue operation failed; the message says what to fix."""


#: Celestial frames a position pair may be in (IVOA refframe vocabulary).
FRAMES = ("ICRS", "FK5", "FK4", "GALACTIC", "ECLIPTIC", "SUPER_GALACTIC")
#: Time scales of time columns (IVOA timescale vocabulary).
TIMESCALES = ("TAI", "TT", "TDB", "TCB", "TCG", "UT", "UTC", "GPS", "UNKNOWN")
#: Reference positions of times and positions (IVOA refposition vocabulary).
REFPOSITIONS = ("TOPOCENTER", "GEOCENTER", "BARYCENTER", "HELIOCENTER", "EMBARYCENTER",
                "RELOCATABLE", "CUSTOM", "UNKNOWN")


@dataclass(frozen=True)
class CoordSys:
    """The celestial frame of a position pair, written as a VOTable COOSYS.

    ``epoch`` is when the positions hold (``J2016.0``, ``B1950.0``); ``equinox`` is
    the equinox of FK4/FK5 (``J2000``, ``B1950``); ``refposition`` (VOTable 1.5) the
    origin, when a catalogue states it.
    """

    system: str = "ICRS"
    epoch: str | None = None
    equinox: str | None = None
    refposition: str | None = None

    @property
    def julian_year(self) -> float | None:
        """The epoch as a Julian year (B1950.0 is J1949.9998...)."""
        return epoch_year(self.epoch)


@dataclass(frozen=True)
class TimeSys:
    """The time system of a time column, written as a VOTable TIMESYS.

    ``timeorigin`` is the Julian date of the zero of a numeric time (``2400000.5`` or
    ``MJD-origin`` for MJD); None for calendar dates and Julian years.
    """

    timescale: str
    refposition: str = "UNKNOWN"
    timeorigin: str | None = None


# Frame names as files write them (VOTable 1.4 COOSYS, FITS RADESYS) -> refframe terms.
_FRAME_NAMES = {"icrs": "ICRS", "fk5": "FK5", "eq_fk5": "FK5", "fk4": "FK4", "eq_fk4": "FK4",
                "fk4-no-e": "FK4", "galactic": "GALACTIC", "supergalactic": "SUPER_GALACTIC",
                "super_galactic": "SUPER_GALACTIC", "ecliptic": "ECLIPTIC",
                "ecl_fk5": "ECLIPTIC", "ecl_fk4": "ECLIPTIC"}


def frame_name(text: str | None) -> str | None:
    """The refframe term of a frame name as files write it (``eq_FK5`` -> ``FK5``), or
    None if it is not one this service knows."""
    if text is None:
        return None
    return _FRAME_NAMES.get(str(text).strip().lower())


def epoch_text(value: float | str | None) -> str | None:
    """A VOTable astroYear for an epoch: 2016.0 -> ``J2016.0``; ``B1950`` kept."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().upper()
        if not text:
            return None
        prefix = text[0] if text[0] in "JB" else "J"
        number = float(text[1:] if text[0] in "JB" else text)
    else:
        prefix, number = "J", float(value)
    return f"{prefix}{number!r}"


def epoch_year(epoch: str | None) -> float | None:
    """The Julian year of an astroYear (``J1991.25`` -> 1991.25)."""
    if epoch is None:
        return None
    if epoch.startswith("B"):
        # Besselian epoch to Julian date (IAU), then to a Julian year
        jd = 2415020.31352 + (float(epoch[1:]) - 1900.0) * 365.242198781
        return 2000.0 + (jd - 2451545.0) / 365.25
    return float(epoch.removeprefix("J"))


@dataclass
class ColumnMeta:
    """One column, with everything TAP_SCHEMA.columns needs.

    ``name`` is stored lower-case; :attr:`adql_name` is how it must be written in ADQL.
    ``datatype`` is a VOTable datatype (boolean, unsignedByte, short, int, long, float,
    double, char, unicodeChar). ``unit`` is canonical VOUnit
    (:mod:`taphouse.catalogue.units`); ``bad_unit`` marks a unit kept as given although
    it is not one (accepted at ingest with ``--allow-bad-units``). ``coosys`` is the
    frame of a position column (both columns of a pair share it), ``timesys`` the time
    system of a time column.
    """

    name: str
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
    principal: bool = False
    indexed: bool = False
    std: bool = False
    bad_unit: bool = False
    coosys: CoordSys | None = None
    timesys: TimeSys | None = None

    @property
    def adql_name(self) -> str:
        from taphouse.adql.reserved import adql_identifier

        return adql_identifier(self.name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnMeta:
        """A column from its stored form. Units are normalised as they are read: versions
        written before units were canonical (``mas yr-1``) read as ``mas/yr``, and a
        unit that is none is flagged ``bad_unit`` (versions are immutable, so this is
        cheaper and safer than rewriting every stored version; it is cached per unit)."""
        known = _COLUMN_FIELDS
        values = {k: v for k, v in d.items() if k in known}
        if isinstance(values.get("coosys"), dict):
            values["coosys"] = CoordSys(**values["coosys"])
        if isinstance(values.get("timesys"), dict):
            values["timesys"] = TimeSys(**values["timesys"])
        column = cls(**values)
        if column.unit is not None and not column.bad_unit:
            from taphouse.catalogue.units import check_unit

            check = check_unit(column.unit)
            column.unit, column.bad_unit = check.unit, not check.valid
        return column


_COLUMN_FIELDS = frozenset(f.name for f in dataclasses.fields(ColumnMeta))


@dataclass
class TableMeta:
    """One table version: metadata plus the file that holds its rows.

    ``kind`` is ``catalogue`` (read-only database), ``user`` (a user's schema),
    ``upload`` (TAP_UPLOAD, lives for one request) or ``tap_schema``.
    """

    database: str
    name: str
    columns: list[ColumnMeta]
    description: str = ""
    kind: str = "catalogue"
    ra_column: str | None = None
    dec_column: str | None = None
    healpix_column: str | None = None
    healpix_order: int = HEALPIX_ORDER
    epoch: float | None = None  # Julian year of the positions, e.g. 2016.0
    nrows: int = 0
    nbytes: int = 0
    path: Path | None = None
    table_id: int | None = None
    version_id: int | None = None
    created: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # provenance, credits, ...
    #: The backend serving its database and that backend's connection config name
    #: (:class:`DatabaseMeta`); uploads, TAP_SCHEMA and user tables: the default.
    backend: str = "duckdb"
    backend_ref: str | None = None

    def __post_init__(self) -> None:
        # The HEALPix index is internal: never one of the listed columns (versions
        # written before it was list it there).
        if self.healpix_column is not None and any(
                c.name == self.healpix_column for c in self.columns):
            self.columns = [c for c in self.columns if c.name != self.healpix_column]
        # Tables ingested before frames were recorded: their positions are ICRS (the
        # only frame ingest accepted) at the table's epoch. Filled in as they are read.
        if self.ra_column is None or self.dec_column is None:
            return
        pair = (self.ra_column, self.dec_column)
        if all(c.coosys is not None for c in self.columns if c.name in pair):
            return
        frame = CoordSys("ICRS", epoch_text(self.epoch))
        self.columns = [dataclasses.replace(c, coosys=frame)
                        if c.name in pair and c.coosys is None else c for c in self.columns]

    @property
    def qualified_name(self) -> str:
        """``schema.table`` as written in ADQL (each part quoted where needed)."""
        from taphouse.adql.reserved import adql_identifier, adql_schema

        return f"{adql_schema(self.database)}.{adql_identifier(self.name)}"

    def internal_columns(self) -> dict[str, tuple[str, ColumnMeta]]:
        """Columns a query may name but SELECT * does not show: ADQL name -> (name in
        the stored file, metadata)."""
        if self.healpix_column is None:
            return {}
        meta = ColumnMeta(HEALPIX_COLUMN, "long", ucd="pos.healpix",
                          description=HEALPIX_META_DESCRIPTION, indexed=True)
        return {HEALPIX_COLUMN: (self.healpix_column, meta)}

    def column(self, name: str) -> ColumnMeta | None:
        lname = name.lower()
        for c in self.columns:
            if c.name == lname:
                return c
        return None

    def meta_dict(self) -> dict[str, Any]:
        """Everything but identity and file: what a version stores as JSON."""
        return {
            "columns": [c.to_dict() for c in self.columns],
            "ra_column": self.ra_column,
            "dec_column": self.dec_column,
            "healpix_column": self.healpix_column,
            "healpix_order": self.healpix_order,
            "epoch": self.epoch,
            "extra": self.extra,
        }


@dataclass(frozen=True)
class TableSummary:
    """A table without its columns: what a listing of many tables needs (read without
    parsing each version's column metadata, so listing 10,000 tables stays cheap).
    ``matched_columns``: in a search, the columns whose name or description matched."""

    database: str
    name: str
    description: str
    kind: str
    nrows: int
    nbytes: int
    created: str | None
    ra_column: str | None
    dec_column: str | None
    epoch: float | None
    ncolumns: int
    matched_columns: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        """``schema.table`` as written in ADQL (each part quoted where needed)."""
        from taphouse.adql.reserved import adql_identifier, adql_schema

        return f"{adql_schema(self.database)}.{adql_identifier(self.name)}"


@dataclass
class DatabaseMeta:
    name: str
    description: str = ""
    kind: str = "catalogue"  # or "user"
    public: bool = True
    database_id: int | None = None
    owner_id: int | None = None
    #: The backend that serves its tables (``duckdb``, ``postgres``, ...) and the name of
    #: that backend's connection config (None for the embedded default).
    backend: str = "duckdb"
    backend_ref: str | None = None


_RA_NAMES = ("ra", "ra_icrs", "raj2000", "ra_j2000", "ra_deg", "alpha")
_DEC_NAMES = ("dec", "de", "dec_icrs", "de_icrs", "dej2000", "dec_j2000", "dec_deg", "delta")


def position_columns(columns: list[ColumnMeta]) -> tuple[str | None, str | None]:
    """(ra, dec) column names of a table: by UCD whose primary word is pos.eq.ra /
    pos.eq.dec (``meta.main`` first; ``pos.pm;pos.eq.ra`` is a proper motion, not a
    position), else by common names; (None, None) unless both are found."""

    def usable(c: ColumnMeta) -> bool:
        return c.datatype in ("double", "float") and not c.arraysize

    def by_ucd(word: str) -> str | None:
        hits = [c for c in columns if usable(c)
                and (c.ucd or "").lower().split(";")[0].strip() == word]
        main = [c for c in hits if "meta.main" in (c.ucd or "").lower()]
        return (main or hits)[0].name if hits else None

    def by_name(names: tuple[str, ...]) -> str | None:
        for n in names:
            for c in columns:
                if c.name == n and usable(c):
                    return c.name
        return None

    ra = by_ucd("pos.eq.ra") or by_name(_RA_NAMES)
    dec = by_ucd("pos.eq.dec") or by_name(_DEC_NAMES)
    return (ra, dec) if ra and dec else (None, None)


def check_name(name: str, what: str) -> str:
    """Validate a database, table or column name; return it lower-case."""
    lname = name.lower()
    if not _NAME.match(lname):
        raise CatalogueError(
            f"invalid {what} name {name!r}: use a letter, then letters, digits or '_'")
    return lname


def check_database_name(name: str, *, allow_reserved: bool = False) -> str:
    # imported here: taphouse.adql imports this module (no import cycle at load time)
    from taphouse.adql.reserved import is_reserved

    lname = check_name(name, "database")
    if is_reserved(lname):
        raise CatalogueError(f"invalid database name {name!r}: it is an ADQL reserved word")
    if not allow_reserved and (lname in RESERVED_DATABASES
                               or lname.startswith(RESERVED_DATABASE_PREFIXES)):
        raise CatalogueError(
            f"database name {name!r} is reserved (mydb, tap_schema, tap_*, user_*,"
            " archived_*)")
    return lname


_ARROW_TO_VOTABLE = {
    "bool": ("boolean", None),
    "int8": ("short", None),
    "uint8": ("unsignedByte", None),
    "int16": ("short", None),
    "uint16": ("int", None),
    "int32": ("int", None),
    "uint32": ("long", None),
    "int64": ("long", None),
    "uint64": ("long", None),
    "float": ("float", None),
    "halffloat": ("float", None),
    "double": ("double", None),
    "string": ("char", "*"),
    "large_string": ("char", "*"),
    "binary": ("unsignedByte", "*"),
    "large_binary": ("unsignedByte", "*"),
    "date32[day]": ("char", "*"),
}


def votable_type_for_arrow(arrow_type: Any) -> tuple[str, str | None, str | None]:
    """(datatype, arraysize, xtype) of the VOTable field that holds an Arrow type."""
    import pyarrow as pa

    if pa.types.is_timestamp(arrow_type):
        return "char", "*", "timestamp"
    if pa.types.is_date(arrow_type):
        return "char", "*", "timestamp"
    if pa.types.is_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        inner, _, _ = votable_type_for_arrow(arrow_type.value_type)
        size = str(arrow_type.list_size) if pa.types.is_fixed_size_list(arrow_type) else "*"
        return inner, size, None
    if pa.types.is_decimal(arrow_type):
        return "double", None, None
    key = str(arrow_type)
    if key in _ARROW_TO_VOTABLE:
        datatype, arraysize = _ARROW_TO_VOTABLE[key]
        return datatype, arraysize, None
    raise CatalogueError(f"unsupported column type {arrow_type}")
