"""The service's user-defined functions: one registry for the translator, the backend
and the capabilities document.

Names follow those already used by other TAP services (``ivo_*`` from the IVOA
UDF catalogue). Each entry says how ADQL calls it (TAPRegExt signature), what it
returns (for result metadata) and whether the backend needs a registered function
(:mod:`taphouse.engine.functions`) or the translator writes it out as plain SQL.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Udf:
    """One user-defined function.

    Attributes
    ----------
    name
        Lower-case ADQL name.
    signature
        TAPRegExt form, e.g. ``ivo_hasword(haystack VARCHAR, needle VARCHAR) -> INTEGER``.
    description
        One paragraph for the capabilities document.
    nargs
        Number of arguments.
    datatype, arraysize, xtype, unit, ucd
        VOTable metadata of the result.
    """

    name: str
    signature: str
    description: str
    nargs: int
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None


_ALL = [
    Udf("ivo_healpix_index",
        "ivo_healpix_index(order INTEGER, ra DOUBLE, dec DOUBLE) -> BIGINT",
        "The nested HEALPix index at the given order (0..29) of the ICRS position "
        "(ra, dec) in degrees.", 3, "long", ucd="pos.healpix"),
    Udf("ivo_hasword",
        "ivo_hasword(haystack VARCHAR, needle VARCHAR) -> INTEGER",
        "1 if every word of needle occurs as a whole word in haystack, case-insensitively; "
        "0 otherwise. Words are runs of letters and digits.", 2, "int"),
    Udf("ivo_nocasematch",
        "ivo_nocasematch(value VARCHAR, pattern VARCHAR) -> INTEGER",
        "1 if value matches the SQL pattern (with % and _ wildcards) ignoring case, "
        "0 otherwise.", 2, "int"),
    Udf("ivo_epoch_prop_pos",
        "ivo_epoch_prop_pos(ra DOUBLE, dec DOUBLE, parallax DOUBLE, pmra DOUBLE, "
        "pmdec DOUBLE, radial_velocity DOUBLE, ref_epoch DOUBLE, out_epoch DOUBLE) -> POINT",
        "The position at out_epoch (Julian year) of a star at (ra, dec) [deg] at "
        "ref_epoch, with parallax [mas], proper motion pmra (with cos dec), pmdec "
        "[mas/yr] and radial velocity [km/s]. Rigorous space motion (ERFA pmsafe). "
        "NULL proper motion, parallax or radial velocity count as 0, so a star without "
        "them keeps its position (a proper motion with one NULL component counts as no "
        "motion; the radial velocity is ignored without a positive parallax); the result "
        "is NULL only if the position or an epoch is NULL. Usable wherever a POINT is "
        "(COORD1, DISTANCE, CONTAINS, CIRCLE centre).", 8, "double", "2", "point", "deg",
        "pos.eq"),
    Udf("ivo_interval_overlaps",
        "ivo_interval_overlaps(l1 DOUBLE, h1 DOUBLE, l2 DOUBLE, h2 DOUBLE) -> INTEGER",
        "1 if the closed intervals [l1, h1] and [l2, h2] overlap, 0 otherwise.", 4, "int"),
]

#: The registry, by lower-case name.
UDFS: dict[str, Udf] = {u.name: u for u in _ALL}

#: Backend functions that translated SQL may call but ADQL text may not (internal).
INTERNAL = ("taphouse_healpix_neighbours", "taphouse_polygon_contains")
