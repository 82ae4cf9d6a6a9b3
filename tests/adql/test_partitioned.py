"""The ADQL corpus on a partitioned (HATS) version of the test stars: the same answers as
the single-file table; cones and polygons read only the partitions their coverage
touches (files not read are deleted to prove it); crossmatches across partition
boundaries, RA 0/360 and the poles against brute force."""

from __future__ import annotations

import dataclasses
import math
import shutil

import numpy as np
import pyarrow as pa
import pytest
from test_geometry import CONE_SPELLINGS, CONES
from test_joins import CORPUS as JOIN_CORPUS
from test_select import CORPUS as SELECT_CORPUS

from taphouse.catalogue.hats import (
    DUCKDB_COPY,
    PartitionOptions,
    partition_files,
    partitions,
    write_collection,
)
from taphouse.catalogue.model import HEALPIX_COLUMN, ColumnMeta, TableMeta


def partitioned_env(env_class: type, root, duckdb_copy: bool = False):
    """The test tables of the ``env`` fixture's class, positioned ones as HATS version
    directories, one star per partition where cells allow. (The class comes from the
    fixture: ``conftest`` is not importable by name beside other test directories.)"""

    class PartitionedEnv(env_class):
        def _publish(self, name, sql, columns, nrows, order_by=None, positions=False):
            table = super()._publish(name, sql, columns, nrows, order_by, positions)
            if not positions:
                return table
            return publish_partitioned(self.store, table, PartitionOptions(
                max_rows=1, highest_order=12, margin_arcsec=10, duckdb_copy=duckdb_copy))

    return PartitionedEnv(root)


def publish_partitioned(store, table: TableMeta, options: PartitionOptions) -> TableMeta:
    out = store.new_version_path(table.database, table.name, suffix=".hats")
    write_collection(table.path, out, name=table.qualified_name, ra=table.ra_column,
                     dec=table.dec_column, options=options)
    if options.duckdb_copy:  # as ingest keeps its sorted file
        shutil.copyfile(table.path, out / DUCKDB_COPY)
    return store.publish(TableMeta(
        table.database, table.name, table.columns, nrows=table.nrows,
        ra_column=table.ra_column, dec_column=table.dec_column,
        healpix_column=HEALPIX_COLUMN), out)


@pytest.fixture(scope="module")
def penv(env, tmp_path_factory):
    return partitioned_env(type(env), tmp_path_factory.mktemp("hats"))


def _key(r):
    return tuple((v is None, v) for v in r)


def test_stars_are_partitioned(penv):
    assert penv.stars.path.suffix == ".hats"
    assert len(partitions(penv.stars.path).files) >= 6


CORPUS = [adql for adql, _ in SELECT_CORPUS + JOIN_CORPUS]


@pytest.mark.parametrize("adql", CORPUS, ids=[c[:60] for c in CORPUS])
def test_corpus_same_as_single_file(env, penv, adql):
    _, expected = env.run(adql)
    _, rows = penv.run(adql)
    if "ORDER BY" not in adql.upper():
        rows, expected = sorted(rows, key=_key), sorted(expected, key=_key)
    assert rows == expected


@pytest.mark.parametrize("spelling", CONE_SPELLINGS)
@pytest.mark.parametrize("cone", CONES, ids=[str(c) for c in CONES])
def test_cones_same_as_single_file(env, penv, spelling, cone):
    ra, dec, r = cone
    adql = "SELECT id FROM demo.stars WHERE " + spelling.format(ra=ra, dec=dec, r=r)
    _, expected = env.run(adql)
    t, rows = penv.run(adql)
    assert sorted(rows) == sorted(expected)
    assert any(n.startswith("cone on stars") for n in t.notes), t.sql
    assert "READ_PARQUET" in t.sql.upper()


@pytest.fixture(scope="module")
def cenv(env, tmp_path_factory):
    return partitioned_env(type(env), tmp_path_factory.mktemp("hatscopy"), duckdb_copy=True)


def test_duckdb_copy_serves_the_corpus_and_cones_without_parquet(env, cenv):
    """A partitioned version with a DuckDB copy: DuckDB reads the copy (no Parquet file in
    any query), with the single file's answers."""
    assert (cenv.stars.path / DUCKDB_COPY).is_file()
    for adql in CORPUS:
        _, expected = env.run(adql)
        t, rows = cenv.run(adql)
        if "ORDER BY" not in adql.upper():
            rows, expected = sorted(rows, key=_key), sorted(expected, key=_key)
        assert rows == expected, adql
        assert "PARQUET" not in t.sql.upper(), t.sql
    for ra, dec, r in CONES:
        adql = ("SELECT id FROM demo.stars WHERE"
                f" 1=CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, {r}))")
        t, rows = cenv.run(adql)
        assert sorted(rows) == sorted(env.run(adql)[1])
        assert any(n.startswith("cone on stars") for n in t.notes) and "PARQUET" not in t.sql


