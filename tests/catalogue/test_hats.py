"""``taphouse ingest --partitioned``: the HATS layout opened by ``hats`` and ``lsdb`` with
the same rows, the margin catalogue, version directories in the store (garbage
collection, orphans, rollback, quotas' byte counts, backup and restore), and one TAP
endpoint serving a partitioned and a single-file table with the same answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taphouse.catalogue.hats import (
    CATALOG_DIR,
    DUCKDB_COPY,
    PartitionOptions,
    directory_size,
    partitions,
    pixel_range,
)
from taphouse.catalogue.ingest import ingest_files
from taphouse.catalogue.model import HEALPIX_COLUMN, CatalogueError
from taphouse.catalogue.store import CatalogueStore, Retention
from taphouse.catalogue.synth import write_synthetic

OPTIONS = PartitionOptions(max_rows=400, highest_order=7, margin_arcsec=10)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A directory of two synthetic Parquet files (6,000 rows) and a stray text file."""
    folder = tmp_path_factory.mktemp("inputs")
    write_synthetic(folder / "a.parquet", 4_000, seed=1)
    table = pq.read_table(folder / "a.parquet")
    write_synthetic(folder / "b.parquet", 2_000, seed=2)
    other = pq.read_table(folder / "b.parquet")
    # distinct ids across the two files
    other = other.set_column(0, "source_id", pa.array(
        np.asarray(other["source_id"]) + 10**12))
    pq.write_table(other, folder / "b.parquet")
    (folder / "README.txt").write_text("not a table")
    assert table.num_rows == 4_000
    return folder


def _source(inputs: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(inputs / "a.parquet"),
                             pq.read_table(inputs / "b.parquet")])


def test_cli_ingest_partitioned_directory(run, inputs, tmp_path):
    status, out, err = run("ingest", str(inputs), "-d", "survey", "-t", "stars",
                           "--partitioned", "--partition-rows", "400", "--highest-order", "7",
                           "--quiet")
    assert status == 0, err
    assert "survey.stars: 6,000 rows" in out and "partitions" in out
    from taphouse.metadata import MetadataDB

    meta = MetadataDB(tmp_path / "data" / "meta.sqlite")
    try:
        table = CatalogueStore(meta, tmp_path / "data" / "tables").table("survey", "stars")
    finally:
        meta.close()
    assert table is not None and table.path.is_dir() and table.path.suffix == ".hats"
    assert table.nbytes == directory_size(table.path)
    root = table.path
    for name in ("collection.properties", f"{CATALOG_DIR}/properties",
                 f"{CATALOG_DIR}/hats.properties", f"{CATALOG_DIR}/partition_info.csv",
                 f"{CATALOG_DIR}/dataset/_metadata", f"{CATALOG_DIR}/dataset/_common_metadata",
                 "margin_10arcs/properties", "margin_10arcs/partition_info.csv"):
        assert (root / name).is_file(), name
    parts = partitions(root).files
    assert len(parts) > 10
    for f in parts:
        order = int(f.split("Norder=")[1].split("/")[0])
        npix = int(f.split("Npix=")[1].split(".")[0])
        assert f"/Dir={npix // 10000 * 10000}/" in f
        # every row lies in its partition, sorted by the index, one index column
        t = pq.read_table(f)
        idx = np.asarray(t[HEALPIX_COLUMN])
        lo, hi = pixel_range(order, npix)
        assert (idx >= lo).all() and (idx <= hi).all() and (np.diff(idx) >= 0).all()
        assert t.num_rows <= 400 or order == 7
        assert "healpix_index" not in t.column_names and "Norder" not in t.column_names
    # mode: private like every version file
    assert (root.stat().st_mode & 0o777) == 0o700
    assert (os.stat(parts[0]).st_mode & 0o777) == 0o600


