"""Spherical geometry of regions, in numpy: the one reference for the SQL the translator
writes for geometric predicates, for the HEALPix coverage of constant regions and for
the service functions that test regions held in columns.

Positions are unit vectors. A circle is a cap (centre, radius in degrees). A polygon
has great-circle edges and is the part of the sky its edges enclose that is smaller
than a hemisphere; it is kept counter-clockwise (interior on the left of each edge),
with a centre ``c`` and the gnomonic projection about it (``x = p.e / p.c``,
``y = p.n / p.c``), which maps great circles to straight lines. Every test on a point
``p`` is a sign of a linear form ``p.w`` with constant ``w``, so the translator can
write it as plain SQL arithmetic on ``cos/sin`` of the position and the engine runs it
vectorised:

* convex polygon: ``p.(v_i x v_i+1) >= 0`` for every edge (the hemispheres' intersection
  is the polygon itself when it is smaller than a hemisphere);
* other polygons: ray casting in the projection, each edge's crossing written as
  signs of linear forms (:meth:`Polygon.crossings`), plus ``p.c > 0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Vertices closer than this (radians) count as one.
_SAME = 1e-12
#: A polygon's vertices must all be at least this far (as p.c) in front of its centre.
_FRONT = 1e-9


class RegionError(ValueError):
    """A region cannot be used (degenerate, too large, self-intersecting...); the
    message says what is wrong and what to do."""


def unit(ra: float | np.ndarray, dec: float | np.ndarray) -> np.ndarray:
    """Unit vectors (..., 3) of positions in degrees."""
    r, d = np.radians(np.asarray(ra, dtype=np.float64)), np.radians(
        np.asarray(dec, dtype=np.float64))
    cd = np.cos(d)
    vectors: np.ndarray = np.stack([cd * np.cos(r), cd * np.sin(r), np.sin(d)], axis=-1)
    return vectors


def radec(v: np.ndarray) -> tuple[float, float]:
    """(ra, dec) in degrees of one vector."""
    x, y, z = (float(c) for c in v)
    return math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.atan2(z, math.hypot(x, y)))


def _normalise(v: np.ndarray) -> np.ndarray:
    normalised: np.ndarray = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return normalised


@dataclass(frozen=True)
class Cap:
    """A circle: centre (degrees) and radius (degrees)."""

    ra: float
    dec: float
    radius: float

    @property
    def vector(self) -> np.ndarray:
        return unit(self.ra, self.dec)


@dataclass(frozen=True, eq=False)
class Edge:
    """Coefficient vectors of one edge ``a -> b`` for distance tests (see
    :meth:`Polygon.near`): ``p`` projects inside the arc when ``p.ta >= 0`` and
    ``p.tb >= 0``, and is then ``asin(|p.w|)`` from it."""

    a: np.ndarray
    b: np.ndarray
    w: np.ndarray
    ta: np.ndarray
    tb: np.ndarray


class Polygon:
    """A validated spherical polygon (see :func:`polygon`)."""

    def __init__(self, vertices: np.ndarray, centre: np.ndarray) -> None:
        self.vertices = vertices
        self.centre = centre
        east = np.cross([0.0, 0.0, 1.0], centre)
        if np.linalg.norm(east) < 1e-9:
            east = np.array([0.0, 1.0, 0.0])
        self.east = _normalise(east)
        self.north = np.cross(centre, self.east)
        w = vertices @ centre
        self.xy = np.stack([(vertices @ self.east) / w, (vertices @ self.north) / w], axis=-1)
        nxt = np.roll(vertices, -1, axis=0)
        self.normals = np.cross(vertices, nxt)
        d = np.roll(self.xy, -1, axis=0) - self.xy
        turns = d[:, 0] * np.roll(d, -1, axis=0)[:, 1] - d[:, 1] * np.roll(d, -1, axis=0)[:, 0]
        self.convex = bool(np.all(turns >= 0))

    @property
    def radec(self) -> list[tuple[float, float]]:
        return [radec(v) for v in self.vertices]

    @property
    def radius(self) -> float:
        """Largest angle (degrees) between the centre and a vertex."""
        return math.degrees(math.acos(float(np.clip(np.min(self.vertices @ self.centre),
                                                    -1.0, 1.0))))

    # --- the linear forms the SQL uses -----------------------------------------------
    def halfspaces(self) -> list[np.ndarray]:
        """Convex polygon: ``p`` is inside when ``p.w >= 0`` for every ``w``."""
        return list(self.normals)

    def crossings(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Ray casting: for each edge that is not horizontal in the projection,
        ``(u_i, u_j, l)``: the edge crosses the ray from ``p`` towards +x when
        ``(p.u_i > 0) != (p.u_j > 0)`` and ``p.l < 0``. ``p`` is inside when an odd
        number of edges cross and ``p.c > 0``."""
        c, e, n = self.centre, self.east, self.north
        x, y = self.xy[:, 0], self.xy[:, 1]
        k = len(x)
        out = []
        for i in range(k):
            j = (i + 1) % k
            if y[i] == y[j]:
                continue
            # y_i > Y  <=>  p.(y_i c - n) > 0   (p.c > 0)
            ui, uj = y[i] * c - n, y[j] * c - n
            # X < x at Y on the edge  <=>  p.l < 0, l signed by the edge's direction
            l_ = (y[j] - y[i]) * (e - x[i] * c) - (x[j] - x[i]) * (n - y[i] * c)
            if y[j] < y[i]:
                l_ = -l_
            out.append((ui, uj, l_))
        return out

    def edges(self) -> list[Edge]:
        out = []
        for a, b in zip(self.vertices, np.roll(self.vertices, -1, axis=0), strict=True):
            w = _normalise(np.cross(a, b))
            out.append(Edge(a, b, w, np.cross(w, a), np.cross(b, w)))
        return out

    # --- tests on many points --------------------------------------------------------
    def contains(self, p: np.ndarray) -> np.ndarray:
        """Which of the unit vectors ``p`` (m, 3) are inside (boundary included)."""
        p = np.atleast_2d(p)
        if self.convex:
            within: np.ndarray = np.all(p @ self.normals.T >= 0, axis=1)
            return within
        inside = np.zeros(len(p), dtype=bool)
        for ui, uj, l_ in self.crossings():
            inside ^= ((p @ ui > 0) != (p @ uj > 0)) & (p @ l_ < 0)
        front: np.ndarray = inside & (p @ self.centre > 0)
        return front

    def near(self, p: np.ndarray, radius: np.ndarray | float) -> np.ndarray:
        """Which points are within ``radius`` (degrees) of the boundary."""
        p = np.atleast_2d(p)
        r = np.radians(np.asarray(radius, dtype=np.float64))
        sin_r = np.sin(np.minimum(r, math.pi / 2))
        cos_r = np.cos(r)
        out = np.zeros(len(p), dtype=bool)
        for ed in self.edges():
            out |= ((p @ ed.ta >= 0) & (p @ ed.tb >= 0) & (np.abs(p @ ed.w) <= sin_r)) \
                | (p @ ed.a >= cos_r) | (p @ ed.b >= cos_r)
        return out


