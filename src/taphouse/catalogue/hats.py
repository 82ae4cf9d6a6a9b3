"""Catalogue versions in the HATS layout: HEALPix-partitioned Parquet with a margin cache.

A partitioned table version is a directory (``v<time>_<hex>.hats``) holding a HATS
*collection* that LSDB and the ``hats`` package open as they are::

    v1700000000_0123456789ab.hats/
        collection.properties         primary catalogue "catalog", default margin
        catalog/
            properties, hats.properties, partition_info.csv
            dataset/_metadata, dataset/_common_metadata
            dataset/Norder=K/Dir=D/Npix=N.parquet     (Dir = 10000 * (N // 10000))
        margin_10arcs/                 same layout; dataproduct_type=margin
        catalog.duckdb                 only with --duckdb-copy: the same rows, one file

Partitions are adaptive: a HEALPix cell is split into its four children while it holds
more than ``max_rows`` rows and is shallower than ``highest_order``. Rows in each file
are sorted by ``_healpix_29`` (the nested order-29 index every positioned table has),
in row groups of :data:`ROW_GROUP_ROWS` (Snappy: decoding a row group for a
cone is ~15 % faster than with zstd), so a range filter on it skips row groups by
their statistics. Rows without a position (NULL index) go to the first partition.

The *margin* of a partition holds the rows of the other partitions that lie within
``margin_arcsec`` of it (exactly, to :data:`MARGIN_TOLERANCE_ARCSEC`: the rows of the
ring of cells of order :func:`margin_order` around it, filtered by their distance to the
partition's edges), so a crossmatch of radius up to the threshold can be done
partition by partition. The threshold may be at most the size of a cell of the
deepest partition order (:func:`max_margin_arcsec`).

Reading (:func:`duckdb_view_sql`, :func:`partition_files`): the engine exposes a version
as a view over its partition files; a cone or polygon, whose HEALPix coverage is a list
of index ranges, reads only the files of the partitions those ranges touch (the
spatial rewrite names them in a ``read_parquet`` of its own). A crossmatch with positions
known when the query is translated (an uploaded table) reads only the partitions holding
them and those partitions' margins (:func:`crossmatch_plan`).

A *DuckDB copy* (``taphouse ingest --partitioned --duckdb-copy``, :data:`DUCKDB_COPY`)
is the sorted single file the ingest writes first anyway, kept in the version directory
(about twice the disk): DuckDB then reads that file for everything (cones cost what they
cost on a single-file table: opening a Parquet partition and decoding its row group costs
~1.3 ms more per cone), while HATS readers, LSDB and Spark read the Parquet partitions.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from taphouse.catalogue.model import HEALPIX_COLUMN, HEALPIX_ORDER, CatalogueError

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

#: Suffix of a version directory in the HATS layout.
VERSION_SUFFIX = ".hats"
#: The collection's primary catalogue directory.
CATALOG_DIR = "catalog"
#: The optional DuckDB copy of a version's rows (table ``data``), at the collection's root.
DUCKDB_COPY = "catalog.duckdb"
#: Rows per Parquet row group. Parquet has no finer skipping than the row group (DuckDB
#: files have zone maps per 2,048-row vector), so groups are smaller than DuckDB's
#: 122,880 rows: a cone reads a few thousand rows, not a hundred thousand.
ROW_GROUP_ROWS = 16_384
#: Default most rows per partition (what hats-import uses).
DEFAULT_MAX_ROWS = 1_000_000
#: Default deepest partition order (cells of 3.4 arcmin).
DEFAULT_HIGHEST_ORDER = 10
#: Default margin threshold, arcseconds.
DEFAULT_MARGIN_ARCSEC = 10.0
#: A margin row lies at most this much beyond the threshold (the partition's edges are
#: taken as great-circle arcs of <= 30 arcsec; measured error < 0.006 arcsec).
MARGIN_TOLERANCE_ARCSEC = 0.01
#: Margin rows whose distance is computed at once (bounds the filter's memory).
MARGIN_CHUNK = 20_000
#: Column names HATS reserves (the layout's directory keys).
RESERVED_COLUMNS = ("norder", "dir", "npix")


@dataclass(frozen=True)
class PartitionOptions:
    """How ``taphouse ingest --partitioned`` partitions a table."""

    max_rows: int = DEFAULT_MAX_ROWS
    highest_order: int = DEFAULT_HIGHEST_ORDER
    margin_arcsec: float = DEFAULT_MARGIN_ARCSEC
    #: Keep a DuckDB copy of the rows in the version for DuckDB's reads (2x the disk).
    duckdb_copy: bool = False

    def check(self) -> None:
        if self.max_rows < 1:
            raise CatalogueError("--partition-rows must be at least 1")
        if not 0 <= self.highest_order <= 19:
            raise CatalogueError("--highest-order must be between 0 and 19")
        limit = max_margin_arcsec(self.highest_order)
        if not 0 < self.margin_arcsec <= limit:
            raise CatalogueError(
                f"--margin must be more than 0 and at most {limit:.1f} arcsec (the size of"
                f" a cell of the deepest partition order {self.highest_order}); give a"
                " smaller margin or a lower --highest-order")


def cell_size_arcsec(order: int) -> float:
    """Square root of the area of a HEALPix cell of ``order``, arcseconds."""
    return math.degrees(math.sqrt(4 * math.pi / (12 * 4**order))) * 3600.0


def max_margin_arcsec(highest_order: int) -> float:
    """Largest margin threshold for partitions down to ``highest_order``."""
    return cell_size_arcsec(highest_order) / 2


def margin_order(margin_arcsec: float, highest_order: int) -> int:
    """Order of the cells that make up margins: the deepest whose cells are at least
    twice the threshold wide (so the ring of cells around a partition holds every row
    within the threshold, whatever the cells' shapes), and not above ``highest_order``."""
    order = highest_order
    while order < HEALPIX_ORDER and cell_size_arcsec(order + 1) >= 2 * margin_arcsec:
        order += 1
    return order


def pixel_range(order: int, pixel: int) -> tuple[int, int]:
    """Inclusive range of ``_healpix_29`` values inside a cell."""
    shift = 2 * (HEALPIX_ORDER - order)
    return pixel << shift, ((pixel + 1) << shift) - 1


def partition_path(order: int, pixel: int) -> str:
    """A partition's file, relative to the catalogue's ``dataset/`` directory."""
    return f"Norder={order}/Dir={pixel // 10000 * 10000}/Npix={pixel}.parquet"


def alignment(pixels: np.ndarray, counts: np.ndarray, histogram_order: int,
              max_rows: int) -> list[tuple[int, int, int]]:
    """Adaptive partitions of a histogram: ``(order, pixel, rows)`` of each.

    ``pixels`` are the non-empty cells of ``histogram_order`` (sorted), ``counts`` their
    rows. A cell is split into its children while it holds more than ``max_rows`` rows
    and is shallower than ``histogram_order``.
    """
    pixels = np.asarray(pixels, dtype=np.int64)
    cumulative = np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))])
    out: list[tuple[int, int, int]] = []
    stack = [(0, p) for p in range(11, -1, -1)]
    while stack:
        order, pixel = stack.pop()
        shift = 2 * (histogram_order - order)
        lo = int(np.searchsorted(pixels, pixel << shift, side="left"))
        hi = int(np.searchsorted(pixels, (pixel + 1) << shift, side="left"))
        rows = int(cumulative[hi] - cumulative[lo])
        if rows == 0:
            continue
        if rows > max_rows and order < histogram_order:
            stack.extend((order + 1, 4 * pixel + k) for k in range(3, -1, -1))
        else:
            out.append((order, pixel, rows))
    return out


