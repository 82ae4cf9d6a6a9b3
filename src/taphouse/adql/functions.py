"""The functions ADQL text may call, in one registry.

sqlglot parses every function it does not know itself (POINT, CONTAINS, IN_UNIT, the
service's ``ivo_*`` functions...) as an ``exp.Anonymous`` call, and the compiled build
of sqlglot refuses Python subclasses of its nodes, so these calls cannot become node
types of their own. Their typed view is :class:`AdqlFunction`: :func:`function_of`
gives the member a call names (or None), and the modules that treat calls
(safety, columns, geometry, translator) compare members, not strings. Adding a
function: a member here, its metadata in :mod:`taphouse.adql.udf` (service functions),
its translation in :mod:`taphouse.adql.translator`; how a backend writes a function of
the translated SQL is that backend's ``Rules.functions`` (:mod:`taphouse.adql.rules`).
"""

from __future__ import annotations

from enum import StrEnum

from sqlglot import exp


class AdqlFunction(StrEnum):
    """An ADQL function that parses as a plain call (value: its lower-case name)."""

    # geometry (ADQL 2.1 section 2.4)
    POINT = "point"
    CIRCLE = "circle"
    BOX = "box"
    POLYGON = "polygon"
    CENTROID = "centroid"
    REGION = "region"
    CONTAINS = "contains"
    INTERSECTS = "intersects"
    DISTANCE = "distance"
    AREA = "area"
    COORD1 = "coord1"
    COORD2 = "coord2"
    COORDSYS = "coordsys"
    # other ADQL functions sqlglot does not know
    IN_UNIT = "in_unit"
    LOG10 = "log10"
    # the service's functions (metadata in taphouse.adql.udf.UDFS)
    IVO_HEALPIX_INDEX = "ivo_healpix_index"
    IVO_HASWORD = "ivo_hasword"
    IVO_NOCASEMATCH = "ivo_nocasematch"
    IVO_EPOCH_PROP_POS = "ivo_epoch_prop_pos"
    EPOCH_PROP_POS = "epoch_prop_pos"
    EPOCH_PROP = "epoch_prop"
    GAIA_HEALPIX_INDEX = "gaia_healpix_index"
    IVO_INTERVAL_OVERLAPS = "ivo_interval_overlaps"


F = AdqlFunction

#: Calls whose value is a geometry.
GEOMETRY_VALUES = frozenset({F.POINT, F.CIRCLE, F.BOX, F.POLYGON, F.CENTROID})
#: The geometric predicates (``CONTAINS(a, b) = 1``).
PREDICATES = frozenset({F.CONTAINS, F.INTERSECTS})
#: Every ADQL geometry function.
GEOMETRY = GEOMETRY_VALUES | PREDICATES | {F.REGION, F.DISTANCE, F.AREA, F.COORD1,
                                           F.COORD2, F.COORDSYS}

_BY_NAME: dict[str, AdqlFunction] = {f.value: f for f in AdqlFunction}


def function_of(node: exp.Expression) -> AdqlFunction | None:
    """The ADQL function ``node`` calls, or None (not a plain call, or a name that is not
    an ADQL function: an unknown one, or one the translator wrote itself)."""
    if isinstance(node, exp.Anonymous):
        return _BY_NAME.get(node.name.lower())
    return None


__all__ = ["AdqlFunction", "function_of", "GEOMETRY", "GEOMETRY_VALUES", "PREDICATES"]