def polygon(coords: Sequence[float] | np.ndarray) -> Polygon:
    """A polygon from ``[ra1, dec1, ra2, dec2, ...]`` in degrees (cached).

    Raises
    ------
    RegionError
        Fewer than 3 distinct vertices, a declination outside [-90, 90], a non-finite
        coordinate, an edge between antipodes, a polygon not smaller than a
        hemisphere, edges that cross each other, or no area.
    """
    return _polygon(tuple(float(c) for c in coords))


@lru_cache(maxsize=1024)
def _polygon(coords: tuple[float, ...]) -> Polygon:
    if len(coords) % 2:
        raise RegionError("a POLYGON takes pairs of coordinates (ra1, dec1, ra2, dec2, ...)")
    pairs = np.array(coords, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(pairs)):
        raise RegionError("a POLYGON vertex is not a finite number")
    if np.any(np.abs(pairs[:, 1]) > 90):
        raise RegionError("a POLYGON vertex has a declination outside [-90, 90]")
    v = unit(pairs[:, 0], pairs[:, 1])
    # consecutive repeats (and a closing vertex equal to the first) count once
    keep = [0]
    for i in range(1, len(v)):
        if np.linalg.norm(v[i] - v[keep[-1]]) > _SAME:
            keep.append(i)
    if len(keep) > 1 and np.linalg.norm(v[keep[-1]] - v[keep[0]]) <= _SAME:
        keep.pop()
    v = v[keep]
    if len(v) < 3:
        raise RegionError("a POLYGON needs at least 3 distinct vertices")
    if np.any(np.einsum("ij,ij->i", v, np.roll(v, -1, axis=0)) < -1 + 1e-12):
        raise RegionError("two consecutive POLYGON vertices are antipodal, so the edge "
                          "between them is undefined; add a vertex in between")
    centre = _centre(v)
    if centre is None:
        raise RegionError(
            "the POLYGON is not smaller than a hemisphere; polygons up to a hemisphere are "
            "supported: split a larger region into several polygons joined with OR")
    if np.linalg.svd(v, compute_uv=False)[-1] < 1e-12:
        raise RegionError("the POLYGON has no area (its vertices lie on one great circle)")
    poly = Polygon(v, centre)
    if _self_intersecting(poly.xy):
        raise RegionError("the POLYGON's edges cross each other; give its vertices in order "
                          "along the boundary (a self-intersecting polygon has no inside)")
    x, y = poly.xy[:, 0], poly.xy[:, 1]
    if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) < 0:
        poly = Polygon(v[::-1].copy(), centre)
    return poly