# --- writing --------------------------------------------------------------------------
def write_collection(staged: Path, out: Path, *, name: str, ra: str, dec: str,
                     options: PartitionOptions, memory_limit: str = "1GB",
                     work_dir: Path | None = None, progress: bool = False) -> int:
    """Write the HATS collection of a sorted staged version file.

    Parameters
    ----------
    staged
        A DuckDB file with table ``data`` sorted by ``_healpix_29`` (what a single-file
        ingest writes).
    out
        The version directory to create (must not exist).
    name
        The collection's name (``database.table``).
    ra, dec
        Position columns.
    options
        Partition sizes and the margin threshold.

    Returns the number of partitions.
    """
    import duckdb
    from tqdm import tqdm

    options.check()
    out.mkdir(mode=0o700)
    catalog = out / CATALOG_DIR
    margin_name = f"margin_{options.margin_arcsec:g}arcs".replace(".", "_")
    margin = out / margin_name
    config: dict[str, str | bool | int | float | list[str]] = {
        "threads": max(1, min(4, os.cpu_count() or 1)), "memory_limit": memory_limit,
        "preserve_insertion_order": True, "autoinstall_known_extensions": False,
        "autoload_known_extensions": False}
    if work_dir is not None:
        config["temp_directory"] = str(Path(work_dir) / "spill")
    con = duckdb.connect(":memory:", config=config)
    try:
        con.execute(f"ATTACH '{_sql_str(str(staged))}' AS staged (READ_ONLY)")
        src = "staged.main.data"
        counted = con.execute(f"SELECT count(*) FROM {src}").fetchone()
        assert counted is not None
        nrows = counted[0]
        order = options.highest_order
        shift = 2 * (HEALPIX_ORDER - order)
        hist = con.execute(
            f'SELECT "{HEALPIX_COLUMN}" >> {shift} AS p, count(*) FROM {src}'
            f' WHERE "{HEALPIX_COLUMN}" IS NOT NULL GROUP BY p ORDER BY p').fetchnumpy()
        parts = alignment(hist["p"], hist["count_star()"], order, options.max_rows)
        if not parts:  # no row has a position: one partition holds them all
            parts = [(0, 0, nrows)]
        bar = tqdm(total=len(parts), unit="partitions", disable=not progress,
                   desc="writing partitions", file=sys.stderr)
        dataset = catalog / "dataset"
        _copy(con, f"SELECT * FROM {src} WHERE false", dataset / "_common_metadata")
        for i, (k, n, _) in enumerate(parts):
            lo, hi = pixel_range(k, n)
            cond = f'"{HEALPIX_COLUMN}" BETWEEN {lo} AND {hi}'
            if i == 0:
                cond += f' OR "{HEALPIX_COLUMN}" IS NULL'
            _copy(con, f"SELECT * FROM {src} WHERE {cond}", dataset / partition_path(k, n))
            bar.update(1)
        bar.close()
        counts = _finish_catalog(catalog, [(k, n) for k, n, _ in parts], name=name,
                                 ra=ra, dec=dec, kind="object", max_rows=options.max_rows)
        if counts != nrows:
            raise CatalogueError(f"internal error: partitions hold {counts} of {nrows} rows")
        if progress:
            print(f"writing the {options.margin_arcsec:g} arcsec margin ...",
                  file=sys.stderr, flush=True)
        _write_margin(con, src, parts, margin, options, ra, dec)
        _finish_catalog(margin, _written(margin / "dataset"), name=f"{name} margin",
                        ra=ra, dec=dec, kind="margin", max_rows=None,
                        extra={"hats_primary_table_url": CATALOG_DIR,
                               "hats_margin_threshold": f"{options.margin_arcsec:g}"})
    finally:
        con.close()
    _write_properties(out / "collection.properties", {
        "obs_collection": name, "hats_primary_table_url": CATALOG_DIR,
        "all_margins": margin_name, "default_margin": margin_name})
    return len(parts)


