"""Backend implementations of ADQL user-defined functions (see ``taphouse.adql.udf``).

All are vectorised Arrow UDFs: DuckDB hands over a batch (2048 rows) at a time and the
work is done by numpy, cdshealpix and ERFA, so they stay fast on millions of rows.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MAX_DEPTH = 29


@dataclass(frozen=True)
class ServiceFunction:
    """A function the translated SQL may call, which every backend must provide with
    the same answers (DuckDB: the Arrow UDF ``impl``; PostgreSQL: the PL/pgSQL function
    of the same name in ``postgres_functions.sql``).

    ``params`` and ``returns`` are DuckDB type names; with ``sees_nulls`` the function
    is called for rows with NULL arguments too (a missing parallax means 0)."""

    name: str
    params: tuple[str, ...]
    returns: str
    description: str
    impl: Callable[..., pa.Array] = field(repr=False, compare=False)
    sees_nulls: bool = False


def service_functions() -> tuple[ServiceFunction, ...]:
    """The one registry of service functions (what a backend must implement)."""
    return (
        # NULL for a position that has no cell (NaN, |dec| > 90) or an order outside
        # 0..29: with DuckDB's default null handling such a NULL was an error that failed
        # the whole query (an uploaded row with NaN failed every crossmatch with it).
        ServiceFunction("ivo_healpix_index", ("INTEGER", "DOUBLE", "DOUBLE"), "BIGINT",
                        "nested HEALPix index of a position at an order",
                        _healpix_index, sees_nulls=True),
        ServiceFunction("taphouse_healpix_neighbours", ("INTEGER", "DOUBLE", "DOUBLE"),
                        "BIGINT[]", "the cell of a position and its neighbours",
                        _healpix_neighbours, sees_nulls=True),
        ServiceFunction("ivo_hasword", ("VARCHAR", "VARCHAR"), "INTEGER",
                        "1 if the second text is a word of the first (case-insensitive)",
                        _hasword),
        ServiceFunction("ivo_epoch_prop_pos", ("DOUBLE",) * 8, "DOUBLE[2]",
                        "a position propagated to another epoch", _epoch_prop_pos,
                        sees_nulls=True),
        ServiceFunction("epoch_prop", ("DOUBLE",) * 8, "DOUBLE[6]",
                        "the six astrometric parameters propagated to another epoch",
                        _epoch_prop, sees_nulls=True),
        ServiceFunction("taphouse_contains", ("DOUBLE[]", "DOUBLE[]"), "BOOLEAN",
                        "whether the first geometry (DALI array) lies in the second",
                        _contains, sees_nulls=True),
        ServiceFunction("taphouse_intersects", ("DOUBLE[]", "DOUBLE[]"), "BOOLEAN",
                        "whether two geometries (DALI arrays) overlap", _intersects,
                        sees_nulls=True),
    )


def register_functions(con: Any) -> None:
    """Register the service functions on a DuckDB connection."""
    for f in service_functions():
        con.create_function(f.name, f.impl, list(f.params), f.returns, type="arrow",
                            null_handling="special" if f.sees_nulls else "default",
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


def _cells(depth: np.ndarray, ra: np.ndarray, dec: np.ndarray, ok: np.ndarray,
           threads: int = 1) -> np.ndarray:
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    ok &= (np.abs(dec) <= 90.0) & np.isfinite(ra) & (depth >= 0) & (depth <= _MAX_DEPTH)
    out = np.zeros(len(ra), dtype=np.int64)
    for d in np.unique(depth[ok]):
        sel = ok & (depth == d)
        out[sel] = nested.lonlat_to_healpix(
            Longitude(np.mod(ra[sel], 360.0) * u.deg), Latitude(dec[sel] * u.deg), int(d),
            num_threads=threads).astype(np.int64)
    return out


def _healpix_index(depth: pa.Array, ra: pa.Array, dec: pa.Array) -> pa.Array:
    ok = _valid(depth, ra, dec)
    d = np.asarray(depth.fill_null(0), dtype=np.int64)
    cells = _cells(d, _floats(ra), _floats(dec), ok)
    return pa.array(cells, type=pa.int64(), mask=~ok)


def healpix_index_array(depth: int, ra: pa.Array, dec: pa.Array,
                        threads: int = 1) -> pa.Array:
    """``ivo_healpix_index(depth, ra, dec)`` over Arrow arrays of degrees, as the
    backends compute it (NULL where a position is missing or invalid); ``threads``:
    cdshealpix's threads (a DuckDB query parallelises the function itself)."""
    d = pa.array(np.full(len(ra), depth, dtype=np.int64))
    ok = _valid(d, ra, dec)
    cells = _cells(np.asarray(d, dtype=np.int64), _floats(ra), _floats(dec), ok, threads)
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


#: The 3x3 block of cells of positions (``taphouse_healpix_neighbours`` on Arrow arrays:
#: what a backend computing it outside SQL calls, for the same cells as DuckDB's).
healpix_neighbours = _healpix_neighbours


# --- text ------------------------------------------------------------------------------
_WORD = re.compile(r"[^\W_]+")


def _hasword(haystack: pa.Array, needle: pa.Array) -> pa.Array:
    out: list[int | None] = []
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


