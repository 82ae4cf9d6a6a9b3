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
    alias_of
        For another name of a function (the ESA Gaia archive's), the function it
        calls: same arguments, same result.
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
    alias_of: str | None = None


_PROP_ARGS = ("ra DOUBLE, dec DOUBLE, parallax DOUBLE, pmra DOUBLE, pmdec DOUBLE, "
              "radial_velocity DOUBLE, ref_epoch DOUBLE, out_epoch DOUBLE")
#: Highest HEALPix order held in a Gaia source_id (bits 35 and up: the level-12 cell).
GAIA_SOURCE_ID_ORDER = 12

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
    Udf("epoch_prop_pos", f"epoch_prop_pos({_PROP_ARGS}) -> POINT",
        "The ESA Gaia archive's name of ivo_epoch_prop_pos: same arguments (degrees, mas, "
        "mas/yr, km/s, Julian years), same result.", 8, "double", "2", "point", "deg",
        "pos.eq", alias_of="ivo_epoch_prop_pos"),
    Udf("epoch_prop", f"epoch_prop({_PROP_ARGS}) -> DOUBLE[6]",
        "The six astrometric parameters at out_epoch (Julian year) of a star given at "
        "ref_epoch, as in the ESA Gaia archive: an array [ra, dec, parallax, pmra, pmdec, "
        "radial_velocity] in deg, deg, mas, mas/yr (pmra with cos dec), mas/yr, km/s. "
        "Rigorous space motion (ERFA pmsafe). As in the Gaia archive, a NULL parallax, "
        "proper motion component or radial velocity counts as 0; without a positive "
        "parallax the radial velocity is ignored for the motion and parallax and radial "
        "velocity are returned as given. NULL if the position or an epoch is NULL.",
        8, "double", "6"),
    Udf("gaia_healpix_index",
        "gaia_healpix_index(norder INTEGER, source_id BIGINT) -> BIGINT",
        "The nested HEALPix index at order norder (0..12) of the cell a Gaia source_id "
        "encodes (as in the ESA Gaia archive: source_id / (2^35 * 4^(12 - norder)), "
        "integer division). NULL for a negative source_id or an order outside 0..12.",
        2, "long", ucd="pos.healpix"),
    Udf("ivo_interval_overlaps",
        "ivo_interval_overlaps(l1 DOUBLE, h1 DOUBLE, l2 DOUBLE, h2 DOUBLE) -> INTEGER",
        "1 if the closed intervals [l1, h1] and [l2, h2] overlap, 0 otherwise.", 4, "int"),
]

#: The registry, by lower-case name.
UDFS: dict[str, Udf] = {u.name: u for u in _ALL}

#: Backend functions that translated SQL may call but ADQL text may not (internal).
INTERNAL = ("taphouse_healpix_neighbours", "taphouse_contains", "taphouse_intersects",
            "taphouse_xmatch")