def _copy(con: DuckDBPyConnection, query: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    con.execute(f'COPY ({query} ORDER BY "{HEALPIX_COLUMN}") TO'
                f" '{_sql_str(str(target))}' (FORMAT parquet, COMPRESSION snappy,"
                f" ROW_GROUP_SIZE {ROW_GROUP_ROWS})")


def _write_margin(con: DuckDBPyConnection, src: str, parts: list[tuple[int, int, int]], margin: Path,
                  options: PartitionOptions, ra: str, dec: str) -> None:
    """Each partition's margin: the rows outside it within the threshold of it (those of
    the cells of the margin order that touch it, see :func:`margin_order`, filtered by
    their distance to its edges)."""
    import pyarrow as pa
    from cdshealpix.nested import external_neighbours

    m = margin_order(options.margin_arcsec, options.highest_order)
    cells: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for i, (k, n, _) in enumerate(parts):
        border, corners = external_neighbours(np.array([n], dtype=np.uint64), k, m - k)
        ring = np.concatenate([np.ravel(border), np.ravel(corners)]).astype(np.int64)
        ring = _distinct(ring[ring >= 0])
        cells.append(ring)
        owners.append(np.full(len(ring), i, dtype=np.int32))
    ring_table = pa.table({"cell": np.concatenate(cells), "part": np.concatenate(owners)})
    con.register("margin_ring", ring_table)
    shift = 2 * (HEALPIX_ORDER - m)
    con.execute("CREATE TEMP TABLE margin_rows AS SELECT d.*, r.part AS _th_part"
                f' FROM {src} d JOIN margin_ring r ON d."{HEALPIX_COLUMN}" >> {shift}'
                " = r.cell")
    con.unregister("margin_ring")
    _drop_far_margin_rows(con, parts, m, options.margin_arcsec, ra, dec)
    _copy(con, "SELECT * EXCLUDE (_th_part) FROM margin_rows WHERE false",
          margin / "dataset" / "_common_metadata")
    present = {int(p) for (p,) in con.execute(
        "SELECT DISTINCT _th_part FROM margin_rows").fetchall()}
    for i, (k, n, _) in enumerate(parts):
        if i in present:
            _copy(con, f"SELECT * EXCLUDE (_th_part) FROM margin_rows WHERE _th_part = {i}",
                  margin / "dataset" / partition_path(k, n))
    (margin / "dataset").mkdir(parents=True, exist_ok=True, mode=0o700)
    con.execute("DROP TABLE margin_rows")


def _drop_far_margin_rows(con: DuckDBPyConnection, parts: list[tuple[int, int, int]],
                          order: int, margin_arcsec: float, ra: str, dec: str) -> None:
    """Keep in ``margin_rows`` only the rows within the threshold of their partition."""
    import pyarrow as pa

    shift = 2 * (HEALPIX_ORDER - order)
    got = con.execute(f'SELECT rowid AS r, {_ident(ra)} AS ra, {_ident(dec)} AS dec,'
                      f' "{HEALPIX_COLUMN}" >> {shift} AS cell, _th_part AS part'
                      " FROM margin_rows").fetchnumpy()
    if len(got["r"]) == 0:
        return
    part = np.asarray(got["part"], dtype=np.int64)
    orders = np.array([k for k, _, _ in parts], dtype=np.int64)[part]
    pixels = np.array([n for _, n, _ in parts], dtype=np.int64)[part]
    keep = margin_keep(np.asarray(got["ra"], dtype=np.float64),
                       np.asarray(got["dec"], dtype=np.float64),
                       np.asarray(got["cell"], dtype=np.int64), orders, pixels, order,
                       margin_arcsec)
    con.register("margin_far", pa.table({"r": np.asarray(got["r"])[~keep]}))
    con.execute("DELETE FROM margin_rows WHERE rowid IN (SELECT r FROM margin_far)")
    con.unregister("margin_far")


def _unit(lon_deg: np.ndarray, lat_deg: np.ndarray) -> tuple[np.ndarray, ...]:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    c = np.cos(lat)
    return c * np.cos(lon), c * np.sin(lon), np.sin(lat)


def _distance_to_cells(x: tuple[np.ndarray, ...], cells: np.ndarray, order: int,
                       step: int) -> np.ndarray:
    """Angular distance (radians) from each point ``x`` (unit vector components) outside
    its HEALPix cell ``cells[i]`` of ``order`` to that cell: the least distance to the
    cell's edges, each taken as ``step`` great-circle arcs."""
    from cdshealpix.nested import vertices

    lon, lat = vertices(cells.astype(np.uint64), order, step=step)
    a = _unit(np.asarray(lon.deg), np.asarray(lat.deg))  # each (N, 4 step)
    b = tuple(np.roll(c, -1, axis=1) for c in a)
    px, py, pz = (c[:, None] for c in x)
    # the normal of each arc's great circle
    nx, ny, nz = a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]
    norm = np.sqrt(nx * nx + ny * ny + nz * nz)
    nx, ny, nz = nx / norm, ny / norm, nz / norm
    s = px * nx + py * ny + pz * nz
    qx, qy, qz = px - s * nx, py - s * ny, pz - s * nz  # the point projected on the circle
    # the projection lies between the arc's ends: (a x q) . n >= 0 and (q x b) . n >= 0
    between = (((a[1] * qz - a[2] * qy) * nx + (a[2] * qx - a[0] * qz) * ny
                + (a[0] * qy - a[1] * qx) * nz) >= 0) & \
              (((qy * b[2] - qz * b[1]) * nx + (qz * b[0] - qx * b[2]) * ny
                + (qx * b[1] - qy * b[0]) * nz) >= 0)
    ends = np.minimum((px - a[0]) ** 2 + (py - a[1]) ** 2 + (pz - a[2]) ** 2,
                      (px - b[0]) ** 2 + (py - b[1]) ** 2 + (pz - b[2]) ** 2)
    ends = 2 * np.arcsin(np.clip(np.sqrt(ends) / 2, 0, 1))  # chord -> angle
    nearest: np.ndarray = np.where(between, np.arcsin(np.clip(np.abs(s), 0, 1)),
                                   ends).min(axis=1)
    return nearest


