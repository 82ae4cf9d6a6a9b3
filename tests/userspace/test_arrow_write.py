"""User tables written from Arrow batches (UserSpace.open_table / write), and one run of
an async query feeding both its result document and its job_<id> table."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pyarrow as pa
import pytest
from astropy.io.votable import parse_single_table
from userspace_helpers import client_for, run_job

from accounts import new_user
from taphouse.auth.identity import Identity
from taphouse.catalogue.model import HEALPIX_COLUMN, ColumnMeta
from taphouse.userspace import UserSpace
from taphouse.userspace.errors import QuotaExceeded, TableConflict, UserSpaceError

COLUMNS = [ColumnMeta("id", "long", ucd="meta.id;meta.main"),
           ColumnMeta("RA", "double", unit="deg", ucd="pos.eq.ra;meta.main"),
           ColumnMeta("Dec", "double", unit="deg", ucd="pos.eq.dec;meta.main"),
           ColumnMeta("mag", "float", unit="mag", ucd="phot.mag", description="G")]
_ids = itertools.count(900_000)


def _batches(n: int, size: int = 400):
    for k in range(0, n, size):
        ids = np.arange(k, min(k + size, n))
        yield pa.record_batch({
            "id": ids, "ra": (ids * 37.7) % 360.0, "dec": ((ids * 13.1) % 170.0) - 85.0,
            "mag": pa.array((ids % 20).astype(np.float32))})


def _space(server, **quota: int) -> tuple[UserSpace, Identity]:
    p = server.platform
    space = UserSpace(p.meta, p.catalogue, p.engine,
                      quota_rows=quota.get("rows", 10**9), quota_bytes=quota.get("bytes", 10**12))
    name = f"arrow{next(_ids)}"
    return space, Identity(username=name, user_id=next(_ids))


def _leftovers(server) -> list[str]:
    tmp = server.platform.engine.temp_dir
    return [f.name for f in tmp.iterdir() if f.name.startswith(("w-", "s-"))]


def test_write_batches_keeps_metadata_and_sorts_by_healpix(demo_server):
    space, who = _space(demo_server)
    table = space.write(who, "cat", _batches(2000), COLUMNS, provenance={"from": "test"})
    assert table.nrows == 2000 and table.healpix_column == HEALPIX_COLUMN
    assert [c.name for c in table.columns] == ["id", "ra", "dec", "mag"]
    assert [(c.unit, c.ucd) for c in table.columns][1:3] == [
        ("deg", "pos.eq.ra;meta.main"), ("deg", "pos.eq.dec;meta.main")]
    assert table.columns[3].description == "G"
    assert table.extra["provenance"]["from"] == "test"
    engine = demo_server.platform.engine
    with engine.cursor() as cur:
        rel = engine.relation(table)
        cells = [r[0] for r in cur.execute(f"SELECT {HEALPIX_COLUMN} FROM {rel}").fetchall()]
        same = cur.execute(f"SELECT count(*) FROM {rel} WHERE {HEALPIX_COLUMN} ="
                           " ivo_healpix_index(29, ra, dec)").fetchone()[0]
    assert cells == sorted(cells)  # stored in HEALPix order
    assert same == 2000  # the index is the one queries compute
    with pytest.raises(TableConflict):
        space.write(who, "cat", _batches(10), COLUMNS)
    appended = space.write(who, "cat", _batches(10), COLUMNS, mode="append")
    assert appended.nrows == 2010
    assert _leftovers(demo_server) == []


def test_quota_stops_the_stream_and_keeps_nothing(demo_server):
    space, who = _space(demo_server, rows=1000)
    pulled = []

    def source():
        for batch in _batches(50_000):
            pulled.append(batch.num_rows)
            yield batch

    with pytest.raises(QuotaExceeded, match="more than 1000 rows"):
        space.write(who, "big", source(), COLUMNS)
    assert sum(pulled) <= 1200  # stopped at the first batch past the room
    assert space.tables(who) == [] and _leftovers(demo_server) == []
    space.write(who, "big", _batches(1000), COLUMNS)  # the lock was let go; fits
    small, who2 = _space(demo_server, bytes=20_000)
    with pytest.raises(QuotaExceeded, match="bytes"):
        small.write(who2, "wide", _batches(200_000, 20_000), COLUMNS)
    assert small.tables(who2) == [] and _leftovers(demo_server) == []


def test_a_failing_source_keeps_nothing(demo_server):
    space, who = _space(demo_server)

    def broken():
        yield from _batches(800)
        raise UserSpaceError("the remote service went away")

    with pytest.raises(UserSpaceError, match="went away"):
        space.write(who, "t", broken(), COLUMNS)
    with pytest.raises(UserSpaceError, match="4 columns"):
        space.write(who, "t", [pa.record_batch({"x": [1]})], COLUMNS)
    assert space.tables(who) == [] and _leftovers(demo_server) == []
    # An empty result is still a table, with its column types.
    empty = space.write(who, "t", pa.Table.from_batches([], schema=next(_batches(1)).schema),
                        COLUMNS)
    assert empty.nrows == 0


def test_async_result_and_job_table_from_one_run(demo_server, monkeypatch):
    engine = demo_server.platform.engine
    runs: list[str] = []
    stream, write_table = engine.stream, engine.write_table

    def counted_stream(cur, sql, *args, **kw):
        runs.append(sql)
        return stream(cur, sql, *args, **kw)

    def counted_write(sql, *args, **kw):
        runs.append(sql)
        return write_table(sql, *args, **kw)

    monkeypatch.setattr(engine, "stream", counted_stream)
    monkeypatch.setattr(engine, "write_table", counted_write)
    user = new_user(demo_server, "one")
    c = client_for(demo_server, user)
    job_id = run_job(c, "SELECT source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright"
                        " WHERE phot_g_mean_mag < 9", MAXREC="40")
    monkeypatch.undo()
    assert len(runs) == 1, runs  # the query ran once; nothing was read back or rewritten
    doc = parse_single_table(io.BytesIO(c.get(f"/tap/async/{job_id}/results/result").content))
    fields = {f.name: (str(f.unit or ""), f.ucd) for f in doc.fields}
    table = demo_server.platform.catalogue.table(f"user_{user}", f"job_{job_id}")
    assert table is not None and table.nrows == 40 == len(doc.array)
    for col in table.columns:  # the same column metadata in both
        assert fields[col.name] == (col.unit or "", col.ucd), col.name
    with engine.cursor() as cur:
        rel = engine.relation(table)
        stored = cur.execute(f"SELECT source_id, {HEALPIX_COLUMN} FROM {rel}").fetchall()
    assert sorted(r[0] for r in stored) == sorted(int(x) for x in doc.array["source_id"])
    cells = [r[1] for r in stored]
    assert cells == sorted(cells)  # no ORDER BY: stored by HEALPix index


def test_ordered_async_result_keeps_its_order(demo_server):
    user = new_user(demo_server, "ord")
    c = client_for(demo_server, user)
    job_id = run_job(c, "SELECT source_id, ra, dec FROM gaia.dr3_bright"
                        " ORDER BY phot_g_mean_mag DESC", MAXREC="25")
    doc = parse_single_table(io.BytesIO(c.get(f"/tap/async/{job_id}/results/result").content))
    table = demo_server.platform.catalogue.table(f"user_{user}", f"job_{job_id}")
    engine = demo_server.platform.engine
    with engine.cursor() as cur:
        ids = [r[0] for r in cur.execute(
            f"SELECT source_id FROM {engine.relation(table)}").fetchall()]
    assert ids == [int(x) for x in doc.array["source_id"]] and len(ids) == 25