def test_select_star_hides_file_column(penv):
    t, rows = penv.run("SELECT * FROM demo.stars WHERE "
                       "1=CONTAINS(POINT(ra, dec), CIRCLE(10, 10, 0.05))")
    assert [c.name for c in t.columns] == ["id", "ra", "dec", "mag", "parallax", "name"]
    assert sorted(r[0] for r in rows) == [1, 2]


@pytest.mark.parametrize("column", ["filename", "_th_file", "norder", "npix", "dir"])
def test_file_column_is_not_reachable(penv, column):
    """No file name (a server path) or partition key is a column of the table in ADQL."""
    from taphouse.adql import AdqlError

    with pytest.raises(AdqlError, match="unknown column|not found|no column"):
        penv.run(f'SELECT "{column}" FROM demo.stars')


# --- a larger sky: pruning, seams, poles, crossmatch -----------------------------------
def _sky(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    # crowds at RA 0/360, at both poles, and along a base-cell boundary (dec 41.8)
    k = n // 8
    ra[:k] = rng.uniform(-0.5, 0.5, k) % 360
    dec[:k] = rng.uniform(-1, 1, k)
    ra[k:2 * k] = rng.uniform(0, 360, k)
    dec[k:2 * k] = rng.uniform(89.5, 90, k)
    ra[2 * k:3 * k] = rng.uniform(0, 360, k)
    dec[2 * k:3 * k] = rng.uniform(-90, -89.5, k)
    ra[3 * k:4 * k] = rng.uniform(44, 46, k)
    dec[3 * k:4 * k] = rng.uniform(41.3, 42.3, k)
    return ra, dec


SKY_COLUMNS = [ColumnMeta("id", "long", ucd="meta.id;meta.main"),
               ColumnMeta("ra", "double", unit="deg", ucd="pos.eq.ra;meta.main"),
               ColumnMeta("dec", "double", unit="deg", ucd="pos.eq.dec;meta.main")]


class Sky:
    def __init__(self, env_class: type, root):
        self.env = env_class(root)
        self.ra, self.dec = _sky(40_000, 7)
        rows = pa.table({"id": np.arange(len(self.ra), dtype=np.int64), "ra": self.ra,
                         "dec": self.dec})
        e = self.env
        sql = ('SELECT id, ra, dec, ivo_healpix_index(29, ra, dec) AS "_healpix_29"'
               " FROM sky_rows")
        path = e.store.new_version_path("demo", "sky")
        with e.engine.cursor({"sky_rows": rows}) as cur:
            e.engine.write_table(sql, path, order_by='"_healpix_29"', cursor=cur)
        e.store.create_database("flat")
        self.single = e.store.publish(TableMeta(
            "flat", "sky", SKY_COLUMNS, nrows=len(self.ra), ra_column="ra",
            dec_column="dec", healpix_column=HEALPIX_COLUMN), path)
        self.part = publish_partitioned(e.store, TableMeta(
            "demo", "sky", SKY_COLUMNS, nrows=len(self.ra), ra_column="ra",
            dec_column="dec", healpix_column=HEALPIX_COLUMN, path=path),
            PartitionOptions(max_rows=1_000, highest_order=8, margin_arcsec=10))

    def run(self, adql: str, more: dict | None = None):
        from taphouse.adql import Scope, translate

        scope = Scope(tables={("demo", "sky"): self.part, ("flat", "sky"): self.single,
                              **(more or {})}, relation=self.env.engine.relation)
        t = translate(adql, scope)
        with self.env.engine.cursor() as cur:
            return t, cur.execute(t.sql).fetchall()

    def brute_cone(self, ra, dec, r):
        d = _angdist(self.ra, self.dec, ra, dec)
        return sorted(int(i) for i in np.flatnonzero(d <= r))


def _angdist(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = (np.sin((d2 - d1) / 2) ** 2
         + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2)
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


@pytest.fixture(scope="module")
def sky(env, tmp_path_factory) -> Sky:
    return Sky(type(env), tmp_path_factory.mktemp("sky"))


def test_adaptive_partitions(sky):
    parts = partitions(sky.part.path)
    orders = {int(f.split("Norder=")[1].split("/")[0]) for f in parts.files}
    assert len(parts.files) >= 40 and len(orders) >= 3, orders  # crowds split deeper
    import pyarrow.parquet as pq

    sizes = [pq.read_metadata(f).num_rows for f in parts.files]
    assert sum(sizes) == len(sky.ra)
    assert max(sizes) <= 1_000 or max(orders) == 8


SKY_CONES = [(0, 0, 0.05), (359.98, 0.3, 0.05), (0.01, -0.2, 0.1), (10, 89.9, 0.05),
             (200, 90, 0.1), (0, -90, 0.08), (45, 41.81, 0.1), (45.3, 41.6, 0.05),
             (123.4, 12.3, 0.2)]
#: Points where four HEALPix cells meet at every order (the poles, corners and centres
#: of the base cells): a cone there may touch four partitions.
VERTICES = [(0, 0), (45, 41.81)]


@pytest.mark.parametrize("cone", SKY_CONES, ids=[str(c) for c in SKY_CONES])
def test_small_cone_reads_at_most_three_partitions(sky, cone):
    ra, dec, r = cone
    where = f"1=CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, {r}))"
    t, rows = sky.run(f"SELECT id FROM demo.sky WHERE {where}")
    _, flat = sky.run(f"SELECT id FROM flat.sky WHERE {where}")
    assert sorted(r[0] for r in rows) == sorted(r[0] for r in flat) == sky.brute_cone(
        ra, dec, r)
    read = [f for f in partitions(sky.part.path).files if f"'{f}'" in t.sql]
    # Four cells meet at the poles and at (0, 0) at every order: there, four.
    vertex = abs(dec) > 89 or (ra, dec) in VERTICES
    assert 1 <= len(read) <= (4 if vertex else 3), read


def test_pruned_partitions_are_never_opened(sky, tmp_path):
    """Copy the version, delete every partition file a cone does not need, and query the
    copy: the answer is the same, so the engine opened no other file."""
    from taphouse.adql import Scope, translate

    e = sky.env
    copy_path = e.store.new_version_path("demo", "sky_copy", suffix=".hats")
    shutil.copytree(sky.part.path, copy_path)
    copy = e.store.publish(TableMeta("demo", "sky_copy", SKY_COLUMNS, nrows=sky.part.nrows,
                                     ra_column="ra", dec_column="dec",
                                     healpix_column=HEALPIX_COLUMN), copy_path)
    ra, dec, r = 45, 41.81, 0.1
    adql = ("SELECT id FROM demo.sky_copy WHERE"
            f" 1=CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, {r}))")
    scope = Scope(tables={("demo", "sky_copy"): copy}, relation=e.engine.relation)
    t = translate(adql, scope)
    files = partitions(copy.path).files
    keep = {f for f in files if f"'{f}'" in t.sql}
    for f in files:
        if f not in keep:
            with open(f, "wb") as damaged:
                damaged.write(b"not parquet")
    with e.engine.cursor() as cur:
        rows = cur.execute(t.sql).fetchall()
    assert sorted(r[0] for r in rows) == sky.brute_cone(ra, dec, r)
    with pytest.raises(Exception, match="parquet|Parquet"):  # a full scan opens them
        with e.engine.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {e.engine.relation(copy)}").fetchall()


def test_duckdb_copy_is_what_duckdb_reads(sky):
    """A version with a DuckDB copy whose Parquet partitions are all damaged: cones at the
    seams and poles, a polygon and a full aggregate still answer right (DuckDB reads only
    the copy); the partitions stay what HATS readers see."""
    e = sky.env
    path = e.store.new_version_path("demo", "sky_dcopy", suffix=".hats")
    shutil.copytree(sky.part.path, path)
    shutil.copyfile(sky.single.path, path / DUCKDB_COPY)
    table = e.store.publish(TableMeta("demo", "sky_dcopy", SKY_COLUMNS,
                                      nrows=sky.part.nrows, ra_column="ra", dec_column="dec",
                                      healpix_column=HEALPIX_COLUMN), path)
    for f in partitions(path).files:
        with open(f, "wb") as damaged:
            damaged.write(b"not parquet")
    more = {("demo", "sky_dcopy"): table}
    for ra, dec, r in SKY_CONES:
        t, rows = sky.run("SELECT id FROM demo.sky_dcopy WHERE"
                          f" 1=CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, {r}))", more)
        assert sorted(r[0] for r in rows) == sky.brute_cone(ra, dec, r)
        assert "PARQUET" not in t.sql.upper()
    poly = "POLYGON(44.5, 41.5, 45.5, 41.5, 45.5, 42.1, 44.5, 42.1)"
    _, rows = sky.run(f"SELECT id FROM demo.sky_dcopy WHERE 1=CONTAINS(POINT(ra, dec), {poly})",
                      more)
    _, flat = sky.run(f"SELECT id FROM flat.sky WHERE 1=CONTAINS(POINT(ra, dec), {poly})")
    assert sorted(rows) == sorted(flat) and rows
    _, rows = sky.run("SELECT COUNT(*), SUM(id) FROM demo.sky_dcopy", more)
    assert rows == sky.run("SELECT COUNT(*), SUM(id) FROM flat.sky")[1]


def test_linked_duckdb_copy_is_not_followed(sky, tmp_path):
    """A ``catalog.duckdb`` that is a symbolic link (to a file with other rows) is not
    read: DuckDB reads the Parquet partitions."""
    e = sky.env
    path = e.store.new_version_path("demo", "sky_link", suffix=".hats")
    shutil.copytree(sky.part.path, path)
    other = e.store.root / "tables" / "elsewhere.duckdb"
    import duckdb

    with duckdb.connect(str(other)) as con:
        con.execute('CREATE TABLE data AS SELECT -1::BIGINT AS id, 0.0 AS ra, 0.0 AS dec,'
                    ' 0::BIGINT AS "_healpix_29"')
    (path / DUCKDB_COPY).symlink_to(other)
    table = e.store.publish(TableMeta("demo", "sky_link", SKY_COLUMNS,
                                      nrows=sky.part.nrows, ra_column="ra", dec_column="dec",
                                      healpix_column=HEALPIX_COLUMN), path)
    t, rows = sky.run("SELECT COUNT(*) FROM demo.sky_link", {("demo", "sky_link"): table})
    assert rows == [(len(sky.ra),)]


def test_polygon_reads_only_its_partitions(sky):
    poly = "POLYGON(44.5, 41.5, 45.5, 41.5, 45.5, 42.1, 44.5, 42.1)"
    t, rows = sky.run(f"SELECT id FROM demo.sky WHERE 1=CONTAINS(POINT(ra, dec), {poly})")
    _, flat = sky.run(f"SELECT id FROM flat.sky WHERE 1=CONTAINS(POINT(ra, dec), {poly})")
    assert sorted(rows) == sorted(flat) and rows
    read = [f for f in partitions(sky.part.path).files if f"'{f}'" in t.sql]
    assert len(read) < len(partitions(sky.part.path).files) / 4


def test_full_table_aggregate(sky):
    _, rows = sky.run("SELECT COUNT(*), SUM(id), MIN(dec), MAX(dec) FROM demo.sky")
    _, flat = sky.run("SELECT COUNT(*), SUM(id), MIN(dec), MAX(dec) FROM flat.sky")
    assert rows == flat and rows[0][0] == len(sky.ra)


def _moved(ra, dec, r_deg, seed):
    """Each position moved by up to 1.6 r in a random direction (some pairs just
    outside r)."""
    rng = np.random.default_rng(seed)
    n = len(ra)
    bearing = rng.uniform(0, 2 * math.pi, n)
    dist = np.radians(rng.uniform(0, 1.6 * r_deg, n))
    d0 = np.radians(dec)
    dec2 = np.degrees(np.arcsin(np.sin(d0) * np.cos(dist)
                                + np.cos(d0) * np.sin(dist) * np.cos(bearing)))
    ra2 = (ra + np.degrees(np.arctan2(np.sin(bearing) * np.sin(dist) * np.cos(d0),
                                      np.cos(dist) - np.sin(d0) * np.sin(np.radians(dec2)))
                           )) % 360
    return ra2, dec2


def _brute_pairs(ra, dec, ra2, dec2, r_deg) -> set[tuple[int, int]]:
    """Every (row, position) pair within r: a row within r of a position is within r of
    it in Dec, so only the rows of that Dec band are measured."""
    expected = set()
    order = np.argsort(dec)
    decs = dec[order]
    for j in range(len(ra2)):
        band = order[np.searchsorted(decs, dec2[j] - r_deg):
                     np.searchsorted(decs, dec2[j] + r_deg, side="right")]
        d = _angdist(ra[band], dec[band], ra2[j], dec2[j])
        expected.update((int(i), j) for i in band[d <= r_deg])
    return expected


def test_crossmatch_across_partition_boundaries(sky):
    """Every star against every star moved by up to 8 arcsec: pairs straddle partition
    edges, RA 0/360 and the poles; the answer equals brute force."""
    rng = np.random.default_rng(3)
    n = 3_000
    pick = rng.choice(len(sky.ra), n, replace=False)
    r_deg = 5 / 3600
    ra2, dec2 = _moved(sky.ra[pick], sky.dec[pick], r_deg, 3)
    e = sky.env
    other = pa.table({"oid": np.arange(n, dtype=np.int64), "ora": ra2, "odec": dec2})
    path = e.store.new_version_path("demo", "moved")
    with e.engine.cursor({"moved_rows": other}) as cur:
        e.engine.write_table('SELECT *, ivo_healpix_index(29, ora, odec) AS "_healpix_29"'
                             " FROM moved_rows", path, order_by='"_healpix_29"', cursor=cur)
    moved = e.store.publish(TableMeta(
        "demo", "moved", [ColumnMeta("oid", "long"), ColumnMeta("ora", "double", unit="deg"),
                          ColumnMeta("odec", "double", unit="deg")],
        nrows=n, ra_column="ora", dec_column="odec", healpix_column=HEALPIX_COLUMN), path)
    adql = ("SELECT s.id, m.oid FROM demo.sky AS s JOIN demo.moved AS m ON "
            f"1=CONTAINS(POINT(s.ra, s.dec), CIRCLE(m.ora, m.odec, {r_deg!r}))")
    t, rows = sky.run(adql, {("demo", "moved"): moved})
    assert any("crossmatch" in note for note in t.notes), t.notes
    expected = _brute_pairs(sky.ra, sky.dec, ra2, dec2, r_deg)
    assert set(rows) == expected
    assert len(expected) > n / 2
    pairs = np.array(sorted(expected))
    crossing = _part_of(sky, sky.ra[pairs[:, 0]], sky.dec[pairs[:, 0]]) != _part_of(
        sky, ra2[pairs[:, 1]], dec2[pairs[:, 1]])
    assert crossing.sum() > 0  # some pairs do straddle partition boundaries


UPLOAD = TableMeta("tap_upload", "up", [ColumnMeta("uid", "long"),
                                        ColumnMeta("ura", "double", unit="deg"),
                                        ColumnMeta("udec", "double", unit="deg")],
                   kind="upload")


def _upload_match(sky, table: TableMeta, ra2, dec2, r_deg, *, flip: bool = False,
                  left: bool = False):
    """Crossmatch positions uploaded with the query against ``table`` (with ``left``:
    ``table LEFT JOIN upload``): (translation, pairs)."""
    from taphouse.adql import Scope, translate
    from taphouse.adql.scope import inline_name

    data = pa.table({"uid": np.arange(len(ra2), dtype=np.int64), "ura": ra2, "udec": dec2})
    meta = dataclasses.replace(UPLOAD, nrows=len(ra2))
    point, circle = "POINT(s.ra, s.dec)", f"CIRCLE(u.ura, u.udec, {r_deg!r})"
    if flip:
        point, circle = "POINT(u.ura, u.udec)", f"CIRCLE(s.ra, s.dec, {r_deg!r})"
    adql = (f"SELECT s.id, u.uid FROM TAP_UPLOAD.up AS u JOIN {table.qualified_name} AS s"
            f" ON 1=CONTAINS({point}, {circle})")
    if left:
        adql = (f"SELECT s.id, u.uid FROM {table.qualified_name} AS s LEFT JOIN"
                f" TAP_UPLOAD.up AS u ON 1=CONTAINS({point}, {circle})")
    scope = Scope(tables={(table.database, table.name): table, ("tap_upload", "up"): meta},
                  relation=sky.env.engine.relation, inline={("tap_upload", "up"): data})
    t = translate(adql, scope)
    with sky.env.engine.cursor({inline_name(meta): data}) as cur:
        rows = cur.execute(t.sql).fetchall()
    assert len(rows) == len(set(rows))  # no pair twice
    return t, set(rows)


def _crowd(sky, k: int) -> np.ndarray:
    """The rows of the k-th crowd of the sky (RA 0/360, north pole, south pole, base-cell
    boundary)."""
    n = len(sky.ra) // 8
    return np.arange(k * n, (k + 1) * n)


@pytest.mark.parametrize("crowd", [0, 1, 2, 3], ids=["ra0", "north", "south", "seam"])
def test_uploaded_crossmatch_partition_by_partition(sky, crowd):
    """Positions uploaded with the query are matched partition by partition with the
    margin: only the partitions holding them (and their margins) are read; the answer
    equals brute force and the single file's, across partition edges."""
    rng = np.random.default_rng(crowd)
    pick = rng.choice(_crowd(sky, crowd), 2_500, replace=False)
    r_deg = 5 / 3600
    ra2, dec2 = _moved(sky.ra[pick], sky.dec[pick], r_deg, crowd)
    expected = _brute_pairs(sky.ra, sky.dec, ra2, dec2, r_deg)
    for flip in (False, True):
        t, rows = _upload_match(sky, sky.part, ra2, dec2, r_deg, flip=flip)
        assert any("partition by partition" in n for n in t.notes), t.notes
        assert rows == expected
    _, flat = _upload_match(sky, sky.single, ra2, dec2, r_deg)
    assert flat == expected and len(expected) > 200
    files = partitions(sky.part.path).files
    read = [f for f in files if f"'{f}'" in t.sql]
    assert len(read) < len(files) / 3
    assert "margin_10arcs" in t.sql
    pairs = np.array(sorted(expected))
    crossing = _part_of(sky, sky.ra[pairs[:, 0]], sky.dec[pairs[:, 0]]) != _part_of(
        sky, ra2[pairs[:, 1]], dec2[pairs[:, 1]])
    assert crossing.sum() > 0  # pairs found through the margin


def test_select_star_of_a_partitioned_crossmatch_shows_no_internal_column(sky):
    from taphouse.adql import Scope, translate
    from taphouse.adql.scope import inline_name

    pick = _crowd(sky, 1)[:50]
    data = pa.table({"uid": np.arange(50, dtype=np.int64), "ura": sky.ra[pick],
                     "udec": sky.dec[pick]})
    meta = dataclasses.replace(UPLOAD, nrows=50)
    scope = Scope(tables={("demo", "sky"): sky.part, ("tap_upload", "up"): meta},
                  relation=sky.env.engine.relation, inline={("tap_upload", "up"): data})
    t = translate("SELECT * FROM TAP_UPLOAD.up AS u JOIN demo.sky AS s ON"
                  " 1=CONTAINS(POINT(s.ra, s.dec), CIRCLE(u.ura, u.udec, 1/3600.))", scope)
    assert any("partition by partition" in n for n in t.notes), t.notes
    with sky.env.engine.cursor({inline_name(meta): data}) as cur:
        rows = cur.execute(t.sql).fetchall()
        names = [d[0] for d in cur.description]
    assert names == ["uid", "ura", "udec", "id", "ra", "dec"]
    assert sorted((r[0], r[3]) for r in rows) == [(j, int(i)) for j, i in enumerate(pick)]


def test_uploaded_positions_at_the_edges_of_the_sky(sky, monkeypatch):
    """Exact poles, RA 360 and 0, positions moved across RA 0/360, and unusable rows
    (NaN, Dec beyond 90): the partition-by-partition join equals brute force and the
    single file's."""
    from taphouse.catalogue import hats

    rng = np.random.default_rng(9)
    near = np.concatenate([_crowd(sky, 0)[:300], _crowd(sky, 1)[:300], _crowd(sky, 2)[:300]])
    ra2, dec2 = _moved(sky.ra[near], sky.dec[near], 8 / 3600, 9)
    edge_ra = np.array([0.0, 360.0, 360.0, 0.0, 123.0, 359.9999999, 0.0000001])
    edge_dec = np.array([90.0, -90.0, 0.0, 0.3, 90.0, 0.2, -0.4])
    ra2 = np.concatenate([ra2, edge_ra, [np.nan, 10.0, 20.0]])
    dec2 = np.concatenate([dec2, edge_dec, [0.0, 95.0, np.nan]])
    ra2[:50] = ra2[:50] + 360 * rng.choice([0, 1], 50)  # the same position as RA + 360
    r_deg = 8 / 3600
    monkeypatch.setattr(hats, "XMATCH_MAX_PARTITIONS", 10**6)  # three crowds: 59 partitions
    t, rows = _upload_match(sky, sky.part, ra2, dec2, r_deg)
    assert any("partition by partition" in n for n in t.notes), t.notes
    _, flat = _upload_match(sky, sky.single, ra2, dec2, r_deg)
    ok = np.isfinite(ra2) & np.isfinite(dec2) & (np.abs(dec2) <= 90)
    expected = {(i, j) for i, j in _brute_pairs(sky.ra, sky.dec, np.where(ok, ra2 % 360, 0),
                                                np.where(ok, dec2, 0), r_deg) if ok[j]}
    assert rows == flat == expected and len(expected) > 300


def test_outer_join_keeps_every_row_of_the_partitioned_table(sky):
    """``table LEFT JOIN upload``: every row of the table is kept (once), so the table is
    never cut down to the partitions the positions touch nor joined with its margin."""
    pick = _crowd(sky, 0)[:300]
    r_deg = 5 / 3600
    ra2, dec2 = _moved(sky.ra[pick], sky.dec[pick], r_deg, 4)
    _, rows = _upload_match(sky, sky.part, ra2, dec2, r_deg, left=True)
    _, flat = _upload_match(sky, sky.single, ra2, dec2, r_deg, left=True)
    pairs = _brute_pairs(sky.ra, sky.dec, ra2, dec2, r_deg)
    matched = {i for i, _ in pairs}
    expected = pairs | {(i, None) for i in range(len(sky.ra)) if i not in matched}
    assert rows == flat == expected


def test_whole_sky_upload_partition_by_partition(sky, monkeypatch):
    """With every partition read (the plan's limits lifted), the partition-by-partition
    join still equals brute force over the whole sky; with the limits, a whole-sky
    upload takes the one join over all partitions."""
    from taphouse.catalogue import hats

    rng = np.random.default_rng(11)
    pick = rng.choice(len(sky.ra), 3_000, replace=False)
    r_deg = 5 / 3600
    ra2, dec2 = _moved(sky.ra[pick], sky.dec[pick], r_deg, 11)
    expected = _brute_pairs(sky.ra, sky.dec, ra2, dec2, r_deg)
    t, rows = _upload_match(sky, sky.part, ra2, dec2, r_deg)
    assert not any("partition by partition" in n for n in t.notes), t.notes
    assert rows == expected
    monkeypatch.setattr(hats, "XMATCH_MAX_PARTITIONS", 10**6)
    monkeypatch.setattr(hats, "XMATCH_MAX_FRACTION", 2.0)
    t, rows = _upload_match(sky, sky.part, ra2, dec2, r_deg)
    assert any("partition by partition" in n for n in t.notes), t.notes
    assert rows == expected
    # a radius above the margin threshold is never done partition by partition
    t, rows = _upload_match(sky, sky.part, ra2, dec2, 12 / 3600)
    assert not any("partition by partition" in n for n in t.notes), t.notes
    assert rows == _brute_pairs(sky.ra, sky.dec, ra2, dec2, 12 / 3600)


def test_uploaded_positions_outside_every_partition(sky, monkeypatch):
    """Rows only inside one HEALPix cell: uploaded positions just outside it lie in no
    partition and are matched with the partitions their cells touch (no margin row of
    a partition lies inside it, so no pair is found twice)."""
    from cdshealpix.nested import healpix_to_lonlat

    from taphouse.catalogue import hats
    from taphouse.catalogue.healpix import healpix_index

    e = sky.env
    rng = np.random.default_rng(5)
    # a cell of order 5 at RA ~0: rows fill it, partitions split it to order 8
    cell = int(healpix_index(np.array([0.3]), np.array([0.5]), 5)[0][0])
    lon, lat = healpix_to_lonlat(np.array([cell], dtype=np.uint64), 5)
    ra = (lon.deg[0] + rng.uniform(-2.5, 2.5, 1_000_000)) % 360
    dec = lat.deg[0] + rng.uniform(-2.5, 2.5, 1_000_000)
    keep = healpix_index(ra, dec, 5)[0] == cell
    # most rows within 12 arcsec of the cell's edge, a few inside
    step = 12 / 3600
    edge = np.zeros(len(ra), dtype=bool)
    for dra, ddec in ((step, 0), (-step, 0), (0, step), (0, -step)):
        edge |= healpix_index((ra + dra) % 360, dec + ddec, 5)[0] != cell
    keep &= edge | (rng.uniform(size=len(ra)) < 0.004)
    ra, dec = ra[keep][:6_000], dec[keep][:6_000]
    rows = pa.table({"id": np.arange(len(ra), dtype=np.int64), "ra": ra, "dec": dec})
    path = e.store.new_version_path("demo", "patch")
    with e.engine.cursor({"patch_rows": rows}) as cur:
        e.engine.write_table('SELECT id, ra, dec, ivo_healpix_index(29, ra, dec) AS'
                             ' "_healpix_29" FROM patch_rows', path,
                             order_by='"_healpix_29"', cursor=cur)
    meta = TableMeta("demo", "patch", SKY_COLUMNS, nrows=len(ra), ra_column="ra",
                     dec_column="dec", healpix_column=HEALPIX_COLUMN, path=path)
    patch = publish_partitioned(e.store, meta, PartitionOptions(
        max_rows=500, highest_order=8, margin_arcsec=10))
    monkeypatch.setattr(hats, "XMATCH_MAX_PARTITIONS", 10**6)
    monkeypatch.setattr(hats, "XMATCH_MAX_FRACTION", 2.0)
    r_deg = 8 / 3600
    ra2, dec2 = _moved(ra, dec, r_deg, 6)
    outside = healpix_index(ra2, dec2, 5)[0] != cell
    t, found = _upload_match(sky, patch, ra2, dec2, r_deg)
    assert any("partition by partition" in n for n in t.notes), t.notes
    expected = _brute_pairs(ra, dec, ra2, dec2, r_deg)
    assert found == expected
    assert sum(1 for _, j in expected if outside[j]) > 50  # pairs of outside positions
    # only positions outside: no partition holds one, their cells' partitions are read
    t, found = _upload_match(sky, patch, ra2[outside], dec2[outside], r_deg)
    assert any("partition by partition" in n for n in t.notes), t.notes
    assert found == _brute_pairs(ra, dec, ra2[outside], dec2[outside], r_deg) and found


def _part_of(sky, ra, dec) -> np.ndarray:
    """The partition (its index in the sorted partitions) of each position."""
    from taphouse.catalogue.healpix import healpix_index

    idx, _ = healpix_index(np.asarray(ra), np.asarray(dec))
    return np.searchsorted(partitions(sky.part.path).highs, idx, side="left")


def test_partition_files_chooses_the_partitions_ranges_touch(sky):
    path = sky.part.path
    parts = partitions(path)
    lo = int(parts.lows[3])
    assert partition_files(path, [(lo + 1, lo + 2)]) == [parts.files[3]]
    assert partition_files(path, [(int(parts.highs[2]), int(parts.lows[4]))]) == list(
        parts.files[2:5])
    assert partition_files(path, [(lo, lo), (int(parts.lows[7]), int(parts.lows[7]))]) == [
        parts.files[3], parts.files[7]]
    # a range in no partition (an empty cell): one file, which the range filter then
    # reads nothing from (a relation over no file would be an error)
    gaps = [i for i in range(len(parts.files) - 1) if parts.lows[i + 1] > parts.highs[i] + 1]
    if gaps:
        g = int(parts.highs[gaps[0]]) + 1
        assert len(partition_files(path, [(g, g)])) == 1
    before = int(parts.lows[0]) - 1
    if before >= 0:
        assert partition_files(path, [(0, before)]) == [parts.files[0]]


def test_margin_is_exact(sky):
    """Brute force: the margin of each partition holds exactly the rows of other
    partitions within the threshold of it, in the crowds at RA 0/360, the poles and a
    base-cell seam (distances to the partition's boundary sampled
    every 2 arcsec with a KD-tree; rows within 0.1 arcsec of the threshold either way)."""
    import pyarrow.parquet as pq
    from cdshealpix.nested import vertices
    from scipy.spatial import cKDTree

    from taphouse.catalogue.hats import (
        cell_size_arcsec,
        margin,
        margin_order,
        max_margin_arcsec,
        pixel_range,
    )

    m = margin(sky.part.path)
    assert m is not None and m.arcsec == 10
    xyz = _xyz(sky.ra, sky.dec)
    hpx = _hpx29(sky.ra, sky.dec)
    kept = dropped = 0
    for f, mf in zip(partitions(sky.part.path).files, m.files, strict=True):
        k = int(f.split("Norder=")[1].split("/")[0])
        n = int(f.split("Npix=")[1].split(".")[0])
        lo, hi = pixel_range(k, n)
        step = math.ceil(cell_size_arcsec(k) / 2)
        lon, lat = vertices(np.array([n], dtype=np.uint64), k, step=step)
        tree = cKDTree(_xyz(np.asarray(lon.deg).ravel(), np.asarray(lat.deg).ravel()))
        chord, _ = tree.query(xyz, distance_upper_bound=2 * math.sin(math.radians(20 / 3600) / 2))
        dist = np.degrees(2 * np.arcsin(np.clip(chord / 2, 0, 1))) * 3600  # inf: far
        outside = (hpx < lo) | (hpx > hi)
        near = set(np.flatnonzero(outside & (dist <= 10 - 0.1)).tolist())
        got = set(pq.read_table(mf, columns=["id"])["id"].to_pylist()) if mf else set()
        assert near <= got, sorted(near - got)[:5]
        assert all(outside[i] and dist[i] <= 10 + 0.1 for i in got)
        kept += len(got)
        dropped += int((outside & (dist > 10 + 0.1) & (dist < 20)).sum())
    assert kept > 500 and dropped > 500, (kept, dropped)  # the ring had those too
    assert margin_order(10, 8) >= 8 and max_margin_arcsec(8) > 10


def _xyz(ra, dec) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def _hpx29(ra, dec) -> np.ndarray:
    from taphouse.catalogue.healpix import healpix_index

    idx, _ = healpix_index(np.asarray(ra), np.asarray(dec))
    return np.asarray(idx, dtype=np.int64)