def _centre(v: np.ndarray) -> np.ndarray | None:
    """A direction with every vertex strictly in front of it, or None: the mean, then
    moved towards the vertex that is farthest behind (a few hundred steps at most)."""
    c = v.sum(axis=0)
    norm = np.linalg.norm(c)
    c = c / norm if norm > 1e-12 else v[0].copy()
    step = 0.5
    for _ in range(400):
        dots = v @ c
        worst = int(np.argmin(dots))
        if dots[worst] > _FRONT:
            centre: np.ndarray = c
            return centre
        c = _normalise(c + step * v[worst])
        step *= 0.98
    return None


def _self_intersecting(xy: np.ndarray) -> bool:
    """Whether two edges of a closed polyline meet other than at their shared vertex
    (including an edge folding back over the previous one)."""
    n = len(xy)
    a, b = xy, np.roll(xy, -1, axis=0)
    d = b - a
    # an edge that folds back along the previous one (a spike)
    prev = np.roll(d, 1, axis=0)
    cross = prev[:, 0] * d[:, 1] - prev[:, 1] * d[:, 0]
    scale = np.linalg.norm(prev, axis=1) * np.linalg.norm(d, axis=1)
    if np.any((np.abs(cross) <= 1e-12 * scale) & (np.einsum("ij,ij->i", prev, d) < 0)):
        return True
    if n < 4:
        return False
    i, j = np.triu_indices(n, k=2)
    keep = ~((i == 0) & (j == n - 1))  # the last edge touches the first
    i, j = i[keep], j[keep]

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        turn: np.ndarray = ((q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1])
                            - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0]))
        return turn

    o1, o2 = orient(a[i], b[i], a[j]), orient(a[i], b[i], b[j])
    o3, o4 = orient(a[j], b[j], a[i]), orient(a[j], b[j], b[i])
    proper = (o1 * o2 < 0) & (o3 * o4 < 0)
    if np.any(proper):
        return True

    def on_segment(p: np.ndarray, q: np.ndarray, r: np.ndarray, o: np.ndarray) -> np.ndarray:
        between: np.ndarray = (o == 0) & (np.minimum(p[:, 0], q[:, 0]) <= r[:, 0]) \
            & (r[:, 0] <= np.maximum(p[:, 0], q[:, 0])) \
            & (np.minimum(p[:, 1], q[:, 1]) <= r[:, 1]) & (r[:, 1] <= np.maximum(p[:, 1], q[:, 1]))
        return between

    touching = on_segment(a[i], b[i], a[j], o1) | on_segment(a[i], b[i], b[j], o2) \
        | on_segment(a[j], b[j], a[i], o3) | on_segment(a[j], b[j], b[i], o4)
    return bool(np.any(touching))


