"""Backend implementations of ADQL user-defined functions (see ``taphouse.adql.udf``).

All are vectorised Arrow UDFs: DuckDB hands over a batch (2048 rows) at a time and the
work is done by numpy, cdshealpix and ERFA, so they stay fast on millions of rows.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MAX_DEPTH = 29


def register_functions(con: Any) -> None:
    """Register the UDFs the translated SQL may call on a DuckDB connection."""
    udfs = [
        ("ivo_healpix_index", _healpix_index, ["INTEGER", "DOUBLE", "DOUBLE"], "BIGINT"),
        ("taphouse_healpix_neighbours", _healpix_neighbours,
         ["INTEGER", "DOUBLE", "DOUBLE"], "BIGINT[]"),
        ("ivo_hasword", _hasword, ["VARCHAR", "VARCHAR"], "INTEGER"),
        ("ivo_epoch_prop_pos", _epoch_prop_pos, ["DOUBLE"] * 8, "DOUBLE[2]"),
        ("epoch_prop", _epoch_prop, ["DOUBLE"] * 8, "DOUBLE[6]"),
        ("taphouse_polygon_contains", _polygon_contains,
         ["DOUBLE", "DOUBLE", "DOUBLE[]"], "BOOLEAN"),
    ]
    for name, func, params, ret in udfs:
        # "special": the function sees NULLs itself (missing parallax means 0, not NULL).
        nulls = "special" if name in ("ivo_epoch_prop_pos", "epoch_prop") else "default"
        con.create_function(name, func, params, ret, type="arrow", null_handling=nulls,
                            side_effects=False)


# --- HEALPix ---------------------------------------------------------------------------
def _valid(*arrays: pa.Array) -> np.ndarray:
    ok = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        if a.null_count:
            ok &= ~np.asarray(a.is_null())
    return ok


def _floats(a: pa.Array) -> np.ndarray:
    return np.asarray(a.fill_null(0.0), dtype=np.float64) if a.null_count else \
        np.asarray(a, dtype=np.float64)


def _cells(depth: np.ndarray, ra: np.ndarray, dec: np.ndarray, ok: np.ndarray) -> np.ndarray:
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    ok &= (np.abs(dec) <= 90.0) & np.isfinite(ra) & (depth >= 0) & (depth <= _MAX_DEPTH)
    out = np.zeros(len(ra), dtype=np.int64)
    for d in np.unique(depth[ok]):
        sel = ok & (depth == d)
        out[sel] = nested.lonlat_to_healpix(
            Longitude(np.mod(ra[sel], 360.0) * u.deg), Latitude(dec[sel] * u.deg), int(d),
            num_threads=1).astype(np.int64)
    return out


def _healpix_index(depth: pa.Array, ra: pa.Array, dec: pa.Array) -> pa.Array:
    ok = _valid(depth, ra, dec)
    d = np.asarray(depth.fill_null(0), dtype=np.int64)
    cells = _cells(d, _floats(ra), _floats(dec), ok)
    return pa.array(cells, type=pa.int64(), mask=~ok)


def _healpix_neighbours(depth: pa.Array, ra: pa.Array, dec: pa.Array) -> pa.Array:
    """The cell of each position and its neighbours (the 3x3 block, centre included)."""
    from cdshealpix import nested

    ok = _valid(depth, ra, dec)
    d = np.asarray(depth.fill_null(0), dtype=np.int64)
    cells = _cells(d, _floats(ra), _floats(dec), ok)
    block = np.full((len(cells), 9), -1, dtype=np.int64)
    for dd in np.unique(d[ok]):
        sel = ok & (d == dd)
        block[sel] = nested.neighbours(cells[sel].astype(np.uint64), int(dd),
                                       num_threads=1).astype(np.int64)
    flat = block.ravel()
    keep = flat >= 0
    counts = keep.reshape(block.shape).sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    values = pa.array(flat[keep], type=pa.int64())
    return pa.ListArray.from_arrays(pa.array(offsets), values,
                                    mask=pa.array(~ok))


# --- text ------------------------------------------------------------------------------
_WORD = re.compile(r"[^\W_]+")


def _hasword(haystack: pa.Array, needle: pa.Array) -> pa.Array:
    out = []
    for h, n in zip(haystack.to_pylist(), needle.to_pylist(), strict=True):
        if h is None or n is None:
            out.append(None)
            continue
        words = set(_WORD.findall(h.lower()))
        wanted = _WORD.findall(n.lower())
        out.append(int(bool(wanted) and all(w in words for w in wanted)))
    return pa.array(out, type=pa.int32())


# --- astrometry ------------------------------------------------------------------------
_MAS = np.pi / (180.0 * 3600.0 * 1000.0)


def _epoch_prop_pos(ra, dec, parallax, pmra, pmdec, rv, ref_epoch, out_epoch) -> pa.Array:
    import erfa

    # Like pgsphere's epoch_prop (behind other services' ivo_epoch_prop_pos): a missing
    # proper motion, parallax or radial velocity counts as 0, so the position still
    # comes out; a proper motion with one component missing counts as no motion; without
    # a (positive) parallax the radial velocity is ignored, as it would move the star by
    # an absurd amount at the tiny parallax ERFA substitutes.
    ok = _valid(ra, dec, ref_epoch, out_epoch)
    r = np.radians(_floats(ra))
    d = np.radians(_floats(dec))
    cosd = np.cos(d)
    has_pm = _valid(pmra, pmdec)
    # ERFA wants dRA/dt; Gaia-style pmra already includes cos(dec).
    pmr = np.where(has_pm & (cosd > 0),
                   _floats(pmra) * _MAS / np.where(cosd > 0, cosd, 1.0), 0.0)
    pmd = np.where(has_pm, _floats(pmdec) * _MAS, 0.0)
    px = np.maximum(_floats(parallax), 0.0) / 1000.0  # arcsec
    vr = np.where(px > 0, _floats(rv), 0.0)
    ep1 = 2451545.0 + (_floats(ref_epoch) - 2000.0) * 365.25
    ep2 = 2451545.0 + (_floats(out_epoch) - 2000.0) * 365.25
    # ERFA warns, row by row, that it substituted a distance for a zero parallax: expected
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", erfa.ErfaWarning)
        r2, d2, *_ = erfa.pmsafe(r, d, pmr, pmd, px, vr, ep1, 0.0, ep2, 0.0)
    pos = np.column_stack([np.degrees(r2) % 360.0, np.degrees(d2)]).ravel()
    values = pa.array(pos, type=pa.float64())
    return pa.FixedSizeListArray.from_arrays(values, 2, mask=pa.array(~ok))


def _epoch_prop(ra, dec, parallax, pmra, pmdec, rv, ref_epoch, out_epoch) -> pa.Array:
    """The Gaia archive's EPOCH_PROP: [ra, dec, parallax, pmra*, pmdec, rv] at out_epoch.

    As there, each NULL parallax, proper motion component or radial velocity counts as
    0. Without a positive parallax the star is at infinite distance: the radial velocity
    does not move it, and parallax and radial velocity come back as given.
    """
    import erfa

    ok = _valid(ra, dec, ref_epoch, out_epoch)
    r = np.radians(_floats(ra))
    d = np.radians(_floats(dec))
    cosd = np.cos(d)
    pmr = np.where(cosd > 0, _floats(pmra) * _MAS / np.where(cosd > 0, cosd, 1.0), 0.0)
    pmd = _floats(pmdec) * _MAS
    plx = _floats(parallax)
    has_px = plx > 0
    rv_in = _floats(rv)
    ep1 = 2451545.0 + (_floats(ref_epoch) - 2000.0) * 365.25
    ep2 = 2451545.0 + (_floats(out_epoch) - 2000.0) * 365.25
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", erfa.ErfaWarning)
        r2, d2, pmr2, pmd2, px2, rv2 = erfa.pmsafe(
            r, d, pmr, pmd, np.where(has_px, plx, 0.0) / 1000.0,
            np.where(has_px, rv_in, 0.0), ep1, 0.0, ep2, 0.0)
    out = np.column_stack([
        np.degrees(r2) % 360.0, np.degrees(d2),
        np.where(has_px, px2 * 1000.0, plx),
        pmr2 * np.cos(d2) / _MAS, pmd2 / _MAS,
        np.where(has_px, rv2, rv_in)]).ravel()
    return pa.FixedSizeListArray.from_arrays(pa.array(out, type=pa.float64()), 6,
                                             mask=pa.array(~ok))


# --- polygons --------------------------------------------------------------------------
def _polygon_contains(ra: pa.Array, dec: pa.Array, poly: pa.Array) -> pa.Array:
    """Point in spherical polygon, by ray casting in the gnomonic projection centred on
    the polygon's mean vertex (valid for polygons smaller than a hemisphere)."""
    ok = _valid(ra, dec, poly)
    ras, decs = _floats(ra), _floats(dec)
    out = np.zeros(len(ras), dtype=bool)
    polys = poly.to_pylist()
    cache: dict[tuple, tuple] = {}
    for i in np.flatnonzero(ok):
        verts = polys[i]
        key = tuple(verts)
        prepared = cache.get(key)
        if prepared is None:
            prepared = cache[key] = _prepare_polygon(np.asarray(verts, dtype=np.float64))
        out[i] = _inside(prepared, ras[i], decs[i])
    return pa.array(out, mask=~ok)


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def _prepare_polygon(verts: np.ndarray):
    v = _unit(verts[0::2], verts[1::2])
    centre = v.sum(axis=0)
    centre /= np.linalg.norm(centre)
    east = np.cross([0.0, 0.0, 1.0], centre)
    if np.linalg.norm(east) < 1e-12:
        east = np.array([0.0, 1.0, 0.0])
    east /= np.linalg.norm(east)
    north = np.cross(centre, east)
    return centre, east, north, _project(v, centre, east, north)


def _project(v, centre, east, north):
    w = v @ centre
    return np.stack([(v @ east) / w, (v @ north) / w], axis=-1)


def _inside(prepared, ra: float, dec: float) -> bool:
    centre, east, north, xy = prepared
    p = _unit(np.array([ra]), np.array([dec]))
    if float((p @ centre)[0]) <= 0:
        return False
    x, y = _project(p, centre, east, north)[0]
    xs, ys = xy[:, 0], xy[:, 1]
    xs2, ys2 = np.roll(xs, -1), np.roll(ys, -1)
    crosses = (ys > y) != (ys2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = xs + (y - ys) * (xs2 - xs) / (ys2 - ys)
    return bool(np.count_nonzero(crosses & (x < xint)) % 2)


__all__ = ["register_functions", "pc"]