def margin_keep(ra: np.ndarray, dec: np.ndarray, cells: np.ndarray, part_order: np.ndarray,
                part_pixel: np.ndarray, order: int, margin_arcsec: float) -> np.ndarray:
    """Which rows lie within ``margin_arcsec`` of their partition (``part_order``,
    ``part_pixel``): rows outside it, in cells of the margin ``order`` (``cells``) that
    touch it. The nearest point of the partition lies in one of its cells of that order
    around the row's cell (see :func:`margin_order`), so the distance to those cells is
    the distance to the partition."""
    from cdshealpix.nested import neighbours

    keep = np.zeros(len(ra), dtype=bool)
    step = max(1, math.ceil(cell_size_arcsec(order) / 30.0))  # arcs of <= ~30 arcsec
    limit = math.radians((margin_arcsec + MARGIN_TOLERANCE_ARCSEC) / 3600.0)
    shift = 2 * (order - np.asarray(part_order, dtype=np.int64))
    pixel = np.asarray(part_pixel, dtype=np.int64)
    for lo in range(0, len(ra), MARGIN_CHUNK):
        sl = slice(lo, lo + MARGIN_CHUNK)
        around = np.asarray(neighbours(cells[sl].astype(np.uint64), order), dtype=np.int64)
        inside = (around >= 0) & ((around >> shift[sl][:, None]) == pixel[sl][:, None])
        rows, cols = np.nonzero(inside)
        x = _unit(ra[sl][rows], dec[sl][rows])
        d = _distance_to_cells(x, around[rows, cols], order, step)
        best = np.full(len(around), np.inf)
        np.minimum.at(best, rows, d)
        keep[sl] = best <= limit
    return keep


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _written(dataset: Path) -> list[tuple[int, int]]:
    found = []
    for path in dataset.glob("Norder=*/Dir=*/Npix=*.parquet"):
        order = int(path.parent.parent.name.split("=")[1])
        found.append((order, int(path.name.split("=")[1].split(".")[0])))
    return sorted(found, key=lambda p: pixel_range(*p))