def test_refusals(run, inputs, tmp_path):
    status, _, err = run("ingest", str(inputs / "a.parquet"), "-d", "s", "-t", "t",
                         "--partitioned", "--margin", "600", "-q")
    assert status == 2 and "--margin must be" in err and "arcsec" in err
    status, _, err = run("ingest", str(inputs / "a.parquet"), "-d", "s", "-t", "t",
                         "--partition-rows", "5", "-q")
    assert status == 2 and "need --partitioned" in err
    status, _, err = run("ingest", str(inputs / "a.parquet"), "-d", "s", "-t", "t",
                         "--duckdb-copy", "-q")
    assert status == 2 and "--duckdb-copy need --partitioned" in err
    (tmp_path / "nopos.csv").write_text("a,b\n1,2\n")
    status, _, err = run("ingest", str(tmp_path / "nopos.csv"), "-d", "s", "-t", "t",
                         "--partitioned", "-q")
    assert status == 2 and "needs positions" in err
    (tmp_path / "reserved.csv").write_text("ra,dec,npix\n1,2,3\n")
    status, _, err = run("ingest", str(tmp_path / "reserved.csv"), "-d", "s", "-t", "t",
                         "--partitioned", "-q")
    assert status == 2 and "reserved" in err and "npix" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run("ingest", str(empty), "-d", "s", "-t", "t", "-q")
    assert status == 2 and "no table files" in err


def test_cli_ingest_with_a_duckdb_copy(run, inputs, tmp_path):
    status, out, err = run("ingest", str(inputs), "-d", "survey", "-t", "stars",
                           "--partitioned", "--partition-rows", "400", "--duckdb-copy", "-q")
    assert status == 0, err
    assert "partitions (HATS layout) and a DuckDB copy" in out
    from taphouse.metadata import MetadataDB

    meta = MetadataDB(tmp_path / "data" / "meta.sqlite")
    try:
        table = CatalogueStore(meta, tmp_path / "data" / "tables").table("survey", "stars")
    finally:
        meta.close()
    copy = table.path / DUCKDB_COPY
    assert copy.is_file() and (os.stat(copy).st_mode & 0o777) == 0o600
    assert table.nbytes == directory_size(table.path) > copy.stat().st_size
    import duckdb

    with duckdb.connect(str(copy), read_only=True) as con:
        ids = con.execute("SELECT source_id FROM data ORDER BY source_id").fetchall()
    assert [i for (i,) in ids] == sorted(_source(inputs)["source_id"].to_pylist())
    assert not list((tmp_path / "data" / "tmp").glob("**/*.duckdb"))


@pytest.fixture(scope="module")
def written(tmp_path_factory, inputs):
    """A partitioned version with a DuckDB copy (HATS readers must not mind it)."""
    from taphouse.metadata import MetadataDB

    root = tmp_path_factory.mktemp("hatsdata")
    meta = MetadataDB(root / "meta.sqlite")
    store = CatalogueStore(meta, root / "tables")
    table = ingest_files(store, [inputs], "survey", "stars", partitioned=PartitionOptions(
        max_rows=400, highest_order=7, margin_arcsec=10, duckdb_copy=True))
    assert (table.path / DUCKDB_COPY).is_file()
    yield table
    meta.close()


def _by_id(rows: pa.Table) -> dict[int, tuple[float, float]]:
    return {int(i): (float(r), float(d)) for i, r, d in zip(
        rows["source_id"].to_pylist(), rows["ra"].to_pylist(), rows["dec"].to_pylist(),
        strict=True)}


def test_hats_opens_our_output_with_the_same_rows(written, inputs):
    import hats

    collection = hats.read_hats(written.path)
    catalog = collection.main_catalog
    assert catalog.catalog_info.total_rows == 6_000
    assert catalog.catalog_info.ra_column == "ra"
    assert catalog.catalog_info.healpix_column == HEALPIX_COLUMN
    assert len(catalog.get_healpix_pixels()) == len(partitions(written.path).files)
    assert collection.default_margin == "margin_10arcs"
    margin = hats.read_hats(written.path / "margin_10arcs")
    assert margin.catalog_info.margin_threshold == 10.0
    rows = pq.ParquetDataset(str(written.path / CATALOG_DIR / "dataset")).read()
    assert _by_id(rows) == _by_id(_source(inputs))


@pytest.mark.slow
def test_lsdb_opens_our_output_with_the_same_rows(written, inputs):
    import lsdb

    cat = lsdb.open_catalog(written.path)
    assert cat.margin is not None
    df = cat.compute()
    assert len(df) == 6_000
    got = {int(i): (float(r), float(d)) for i, r, d in zip(df["source_id"], df["ra"],
                                                            df["dec"], strict=True)}
    assert got == _by_id(_source(inputs))
    # a cone through LSDB agrees with our own
    cone = cat.cone_search(ra=120.0, dec=-30.0, radius_arcsec=3600 * 8).compute()
    src = _source(inputs)
    ra, dec = np.asarray(src["ra"]), np.asarray(src["dec"])
    d = np.degrees(np.arccos(np.clip(
        np.sin(np.radians(dec)) * np.sin(np.radians(-30))
        + np.cos(np.radians(dec)) * np.cos(np.radians(-30)) * np.cos(np.radians(ra - 120)),
        -1, 1)))
    assert len(cone) == int((d <= 8).sum()) > 0