def _epoch_prop_pos(ra: pa.Array, dec: pa.Array, parallax: pa.Array, pmra: pa.Array,
                    pmdec: pa.Array, rv: pa.Array, ref_epoch: pa.Array,
                    out_epoch: pa.Array) -> pa.Array:
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


def _epoch_prop(ra: pa.Array, dec: pa.Array, parallax: pa.Array, pmra: pa.Array,
                pmdec: pa.Array, rv: pa.Array, ref_epoch: pa.Array,
                out_epoch: pa.Array) -> pa.Array:
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


# --- regions held in columns -----------------------------------------------------------
# CONTAINS / INTERSECTS where a polygon is not constant (the translator writes constant
# regions as SQL arithmetic). Regions are DALI arrays: 2 numbers a point, 3 a circle, 6
# or more a polygon. Rows are grouped by region, so each distinct region is prepared
# once and tested against all its points at once (a table of footprints joined with
# a catalogue); only pairs of two non-point regions are decided pair by pair.
def _contains(a: pa.Array, b: pa.Array) -> pa.Array:
    return _relation(a, b, "contains")


def _intersects(a: pa.Array, b: pa.Array) -> pa.Array:
    return _relation(a, b, "intersects")


def _lists(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row starts, lengths and the flat float64 values of a list array (null elements
    become NaN; null rows are masked by the caller)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.list_(pa.float64()):
        arr = arr.cast(pa.list_(pa.float64()))
    offs = np.asarray(arr.offsets, dtype=np.int64)
    base = int(offs[0])
    flat = arr.values.slice(base, int(offs[-1]) - base)
    values = np.asarray(flat.fill_null(float("nan")) if flat.null_count else flat,
                        dtype=np.float64)
    return offs[:-1] - base, np.diff(offs), values


def _has_nan(starts: np.ndarray, lengths: np.ndarray, values: np.ndarray) -> np.ndarray:
    counts = np.concatenate([[0], np.cumsum(np.isnan(values))])
    has: np.ndarray = counts[starts + lengths] > counts[starts]
    return has


def _keys(starts: np.ndarray, lengths: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A small integer per row, equal for rows holding equal arrays."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    bounds = np.append(starts, starts[-1] + lengths[-1]) * 8
    binary = pa.Array.from_buffers(pa.large_binary(), len(starts), [
        None, pa.py_buffer(bounds.astype(np.int64)),
        pa.py_buffer(np.ascontiguousarray(values).view(np.uint8))])
    return np.asarray(pc.dictionary_encode(binary).indices, dtype=np.int64)


def _relation(a: pa.Array, b: pa.Array, op: str) -> pa.Array:
    from taphouse.adql import sphere

    ok = _valid(a, b)
    out = np.zeros(len(a), dtype=bool)
    if not ok.any():
        return pa.array(out, mask=~ok)
    oa, la, va = _lists(a)
    ob, lb, vb = _lists(b)
    ok &= ~_has_nan(oa, la, va) & ~_has_nan(ob, lb, vb)  # a NULL coordinate
    ka, kb = _keys(oa, la, va), _keys(ob, lb, vb)
    test = sphere.contains if op == "contains" else sphere.intersects

    def region(offsets: np.ndarray, lengths: np.ndarray, values: np.ndarray,
               row: int) -> sphere.Region:
        start = offsets[row]
        return sphere.region_of(values[start:start + lengths[row]])

    def points(offsets: np.ndarray, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        start = offsets[rows]
        return sphere.unit(values[start], values[start + 1])

    try:
        # a point against a region: one pass per distinct region
        for swapped in (False, True):
            if op == "contains" and swapped:
                continue  # a region inside a point: decided pair by pair below
            p_off, p_len, p_val = (oa, la, va) if not swapped else (ob, lb, vb)
            r_off, r_len, r_val, r_key = (ob, lb, vb, kb) if not swapped else (oa, la, va, ka)
            rows = np.flatnonzero(ok & (p_len == 2) & (r_len != 2))
            for key in np.unique(r_key[rows]):
                sel = rows[r_key[rows] == key]
                reg = region(r_off, r_len, r_val, sel[0])
                pts = points(p_off, p_val, sel)
                if isinstance(reg, sphere.Polygon):
                    out[sel] = reg.contains(pts)
                else:
                    assert isinstance(reg, sphere.Cap)  # 3 numbers (not 2: not a point)
                    cos_r = np.cos(np.radians(reg.radius))
                    out[sel] = pts @ reg.vector >= cos_r if reg.radius < 180 else True
        handled = (la == 2) & (lb != 2)
        if op == "intersects":
            handled |= (lb == 2) & (la != 2)
        rest = np.flatnonzero(ok & ~handled)
        pairs = (np.unique(np.stack([ka[rest], kb[rest]], axis=1), axis=0) if len(rest)
                 else np.zeros((0, 2), dtype=np.int64))
        for key_a, key_b in pairs:
            sel = rest[(ka[rest] == key_a) & (kb[rest] == key_b)]
            out[sel] = test(region(oa, la, va, sel[0]), region(ob, lb, vb, sel[0]))
    except sphere.RegionError as e:
        raise ValueError(f"a region in the data cannot be used: {e}") from None
    return pa.array(out, mask=~ok)


__all__ = ["register_functions", "pc"]
