"""Small known tables in a real catalogue store and DuckDB engine, and helpers that
translate ADQL and run it."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest

from taphouse.adql import Scope, inline_name, translate
from taphouse.catalogue.model import HEALPIX_COLUMN, ColumnMeta, TableMeta
from taphouse.catalogue.store import CatalogueStore
from taphouse.engine import DuckDBEngine
from taphouse.metadata import MetadataDB

STAR_COLUMNS = [
    ColumnMeta("id", "int", ucd="meta.id;meta.main", description="star number"),
    ColumnMeta("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main"),
    ColumnMeta("dec", "double", unit="deg", ucd="pos.eq.dec;meta.main"),
    ColumnMeta("mag", "double", unit="mag", ucd="phot.mag", description="G magnitude"),
    ColumnMeta("parallax", "double", unit="mas", ucd="pos.parallax"),
    ColumnMeta("name", "char", arraysize="*", ucd="meta.id"),
]

# (id, ra, dec, mag, parallax, name): near RA 0/360, both poles, and ordinary places.
STARS = [
    (1, 10.0, 10.0, 12.5, 1.0, "alpha"),
    (2, 10.01, 10.0, 13.0, 2.0, "beta"),
    (3, 10.2, 10.0, 14.0, None, "gamma"),
    (4, 359.9999, 0.0, 15.0, 0.5, "delta"),
    (5, 0.0002, 0.0, 16.0, 0.25, "epsilon"),
    (6, 180.0, 89.99, 11.0, 3.0, "zeta"),
    (7, 0.0, 89.99, 11.5, 3.5, "eta"),
    (8, 90.0, -89.995, 17.0, 0.1, "theta"),
    (9, 270.0, -89.995, 18.0, 0.2, "iota"),
    (10, 200.0, -45.0, 19.0, None, "kappa"),
]

OBS_COLUMNS = [
    ColumnMeta("obs_id", "int", ucd="meta.id"),
    ColumnMeta("id", "int", ucd="meta.id"),
    ColumnMeta("band", "char", arraysize="*"),
    ColumnMeta("flux", "double", unit="mJy", ucd="phot.flux"),
    ColumnMeta("size", "double", unit="arcsec"),
]
OBS = [
    (100, 1, "G", 1.5, 0.3), (101, 1, "R", 2.5, 0.4), (102, 2, "G", 3.0, 0.5),
    (103, 3, "G", 0.5, 0.6), (104, 99, "K", 9.0, 0.7),
]


def _values_sql(rows, names) -> str:
    def lit(v):
        if v is None:
            return "NULL"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        return repr(v)

    body = ", ".join("(" + ", ".join(lit(v) for v in r) + ")" for r in rows)
    return f"SELECT * FROM (VALUES {body}) AS v({', '.join(names)})"


class Env:
    """A catalogue with a few tables, an engine, and a scope over them."""

    def __init__(self, root: Path) -> None:
        self.meta = MetadataDB(root / "meta.sqlite")
        self.store = CatalogueStore(self.meta, root / "tables")
        self.engine = DuckDBEngine(root / "tables", threads=1, memory_limit="500MB")
        self.store.create_database("demo", "test data")
        stars_sql = (
            "SELECT id::INTEGER AS id, ra::DOUBLE AS ra, dec::DOUBLE AS dec, mag::DOUBLE AS "
            "mag, parallax::DOUBLE AS parallax, name::VARCHAR AS name, "
            'ivo_healpix_index(29, ra, dec) AS "_healpix_29" FROM ('
            + _values_sql(STARS, ["id", "ra", "dec", "mag", "parallax", "name"]) + ")")
        self.stars = self._publish("stars", stars_sql, STAR_COLUMNS, len(STARS),
                                   order_by='"_healpix_29"', positions=True)
        obs_sql = ("SELECT obs_id::INTEGER AS obs_id, id::INTEGER AS id, band::VARCHAR AS band,"
                   " flux::DOUBLE AS flux, size::DOUBLE AS size FROM ("
                   + _values_sql(OBS, ["obs_id", "id", "band", "flux", "size"]) + ")")
        self.obs = self._publish("obs", obs_sql, OBS_COLUMNS, len(OBS))
        self.upload_meta = TableMeta(
            "tap_upload", "mine", [
                ColumnMeta("uid", "long"),
                ColumnMeta("ura", "double", unit="deg"),
                ColumnMeta("udec", "double", unit="deg"),
            ], kind="upload", ra_column="ura", dec_column="udec")
        self.upload = pa.table({
            "uid": pa.array([1, 2, 3, 4], pa.int64()),
            # near star 1, near star 4 across RA 0/360, near star 8 (south pole), nothing
            "ura": [10.0001, 0.0, 270.0, 45.0],
            "udec": [10.0, 0.0, -89.9951, 45.0],
        })

    def _publish(self, name, sql, columns, nrows, order_by=None, positions=False):
        path = self.store.new_version_path("demo", name)
        self.engine.write_table(sql, path, order_by=order_by)
        table = TableMeta("demo", name, columns, nrows=nrows)
        if positions:
            table.ra_column, table.dec_column = "ra", "dec"
            table.healpix_column = HEALPIX_COLUMN
        return self.store.publish(table, path)

    def scope(self, **kw) -> Scope:
        tables = {("demo", "stars"): self.stars, ("demo", "obs"): self.obs,
                  ("tap_upload", "mine"): self.upload_meta}
        return Scope(tables=tables, relation=self.engine.relation,
                     inline={("tap_upload", "mine"): self.upload}, **kw)

    def translate(self, adql: str, **kw):
        return translate(adql, self.scope(), **kw)

    def run(self, adql: str, **kw):
        """Translate and execute; return (translation, list of row tuples)."""
        t = self.translate(adql, **kw)
        inline = {inline_name(tm): self.upload for tm in t.tables if tm.kind == "upload"}
        with self.engine.cursor(inline) as cur:
            rows = cur.execute(t.sql).fetchall()
        return t, rows


@pytest.fixture(scope="session")
def sky():
    """The star rows and a reference angular distance, for expected answers."""
    return STARS, angdist


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> Env:
    return Env(tmp_path_factory.mktemp("adql"))


def angdist(ra1, dec1, ra2, dec2) -> float:
    """Reference angular distance in degrees (Vincenty formula)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    dra = r2 - r1
    num = math.hypot(math.cos(d2) * math.sin(dra),
                     math.cos(d1) * math.sin(d2) - math.sin(d1) * math.cos(d2) * math.cos(dra))
    den = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(dra)
    return math.degrees(math.atan2(num, den))


# pg_server (the throwaway PostgreSQL cluster): tests/conftest.py, shared with tests/postgres


@pytest.fixture(scope="session")
def pg(pg_server, env):
    """The test tables in PostgreSQL (see backends.PgEnv)."""
    from backends import PgEnv

    return PgEnv(pg_server.dsn, env)


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request, env):
    """Each backend in turn (a test body written once runs on both): DuckDB, then the
    PostgreSQL cluster (started the first time a test asks for it)."""
    from backends import Backend

    target = env if request.param == "duckdb" else request.getfixturevalue("pg")
    return Backend(request.param, target)