# --- the store: version directories ----------------------------------------------------
def _store(tmp_path: Path, retention: Retention | None = None):
    from taphouse.metadata import MetadataDB

    meta = MetadataDB(tmp_path / "data" / "meta.sqlite")
    return meta, CatalogueStore(meta, tmp_path / "data" / "tables", retention)


def test_directory_versions_replace_gc_rollback(tmp_path, inputs):
    meta, store = _store(tmp_path, Retention(grace=0.0, catalogue=3600.0))
    try:
        first = ingest_files(store, [inputs / "a.parquet"], "s", "t", partitioned=OPTIONS)
        second = ingest_files(store, [inputs], "s", "t", partitioned=OPTIONS)
        assert first.path.is_dir() and second.path.is_dir() and first.path != second.path
        assert store.collect_garbage() == 0 and first.path.is_dir()  # retained an hour
        versions = store.versions("s", "t")
        assert [v.current for v in versions] == [True, False]
        assert all(v.exists for v in versions)
        held = store.holding("s")
        assert held.nbytes == directory_size(first.path) + directory_size(second.path)
        assert held.retained_bytes == directory_size(first.path)
        # rollback to the directory version, then forward to a single-file one
        back = store.restore_version("s", "t", first.version_id)
        assert back.path == first.path and back.nrows == 4_000
        flat = ingest_files(store, [inputs / "a.parquet"], "s", "t")
        assert flat.path.is_file()
        store.retention = Retention(grace=0.0, catalogue=0.0)
        assert store.collect_garbage() == 2
        assert not first.path.exists() and not second.path.exists() and flat.path.is_file()
    finally:
        meta.close()


def test_orphan_directory_removed_and_links_never_followed(tmp_path, inputs):
    meta, store = _store(tmp_path, Retention(grace=0.0))
    try:
        table = ingest_files(store, [inputs / "b.parquet"], "s", "t", partitioned=OPTIONS)
        folder = table.path.parent
        # a version directory no version names (a writer killed before publishing)
        orphan = folder / "v1_00000000000a.hats"
        (orphan / "catalog").mkdir(parents=True)
        (orphan / "catalog" / "x.parquet").write_bytes(b"x")
        # a link to a directory outside: never followed, never deleted through
        outside = tmp_path / "precious"
        outside.mkdir()
        (outside / "keep.parquet").write_bytes(b"k")
        link = folder / "v1_00000000000b.hats"
        link.symlink_to(outside)
        store.orphan_age = 0.0
        old = time.time() - 10
        os.utime(orphan, (old, old))
        removed = store.collect_garbage()
        assert removed >= 1 and not orphan.exists()
        assert (outside / "keep.parquet").is_file()
        assert table.path.is_dir()  # the current version stays
    finally:
        meta.close()


def test_failed_partitioned_ingest_leaves_nothing(tmp_path, inputs):
    meta, store = _store(tmp_path)
    try:
        ingest_files(store, [inputs / "a.parquet"], "s", "t", partitioned=OPTIONS)
        bad = tmp_path / "bad.csv"
        bad.write_text("ra,dec\n10,10\n400,10\n")
        with pytest.raises(CatalogueError, match="out of range"):
            ingest_files(store, [bad], "s", "t", partitioned=OPTIONS)
        versions = list((tmp_path / "data" / "tables" / "s" / "t").iterdir())
        assert len(versions) == 1 and store.table("s", "t").nrows == 4_000
    finally:
        meta.close()


# --- end to end: one TAP endpoint, backup and restore ------------------------------------
def _taphouse(data: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "taphouse.cli", "--data-dir", str(data),
                           "--init", *args], text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


