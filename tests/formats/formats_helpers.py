"""Sample results shared by the format tests."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from taphouse.catalogue.model import ColumnMeta
from taphouse.formats import columns_from_schema

NAN = float("nan")


def sample_batch() -> pa.RecordBatch:
    """Five rows covering nulls, NaN, booleans, XML-special and non-ASCII text, arrays."""
    return pa.record_batch({
        "id": pa.array([1, 2, None, 4, 5], pa.int64()),
        "small": pa.array([1, -2, 3, None, 32767], pa.int16()),
        "mag": pa.array([1.5, NAN, None, -0.25, 1e-7], pa.float32()),
        "ra": pa.array([10.0, 1e300, -5.5, None, 0.1], pa.float64()),
        "flag": pa.array([True, False, None, True, False]),
        "name": pa.array(["a<b&c>", "plain", None, "x,y", 'say "hi"'], pa.string()),
        "city": pa.array(["Zürich", "東京", "", None, "Ørsted"], pa.string()),
        "pos": pa.array([[1.0, 2.0], [3.0, 4.5], None, [5.0, 6.0], [7.0, 8.0]],
                        pa.list_(pa.float64())),
        "poly": pa.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [], None, [0.5], [1.0, 2.0]],
                         pa.list_(pa.float64())),
    })


def sample_columns() -> list[ColumnMeta]:
    cols = columns_from_schema(sample_batch().schema)
    by = {c.name: c for c in cols}
    by["ra"].unit, by["ra"].ucd, by["ra"].description = "deg", "pos.eq.ra;meta.main", "R.A. <J2000>"
    by["mag"].unit, by["mag"].ucd = "mag", "phot.mag"
    by["pos"].arraysize, by["pos"].xtype = "2", "point"
    return cols


def expected_rows() -> list[dict]:
    """The sample as Python values, NaN and null both as None for floats."""
    rows = sample_batch().to_pylist()
    for r in rows:
        for k, v in r.items():
            if isinstance(v, float) and math.isnan(v):
                r[k] = None
    return rows


@pytest.fixture
def batch() -> pa.RecordBatch:
    return sample_batch()


@pytest.fixture
def columns() -> list[ColumnMeta]:
    return sample_columns()


def stilts_csv(path: Path, ifmt: str) -> str:
    """The table at ``path`` as STILTS writes it in CSV."""
    out = subprocess.run(["stilts", "tpipe", f"in={path}", f"ifmt={ifmt}", "omode=out",
                          "ofmt=csv"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def batches_then(items: list, error: Exception | None = None) -> Iterator[pa.RecordBatch]:
    """Yield the batches, then raise ``error`` if given."""
    yield from items
    if error is not None:
        raise error
