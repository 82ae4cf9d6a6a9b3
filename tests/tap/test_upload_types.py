"""Uploaded column types that VOTable cannot hold as they are, over real HTTP: unsigned
64-bit integers past 2**63 and BLOBs (Arrow ``binary``), in every VOTable serialisation;
and a Parquet upload whose dictionary strings decode to far more than its size."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io.votable import parse

FORMATS = ["votable", "votable/b2", "votable/td"]


def _parquet(table: pa.Table, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


def _query(server: Any, query: str, upload: bytes, fmt: str) -> httpx.Response:
    return httpx.post(server.tap + "/sync", timeout=120, data={
        "LANG": "ADQL", "QUERY": query, "UPLOAD": "t1,param:t1", "RESPONSEFORMAT": fmt},
        files={"t1": ("t1.parquet", upload, "application/vnd.apache.parquet")})


def _status(body: bytes) -> str:
    vot = parse(io.BytesIO(body))
    infos = list(vot.resources[0].infos) + list(vot.resources[0].tables[0].infos)
    return [i.value for i in infos if i.name == "QUERY_STATUS"][-1]  # the trailing one


@pytest.mark.parametrize("fmt", FORMATS)
def test_uint64_past_2_63_is_written_exactly(demo_server: Any, fmt: str) -> None:
    big = [0, 2**63 - 1, 2**63, 2**64 - 1, None]
    upload = _parquet(pa.table({"i": pa.array(range(5), pa.int32()),
                                "big": pa.array(big, pa.uint64()),
                                "small": pa.array([1, 2, 3, None, 5], pa.uint64())}))
    r = _query(demo_server, "SELECT i, big, small FROM TAP_UPLOAD.t1 ORDER BY i", upload, fmt)
    assert r.status_code == 200, r.text
    assert _status(r.content) == "OK"
    table = parse(io.BytesIO(r.content)).get_first_table()
    fields = {f.name: f for f in table.fields}
    # values past 2**63 cannot be a VOTable long: exact decimal text, said in the metadata
    assert fields["big"].datatype == "char"
    assert "unsigned" in (fields["big"].description or "")
    got = table.to_table()
    assert [None if v is None or v == "" else int(v)
            for v in got["big"].filled("").tolist()] == big
    # an unsigned column whose values all fit stays a number
    assert fields["small"].datatype == "long"
    assert got["small"].tolist()[:3] == [1, 2, 3] and got["small"].mask[3]


@pytest.mark.parametrize("fmt", FORMATS)
def test_blob_columns_are_written(demo_server: Any, fmt: str) -> None:
    blobs = [b"", b"\x00\x01\xff", None, bytes(range(256))]
    upload = _parquet(pa.table({"i": pa.array(range(4), pa.int32()),
                                "b": pa.array(blobs, pa.binary())}))
    r = _query(demo_server, "SELECT i, b FROM TAP_UPLOAD.t1 ORDER BY i", upload, fmt)
    assert r.status_code == 200, r.text
    assert _status(r.content) == "OK"
    table = parse(io.BytesIO(r.content)).get_first_table()
    assert table.fields[1].datatype == "unsignedByte" and table.fields[1].arraysize == "*"
    got = [bytes(np.asarray(v, dtype="u1")) for v in table.array["b"]]
    assert got[0] == b"" and got[1] == blobs[1] and got[3] == blobs[3]


@pytest.mark.parametrize("store_schema", [False, True])
def test_parquet_dictionary_bomb_is_refused_before_it_expands(demo_server: Any,
                                                              store_schema: bool) -> None:
    # 300 rows referencing one 1 MB dictionary string: a few kB compressed, 300 MB decoded
    huge = "x" * 1_000_000
    table = pa.table({"s": pa.DictionaryArray.from_arrays(
        pa.array([0] * 300, pa.int32()), pa.array([huge]))})
    upload = _parquet(table, compression="zstd", store_schema=store_schema)
    assert len(upload) < 100_000
    r = _query(demo_server, "SELECT COUNT(*) FROM TAP_UPLOAD.t1", upload, "votable")
    assert r.status_code == 400, r.text
    assert "decoded" in r.text and "t1" in r.text


def test_categorical_parquet_upload_is_read_as_text(demo_server: Any) -> None:
    # pandas categoricals arrive as Arrow dictionaries in the stored schema
    table = pa.table({"i": pa.array([1, 2, 3], pa.int32()),
                      "s": pa.array(["a", "b", "a"]).dictionary_encode()})
    r = _query(demo_server, "SELECT i, s FROM TAP_UPLOAD.t1 ORDER BY i", _parquet(table),
               "votable")
    assert r.status_code == 200, r.text
    got = parse(io.BytesIO(r.content)).get_first_table().to_table()
    assert got["s"].tolist() == ["a", "b", "a"]
