"""The synthetic Gaia-like catalogue."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from taphouse.catalogue import synth
from taphouse.catalogue.ingest import ingest_files
from taphouse.catalogue.synth import write_synthetic


def test_deterministic_and_chunked(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "CHUNK_ROWS", 3_000)  # several chunks
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    write_synthetic(a, 10_000, seed=7)
    write_synthetic(b, 10_000, seed=7)
    write_synthetic(c, 10_000, seed=8)
    ta, tb, tc = pq.read_table(a), pq.read_table(b), pq.read_table(c)
    assert ta.num_rows == 10_000 and pq.ParquetFile(a).num_row_groups == 4
    assert ta.equals(tb)
    assert not ta.column("ra").equals(tc.column("ra"))
    assert ta.column_names == ["source_id", "ra", "dec", "parallax", "pmra", "pmdec",
                               "phot_g_mean_mag", "bp_rp"]
    ids = ta.column("source_id").to_numpy()
    assert len(np.unique(ids)) == len(ids)


def test_sky_concentrated_towards_galactic_plane(tmp_path):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    path = tmp_path / "s.parquet"
    write_synthetic(path, 20_000)
    t = pq.read_table(path)
    ra, dec = t.column("ra").to_numpy(), t.column("dec").to_numpy()
    assert ra.min() >= 0 and ra.max() < 360 and dec.min() >= -90 and dec.max() <= 90
    b = SkyCoord(ra * u.deg, dec * u.deg).galactic.b.deg
    # an isotropic sky has 17 % of its stars at |b| < 10 deg
    assert np.mean(np.abs(b) < 10) > 0.5
    assert np.mean(np.abs(b) > 30) > 0.1  # and a halo
    g = t.column("phot_g_mean_mag").to_numpy()
    assert 3 <= g.min() and g.max() <= 21 and np.median(g) > 18
    assert 0.1 < t.column("parallax").null_count / t.num_rows < 0.3


def test_metadata_reaches_the_catalogue(store, tmp_path):
    path = tmp_path / "s.parquet"
    write_synthetic(path, 500)
    table = ingest_files(store, [path], "bench", "synthetic")
    assert table.nrows == 500 and (table.ra_column, table.dec_column) == ("ra", "dec")
    pmra = table.column("pmra")
    assert (pmra.unit, pmra.ucd) == ("mas/yr", "pos.pm;pos.eq.ra")
    assert table.column("parallax").unit == "mas"
    assert table.column("source_id").principal
    assert "Synthetic" in table.description


def test_negative_rows_rejected(tmp_path):
    with pytest.raises(ValueError):
        write_synthetic(tmp_path / "x.parquet", -1)