def _finish_catalog(catalog: Path, parts: list[tuple[int, int]], *, name: str, ra: str,
                    dec: str, kind: str, max_rows: int | None,
                    extra: dict[str, str] | None = None) -> int:
    """Write a catalogue's ``partition_info.csv``, ``dataset/_metadata`` and
    ``properties`` (``dataset/_common_metadata``, the schema alone, is written by DuckDB
    with the partitions); returns its rows."""
    import pyarrow.parquet as pq

    dataset = catalog / "dataset"
    dataset.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(catalog / "partition_info.csv", "w", encoding="ascii") as f:
        f.write("Norder,Npix\n")
        for k, n in parts:
            f.write(f"{k},{n}\n")
    combined = None
    rows = 0
    nbytes = 0
    for k, n in parts:
        rel = partition_path(k, n)
        md = pq.read_metadata(dataset / rel)
        md.set_file_path(rel)
        if combined is None:
            combined = md
        else:
            combined.append_row_groups(md)
        rows += md.num_rows
        nbytes += (dataset / rel).stat().st_size
    if combined is not None:
        combined.write_metadata_file(str(dataset / "_metadata"))
    orders = [k for k, _ in parts]
    props = {
        "obs_collection": name, "dataproduct_type": kind, "hats_nrows": str(rows),
        "hats_col_ra": ra, "hats_col_dec": dec, "hats_col_healpix": HEALPIX_COLUMN,
        "hats_col_healpix_order": str(HEALPIX_ORDER), "hats_npix_suffix": ".parquet",
        **({"hats_max_rows": str(max_rows)} if max_rows is not None else {}),
        **(extra or {}),
        "hats_order": str(max(orders) if orders else 0),
        "moc_sky_fraction": f"{sum(4.0**-k for k in orders) / 12:.5f}",
        "hats_builder": "taphouse",
        "hats_creation_date": time.strftime("%Y-%m-%dT%H:%M%Z", time.gmtime()),
        "hats_estsize": str(nbytes // 1024),
        "hats_version": "v0.1",
    }
    _write_properties(catalog / "properties", props)
    _write_properties(catalog / "hats.properties", props)
    return rows


def _write_properties(path: Path, values: dict[str, str]) -> None:
    # Java-style properties: one key=value a line; values here are plain text.
    lines = ["#HATS catalog (written by taphouse)"]
    for key, value in values.items():
        text = str(value).replace("\\", "\\\\").replace("\n", " ")
        lines.append(f"{key}={text}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- reading --------------------------------------------------------------------------
@dataclass(frozen=True)
class Partitions:
    """The partitions of a version: sorted ``_healpix_29`` ranges and their files."""

    lows: np.ndarray
    highs: np.ndarray
    files: tuple[str, ...]  # absolute paths, same order


@functools.lru_cache(maxsize=256)
def partitions(version_dir: Path) -> Partitions:
    """The partitions of a version directory, from its ``partition_info.csv`` (read once:
    a version never changes)."""
    catalog = Path(version_dir) / CATALOG_DIR
    try:
        text = (catalog / "partition_info.csv").read_text(encoding="ascii")
    except OSError as exc:
        raise CatalogueError(f"{version_dir}: not a partitioned table version:"
                             f" {exc.strerror}") from None
    parts = []
    for line in text.splitlines()[1:]:
        if line.strip():
            k, n = (int(x) for x in line.split(",")[:2])
            parts.append((k, n))
    parts.sort(key=lambda p: pixel_range(*p))
    ranges = [pixel_range(k, n) for k, n in parts]
    dataset = catalog / "dataset"
    return Partitions(np.array([r[0] for r in ranges], dtype=np.int64),
                      np.array([r[1] for r in ranges], dtype=np.int64),
                      tuple(str(dataset / partition_path(k, n)) for k, n in parts))


def partition_files(version_dir: Path, ranges: Iterable[Sequence[int]]) -> list[str]:
    """The files of the partitions of ``version_dir`` that hold rows whose
    ``_healpix_29`` lies in one of the inclusive ``ranges``; never empty (with no such
    partition, the first file, which a range filter then reads nothing from)."""
    parts = partitions(Path(version_dir))
    chosen: set[int] = set()
    for lo, hi in ranges:
        # partitions are disjoint and sorted: those with low <= hi and high >= lo
        first = int(np.searchsorted(parts.highs, lo, side="left"))
        last = int(np.searchsorted(parts.lows, hi, side="right"))
        chosen.update(range(first, last))
    if not chosen:
        return [parts.files[0]]
    return [parts.files[i] for i in sorted(chosen)]


@functools.lru_cache(maxsize=256)
def duckdb_copy(version_dir: Path) -> Path | None:
    """The version's DuckDB copy (:data:`DUCKDB_COPY`), or None (looked up once: a
    version never changes). A symbolic link is never followed: not a copy."""
    path = Path(version_dir) / DUCKDB_COPY
    return path if path.is_file() and not path.is_symlink() else None


@dataclass(frozen=True)
class Margin:
    """A version's margin catalogue: its threshold and each partition's margin file
    (None where no row lies near that partition), in the order of
    :func:`partitions`."""

    arcsec: float
    files: tuple[str | None, ...]


@functools.lru_cache(maxsize=256)
def margin(version_dir: Path) -> Margin | None:
    """The default margin of a version directory (None if it has none)."""
    root = Path(version_dir)
    name = _read_properties(root / "collection.properties").get("default_margin")
    if not name or "/" in name or name.startswith("."):
        return None
    props = _read_properties(root / name / "properties")
    try:
        arcsec = float(props["hats_margin_threshold"])
    except (KeyError, ValueError):
        return None
    dataset = root / name / "dataset"
    primary = root / CATALOG_DIR / "dataset"
    files = []
    for f in partitions(root).files:
        candidate = dataset / Path(f).relative_to(primary)
        files.append(str(candidate) if candidate.is_file() else None)
    return Margin(arcsec, tuple(files))


def _read_properties(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


#: A crossmatch is done partition by partition only when it reads at most this many
#: partitions (each is one scan of its own in the plan) ...
XMATCH_MAX_PARTITIONS = 32
#: ... and less than this fraction of the table's bytes (otherwise the one join over
#: all partitions, which DuckDB runs in parallel, is as fast).
XMATCH_MAX_FRACTION = 0.5
#: Most ``_healpix_29`` ranges a partition-by-partition crossmatch reads.
XMATCH_MAX_RANGES = 8


@dataclass(frozen=True)
class CrossmatchPlan:
    """How to crossmatch a partitioned table with a small set of positions, partition
    by partition: each position is tagged with the partition that holds it and joined
    with that partition's rows and its margin (the rows of other partitions within the
    margin threshold of it), both tagged with the partition. A position in no partition
    (an empty region of the table) is tagged, cell by cell of its 3x3 block, with the
    partition holding the cell and so meets that partition's own rows only (a margin
    row never lies inside its partition). Every pair is found once.

    ``tags`` are the ``_healpix_29`` ranges of the partitions read (tag = index in the
    list); ``scans`` the files to read with their tag; ``ranges`` the index ranges
    worth reading in them (the 3x3 blocks of the positions, merged)."""

    tags: tuple[tuple[int, int], ...]
    scans: tuple[tuple[int, str], ...]
    ranges: tuple[tuple[int, int], ...]
    margins: int


def crossmatch_plan(version_dir: Path, ra: np.ndarray, dec: np.ndarray,
                    radius_deg: float, depth: int) -> CrossmatchPlan | None:
    """The partition-by-partition plan of a crossmatch of radius ``radius_deg`` between
    the partitioned version ``version_dir`` and the positions ``(ra, dec)`` (degrees)
    whose 3x3 blocks of cells of ``depth`` are joined with it; None when it does not
    apply (no margin, or a radius above its threshold; too many partitions read)."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    root = Path(version_dir)
    mg = margin(root)
    if mg is None or radius_deg * 3600.0 > mg.arcsec:
        return None
    parts = partitions(root)
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
    ra, dec = np.mod(ra[ok], 360.0), dec[ok]
    if len(ra) == 0:
        return None
    lon, lat = Longitude(ra * u.deg), Latitude(dec * u.deg)
    index = nested.lonlat_to_healpix(lon, lat, HEALPIX_ORDER, num_threads=1).astype(np.int64)
    at = np.searchsorted(parts.highs, index, side="left")
    inside = at < len(parts.files)
    covered = np.zeros(len(index), dtype=bool)
    covered[inside] = parts.lows[at[inside]] <= index[inside]
    own = set(_distinct(at[covered]).tolist())
    sizes = [os.stat(f).st_size for f in parts.files]
    if not _worth(own, sizes):  # decided before the costlier part
        return None
    cells = nested.lonlat_to_healpix(lon, lat, depth, num_threads=1).astype(np.uint64)
    block = nested.neighbours(cells, depth, num_threads=1).astype(np.int64)
    shift = 2 * (HEALPIX_ORDER - depth)
    # A position in no partition meets the rows of the partitions its cells lie in; a
    # cell must then lie in one partition (partitions no deeper than the cells).
    neighbour: set[int] = set()
    loose = block[~covered].ravel()
    loose = _distinct(loose[loose >= 0]) << shift
    if len(loose):
        first = np.searchsorted(parts.highs, loose, side="left")
        last = np.searchsorted(parts.lows, loose + (1 << shift) - 1, side="right")
        met = first[last > first]
        if (last - first > 1).any() or (
                parts.highs[met] - parts.lows[met] + 1 < 1 << shift).any():
            return None  # a partition smaller than a cell
        neighbour = set(_distinct(met).tolist())
    chosen = sorted(own | neighbour)
    if not chosen or not _worth(set(chosen), sizes):
        return None
    scans: list[tuple[int, str]] = []
    for tag, i in enumerate(chosen):
        scans.append((tag, parts.files[i]))
        margin_file = mg.files[i]
        if i in own and margin_file is not None:
            scans.append((tag, margin_file))
    blocks = _distinct(block[block >= 0])
    return CrossmatchPlan(
        tags=tuple((int(parts.lows[i]), int(parts.highs[i])) for i in chosen),
        scans=tuple(scans), ranges=_cover(blocks, shift, XMATCH_MAX_RANGES),
        margins=sum(1 for i in chosen if i in own and mg.files[i] is not None))


def _worth(chosen: set[int], sizes: list[int]) -> bool:
    """Whether reading these partitions one by one beats the join over all of them."""
    return len(chosen) <= XMATCH_MAX_PARTITIONS and (
        len(chosen) <= 1 or sum(sizes[i] for i in chosen) < XMATCH_MAX_FRACTION * sum(sizes))


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` of numpy 2.3 hashes int64 and took 5 s
    for a million cells; sorting takes 50 ms)."""
    values = np.sort(values)
    if len(values) == 0:
        return values
    distinct: np.ndarray = values[np.concatenate([[True], values[1:] != values[:-1]])]
    return distinct


def _cover(cells: np.ndarray, shift: int, most: int) -> tuple[tuple[int, int], ...]:
    """Sorted distinct cells as at most ``most`` inclusive ranges of the order-29 index
    (the widest gaps between them are kept)."""
    lows = cells.astype(np.int64) << shift
    highs = ((cells.astype(np.int64) + 1) << shift) - 1
    gaps = lows[1:] - highs[:-1] - 1
    cut = np.flatnonzero(gaps > 0)
    if len(cut) > most - 1:
        cut = np.sort(cut[np.argsort(gaps[cut], kind="stable")[len(cut) - (most - 1):]])
    starts = np.concatenate([[0], cut + 1])
    ends = np.concatenate([cut, [len(cells) - 1]])
    return tuple((int(lows[a]), int(highs[b])) for a, b in zip(starts, ends, strict=True))


def duckdb_view_sql(version_dir: Path, view: str) -> str:
    """SQL creating ``view`` over all partition files of a version (queries with a
    HEALPix coverage read their partitions' files directly: :func:`partition_files`).

    The largest file comes first: DuckDB estimates a file list's rows from its first
    file, and an estimate far too low turns joins the wrong way round (measured: a
    100k-row upload crossmatch 6x slower with an empty first file)."""
    files = list(partitions(Path(version_dir)).files)
    largest = max(range(len(files)), key=lambda i: os.stat(files[i]).st_size)
    files.insert(0, files.pop(largest))
    names = ", ".join(f"'{_sql_str(f)}'" for f in files)
    return (f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet([{names}],"
            " hive_partitioning=false)")


def is_version_dir(path: Path | None) -> bool:
    """Whether a version path names a partitioned (HATS) version."""
    return path is not None and Path(path).suffix == VERSION_SUFFIX


def directory_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (symbolic links not followed)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            total += st.st_size
    return total


def remove_tree(path: Path) -> None:
    """Delete a version directory (never following symbolic links)."""
    shutil.rmtree(path, ignore_errors=True)


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


# --- crossmatch of two partitioned versions ------------------------------------------------
@dataclass(frozen=True)
class PairTask:
    """One task of a partition-aligned crossmatch of two partitioned versions: rows of
    one left partition file (those with ``_healpix_29`` in ``left_in`` when given, and not
    in ``left_out``) meet the rows of the right files (those with ``_healpix_29`` in
    ``right_in`` when given). Every left row of a partition is in exactly one
    task and meets there every right row within the radius, each once."""

    left: str
    right: tuple[str, ...]
    left_in: tuple[tuple[int, int], ...] | None = None
    left_out: tuple[tuple[int, int], ...] = ()
    right_in: tuple[tuple[int, int], ...] | None = None


def pair_tasks(left_dir: Path, right_dir: Path, radius_deg: float,
               depth: int) -> list[PairTask] | None:
    """The per-pixel tasks of a crossmatch of radius ``radius_deg`` between two partitioned
    versions, aligned on the right version's partitions and margin (as LSDB aligns them);
    None when the right version has no margin or its threshold is below the radius.

    A left partition inside a right partition (or the same pixel) meets that partition and
    its margin. A left partition holding smaller right partitions is cut along them: its
    rows in each meet that partition and its margin; its rows in none of them (a region
    where the right version has no row) meet the right rows in that region's
    neighbourhood: the rows of the right partitions in the cells of order ``depth``
    (cells at least a few radii wide) around it, or in the 3x3 block of ``depth`` cells
    around it when it is smaller than a cell (the exact test on the joined rows keeps
    the pairs within the radius)."""
    from cdshealpix import nested

    mg = margin(Path(right_dir))
    if mg is None or radius_deg * 3600.0 > mg.arcsec:
        return None
    left, right = partitions(Path(left_dir)), partitions(Path(right_dir))

    def with_margin(j: int) -> tuple[str, ...]:
        m = mg.files[j]
        return (right.files[j],) if m is None else (right.files[j], m)

    tasks: list[PairTask] = []
    for i, path in enumerate(left.files):
        lo, hi = int(left.lows[i]), int(left.highs[i])
        first = int(np.searchsorted(right.highs, lo, side="left"))
        last = int(np.searchsorted(right.lows, hi, side="right"))
        inside = list(range(first, last))
        if len(inside) == 1 and right.lows[first] <= lo and right.highs[first] >= hi:
            tasks.append(PairTask(path, with_margin(first)))
            continue
        covered = 0
        for j in inside:  # right partitions inside this left one
            tasks.append(PairTask(path, with_margin(j), left_in=(
                (int(right.lows[j]), int(right.highs[j])),)))
            covered += int(right.highs[j] - right.lows[j]) + 1
        if covered == hi - lo + 1:
            continue
        # the rest of the partition: right rows around it, from the cells of `depth`
        order = HEALPIX_ORDER - (int(hi - lo + 1).bit_length() - 1) // 2
        pixel = lo >> 2 * (HEALPIX_ORDER - order)
        shift = 2 * (HEALPIX_ORDER - depth)
        if order <= depth:
            border, corners = nested.external_neighbours(
                np.array([pixel], dtype=np.uint64), order, depth - order)
            ring = np.concatenate([np.ravel(border), np.ravel(corners)]).astype(np.int64)
            near = list(_cover(_distinct(ring[ring >= 0]), shift, len(ring))) + [(lo, hi)]
        else:
            block = nested.neighbours(np.array([pixel >> 2 * (order - depth)],
                                               dtype=np.uint64), depth).astype(np.int64)
            near = list(_cover(_distinct(block[block >= 0]), shift, 9))
        near = _merge(near)
        files = partition_files_of(right, near)
        if files:
            tasks.append(PairTask(path, tuple(files), left_out=tuple(
                (int(right.lows[j]), int(right.highs[j])) for j in inside),
                right_in=tuple(near)))
    return tasks


def partition_files_of(parts: Partitions, ranges: Iterable[Sequence[int]]) -> list[str]:
    """The files of ``parts`` holding index values in the inclusive ``ranges`` (maybe
    none)."""
    chosen: set[int] = set()
    for lo, hi in ranges:
        first = int(np.searchsorted(parts.highs, lo, side="left"))
        last = int(np.searchsorted(parts.lows, hi, side="right"))
        chosen.update(range(first, last))
    return [parts.files[i] for i in sorted(chosen)]


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive ranges sorted, overlapping or adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out