QUERIES = [
    "SELECT COUNT(*) AS n, MAX(source_id) AS s, MIN(dec) AS d FROM {t}",
    "SELECT source_id, ra, dec FROM {t} WHERE 1=CONTAINS(POINT(ra, dec),"
    " CIRCLE(120, -30, 5)) ORDER BY source_id",
    "SELECT source_id FROM {t} WHERE 1=CONTAINS(POINT(ra, dec),"
    " CIRCLE(0.2, 0.1, 3)) ORDER BY source_id",
    "SELECT source_id FROM {t} WHERE 1=CONTAINS(POINT(ra, dec),"
    " POLYGON(10, 10, 30, 10, 30, 25, 10, 25)) ORDER BY source_id",
    "SELECT TOP 5 source_id, phot_g_mean_mag FROM {t} ORDER BY phot_g_mean_mag, source_id",
    "SELECT a.source_id, b.source_id FROM {t} AS a JOIN {t} AS b ON"
    " 1=CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 1.5)) AND a.source_id < b.source_id"
    " ORDER BY a.source_id, b.source_id",
]


@pytest.mark.slow
def test_one_tap_endpoint_serves_both_and_backup_restores(tmp_path, inputs):
    import io

    import httpx
    from astropy.io.votable import parse_single_table

    from servers import start_live

    data = tmp_path / "data"
    _taphouse(data, "ingest", str(inputs), "-d", "survey", "-t", "flat", "-q")
    _taphouse(data, "ingest", str(inputs), "-d", "survey", "-t", "part", "-q",
              "--partitioned", "--partition-rows", "400", "--highest-order", "7")

    def answers(url: str) -> list[list[tuple]]:
        out = []
        with httpx.Client(base_url=url, timeout=120) as c:
            for q in QUERIES:
                pair = []
                for t in ("survey.flat", "survey.part"):
                    r = c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": q.format(t=t)})
                    assert r.status_code == 200, r.text
                    table = parse_single_table(io.BytesIO(r.content)).to_table()
                    pair.append([tuple(row) for row in table.as_array().tolist()])
                assert pair[0] == pair[1], q
                assert pair[0], (q, r.text[-600:])
                out.append(pair[0])
            out.append(uploaded_crossmatch(c, out[1]))
        return out

    def uploaded_crossmatch(c, rows: list[tuple]) -> list[tuple]:
        """The rows of a cone, moved by 2 arcsec, uploaded and matched within 5 arcsec
        (partition by partition with the margin on survey.part)."""
        import numpy as np
        from astropy.table import Table

        up = Table({"uid": np.arange(len(rows)),
                    "pra": np.array([r[1] for r in rows]) + 2 / 3600,
                    "pdec": np.array([r[2] for r in rows])})
        buf = io.BytesIO()
        up.write(buf, format="votable")
        pair = []
        for t in ("survey.flat", "survey.part"):
            q = (f"SELECT u.uid, s.source_id FROM TAP_UPLOAD.up AS u JOIN {t} AS s ON"
                 " 1=CONTAINS(POINT(s.ra, s.dec), CIRCLE(u.pra, u.pdec, 5/3600.))"
                 " ORDER BY u.uid, s.source_id")
            r = c.post("/tap/sync", data={"LANG": "ADQL", "QUERY": q,
                                          "UPLOAD": "up,param:up"},
                       files={"up": ("up.xml", buf.getvalue(), "application/x-votable+xml")})
            assert r.status_code == 200, r.text
            table = parse_single_table(io.BytesIO(r.content)).to_table()
            pair.append([tuple(row) for row in table.as_array().tolist()])
        assert pair[0] == pair[1] and len(pair[0]) >= len(rows), (len(pair[0]), len(rows))
        return pair[0]

    server = start_live(data)
    try:
        first = answers(server.url)
        assert first[0][0][0] == 6_000, first[0]
        assert all(first[1:]), [len(a) for a in first]
        # TAP_SCHEMA lists it like any table, without the internal columns
        with httpx.Client(base_url=server.url, timeout=60) as c:
            r = c.post("/tap/sync", data={"LANG": "ADQL", "QUERY":
                       "SELECT column_name FROM TAP_SCHEMA.columns"
                       " WHERE table_name = 'survey.part'"})
            assert r.status_code == 200, r.text
            names = parse_single_table(io.BytesIO(r.content)).to_table()["column_name"]
            assert "source_id" in list(names)
            assert not {"_th_file", "norder", "npix", "dir"} & set(names)
    finally:
        server.stop()
    backup = tmp_path / "backup"
    _taphouse(data, "backup", str(backup), "--without-jobs")
    restored = tmp_path / "restored"
    _taphouse(tmp_path, "restore", str(backup), str(restored))
    server = start_live(restored)
    try:
        assert answers(server.url) == first
    finally:
        server.stop()