@lru_cache(maxsize=256)
def box(ra: float, dec: float, width: float, height: float) -> Polygon:
    """ADQL BOX: centre, full width and height (degrees). Its sides are the great circles
    through the ends of the two arms (along RA and Dec at the centre), at right angles
    to them: in the gnomonic projection about the centre, the rectangle
    ``|x| <= tan(width/2)``, ``|y| <= tan(height/2)``."""
    if not (math.isfinite(width) and math.isfinite(height)) or width <= 0 or height <= 0:
        raise RegionError("a BOX needs a positive width and height")
    if width >= 180 or height >= 180:
        raise RegionError("a BOX must be narrower than 180 degrees in each direction")
    if not -90 <= dec <= 90:
        raise RegionError("the BOX centre has a declination outside [-90, 90]")
    c = unit(ra, dec)
    east = np.cross([0.0, 0.0, 1.0], c)
    if np.linalg.norm(east) < 1e-9:
        east = np.array([0.0, 1.0, 0.0])
    east = _normalise(east)
    north = np.cross(c, east)
    tx, ty = math.tan(math.radians(width / 2)), math.tan(math.radians(height / 2))
    corners = [c + sx * tx * east + sy * ty * north
               for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    coords: list[float] = []
    for corner in corners:
        coords.extend(radec(_normalise(corner)))
    return polygon(coords)


# --- relations between two regions (the reference for every pair) -----------------------
Region = np.ndarray | Cap | Polygon  # a point is a unit vector (3,)


def region_of(values: Sequence[float] | np.ndarray) -> Region:
    """A region from its DALI array: 2 numbers a point, 3 a circle, 6 or more a polygon."""
    n = len(values)
    if n == 2:
        if not -90 <= values[1] <= 90:
            raise RegionError("a POINT has a declination outside [-90, 90]")
        return unit(values[0], values[1])
    if n == 3:
        return Cap(float(values[0]), float(values[1]), float(values[2]))
    return polygon(values)


def contains(a: Region, b: Region) -> bool:
    """ADQL CONTAINS(a, b): ``a`` lies within ``b``."""
    if isinstance(a, np.ndarray):
        if isinstance(b, np.ndarray):
            return bool(a @ b >= 1 - 1e-15)
        if isinstance(b, Cap):
            return _in_cap(a, b)
        return bool(b.contains(a)[0])
    if isinstance(a, Cap):
        if isinstance(b, np.ndarray):
            return a.radius <= 0 and contains(a.vector, b)
        if isinstance(b, Cap):
            return _angle(a.vector, b.vector) + a.radius <= b.radius
        return a.radius < 90 and bool(b.contains(a.vector)[0]) \
            and not bool(b.near(a.vector, a.radius)[0])
    if isinstance(b, np.ndarray):
        return False
    if isinstance(b, Cap):
        if b.radius >= 180:
            return True
        if b.radius <= 90:
            return bool(np.all(a.vertices @ b.vector >= math.cos(math.radians(b.radius))))
        ra, dec = radec(-b.vector)
        return not intersects(Cap(ra, dec, 180 - b.radius), a)
    return bool(np.all(b.contains(a.vertices))) and not _edges_cross(a, b)


def intersects(a: Region, b: Region) -> bool:
    """ADQL INTERSECTS(a, b)."""
    if isinstance(a, np.ndarray):
        return contains(a, b)
    if isinstance(b, np.ndarray):
        return contains(b, a)
    if isinstance(a, Cap) and isinstance(b, Cap):
        return _angle(a.vector, b.vector) <= a.radius + b.radius
    if isinstance(a, Cap) or isinstance(b, Cap):
        cap, poly = (a, b) if isinstance(a, Cap) else (b, a)
        assert isinstance(cap, Cap) and isinstance(poly, Polygon)
        v = cap.vector
        return bool(poly.contains(v)[0]) or bool(poly.near(v, cap.radius)[0])
    assert isinstance(a, Polygon) and isinstance(b, Polygon)
    return bool(np.any(b.contains(a.vertices))) or bool(np.any(a.contains(b.vertices))) \
        or _edges_cross(a, b)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.atan2(float(np.linalg.norm(np.cross(a, b))), float(a @ b)))


def _in_cap(p: np.ndarray, cap: Cap) -> bool:
    return _angle(p, cap.vector) <= cap.radius


def _edges_cross(a: Polygon, b: Polygon) -> bool:
    """Whether an edge of ``a`` crosses an edge of ``b`` (interiors of both arcs)."""
    a1, a2 = a.vertices, np.roll(a.vertices, -1, axis=0)
    b1, b2 = b.vertices, np.roll(b.vertices, -1, axis=0)
    wa, wb = np.cross(a1, a2), np.cross(b1, b2)
    # every pair (i, j): the two great circles meet at +-t
    t = np.cross(wa[:, None, :], wb[None, :, :])
    norm = np.linalg.norm(t, axis=-1)
    ok = norm > 1e-15
    t = t / np.where(ok, norm, 1.0)[..., None]

    def on(q: np.ndarray, p1: np.ndarray, p2: np.ndarray, w: np.ndarray) -> np.ndarray:
        # q strictly inside the minor arc p1 -> p2 of normal w
        inside: np.ndarray = (np.einsum("...k,...k->...", np.cross(p1, q), w) > 0) & \
            (np.einsum("...k,...k->...", np.cross(q, p2), w) > 0)
        return inside

    hit = np.zeros(norm.shape, dtype=bool)
    for q in (t, -t):
        hit |= on(q, a1[:, None, :], a2[:, None, :], wa[:, None, :]) \
            & on(q, b1[None, :, :], b2[None, :, :], wb[None, :, :])
    return bool(np.any(hit & ok))
