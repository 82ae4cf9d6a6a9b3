"""Units of columns: parsed with astropy, stored in one canonical VOUnit spelling.

A unit string from a file or a metadata file is read as VOUnit, else as FITS, CDS or
astropy's generic format (files say ``mas yr-1``, ``erg/cm2/s`` or ``km/s``), and
stored as VOUnit: ``mas yr-1`` becomes ``mas/yr``, ``deg2`` becomes ``deg**2``. A
single divisor is written with ``/`` (``km/s``), several as negative powers
(``erg.s**-1.cm**-2``), as astropy writes VOUnit. ``%`` is a VOUnit (VOUnits 1.1) that
astropy does not parse; it is kept. No unit (``""``, ``-``, ``---``) is ``None``.

A string no parser accepts is an :class:`InvalidUnit`; ingest refuses it naming the
column, unless the operator accepts it as given (``--allow-bad-units``), in which case
the column keeps the text and is flagged (:attr:`ColumnMeta.bad_unit`).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

#: Unit strings that mean "no unit" (VizieR writes ``---``).
NO_UNIT = frozenset({"", "-", "--", "---", "none", "dimensionless"})
#: VOUnits known to the standard that astropy's VOUnit parser does not read.
_VOUNIT_EXTRA = frozenset({"%"})
_FORMATS = ("vounit", "fits", "cds", "generic")
#: Common spellings astropy reads as something awkward in VOUnit ("uas" -> 1e-06arcsec).
_ALIASES = {"uas": "uarcsec", "µas": "uarcsec", "μas": "uarcsec"}


class InvalidUnit(ValueError):
    """A unit string that is not a unit in VOUnit, FITS, CDS or astropy syntax."""


@dataclass(frozen=True)
class UnitCheck:
    """The result of reading one unit string: ``unit`` is what to store."""

    unit: str | None
    valid: bool
    problem: str | None = None


def canonical_unit(text: str | None) -> str | None:
    """The canonical VOUnit spelling of ``text``; :class:`InvalidUnit` if not a unit."""
    check = check_unit(text)
    if not check.valid:
        raise InvalidUnit(check.problem)
    return check.unit


def check_unit(text: str | None) -> UnitCheck:
    """Read ``text`` as a unit: canonical and valid, or as given and invalid."""
    if text is None:
        return UnitCheck(None, True)
    return _check(str(text))


@functools.lru_cache(maxsize=4096)
def _check(text: str) -> UnitCheck:
    stripped = text.strip()
    if stripped.lower() in NO_UNIT:
        return UnitCheck(None, True)
    if stripped in _VOUNIT_EXTRA:
        return UnitCheck(stripped, True)
    parsed = _parse(_ALIASES.get(stripped, stripped))
    if parsed is None:
        hint = ""
        if stripped != stripped.lower() and _parse(stripped.lower()) is not None:
            hint = f"; did you mean {_spelling(_parse(stripped.lower()))!r}?"
        return UnitCheck(stripped, False,
                         f"{stripped!r} is not a unit in VOUnit, FITS or CDS syntax{hint}")
    try:
        return UnitCheck(_spelling(parsed), True)
    except ValueError as exc:  # e.g. dex: a unit to astropy, but not in VOUnit
        return UnitCheck(stripped, False, f"{stripped!r} cannot be written as a VOUnit: "
                                          f"{str(exc).strip()}")


def astropy_unit(text: str) -> Any:  # an astropy unit
    """The astropy unit of a unit string in any syntax accepted here, or None."""
    stripped = text.strip()
    return _parse(_ALIASES.get(stripped, stripped))


def _parse(text: str) -> Any:
    import astropy.units as u

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notes (erg) are not errors here
        for fmt in _FORMATS:
            try:
                unit = u.Unit(text, format=fmt, parse_strict="raise")
            except (ValueError, TypeError, KeyError):
                continue
            if unit == u.dimensionless_unscaled and text not in ("1",):
                continue
            return unit
    return None


def _spelling(unit: Any) -> str | None:
    """VOUnit text of a parsed unit, with one divisor written after a '/'."""
    import astropy.units as u

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if unit == u.dimensionless_unscaled:
            return None
        plain: str = unit.to_string("vounit")
        scale = getattr(unit, "scale", 1.0)
        bases = getattr(unit, "bases", [unit])
        powers = getattr(unit, "powers", [1])
        if scale != 1 or any(p != int(p) for p in powers):
            return plain
        names = [b.to_string("vounit") for b in bases]
        over = [(n, -int(p)) for n, p in zip(names, powers, strict=True) if p < 0]
        up = [(n, int(p)) for n, p in zip(names, powers, strict=True) if p > 0]
        if len(over) != 1 or not up:
            return plain

        def term(name: str, power: int) -> str:
            return name if power == 1 else f"{name}**{power}"

        text = ".".join(term(n, p) for n, p in up) + "/" + term(*over[0])
        try:
            same = u.Unit(text, format="vounit", parse_strict="raise") == unit
        except ValueError:
            same = False
        return text if same else plain
