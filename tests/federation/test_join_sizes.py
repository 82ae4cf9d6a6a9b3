"""The join by size: the local side's own WHERE terms count before it is called too
large to ship; a remote table small enough (by its VOSI row count) is fetched once
instead of uploading to it; the refusals name the side too large and how to narrow it;
EXPLAIN shows the estimates."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa
import pytest
from astropy.io.votable import parse_single_table
from federation_helpers import PASSWORD, XMATCH, audit_queries, infos_of, sync
from standard_tap import StandardTap

FAR = XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600.")


def rows(response: Any) -> list[tuple]:
    assert response.status_code == 200, response.text
    table = parse_single_table(io.BytesIO(response.content)).to_table()
    return sorted(tuple(r) for r in table.as_array().tolist())


def explain(here: Any, query: str) -> httpx.Response:
    return httpx.post(here.url + "/api/explain", timeout=60, auth=("alice", PASSWORD),
                      headers={"X-Taphouse": "tests"}, json={"query": query})


@pytest.fixture
def upload_max_100(here: Any) -> Iterator[None]:
    """This service ships at most 100 local rows (alice's targets have 300)."""
    service = here.platform.query_service
    settings = service.settings
    service.settings = dataclasses.replace(settings, federation_upload_max_rows=100)
    yield
    service.settings = settings


def uploads_received(far: Any) -> int:
    return sum("TAP_UPLOAD" in q for q in audit_queries(far, 500))


def test_the_local_sides_own_terms_count_before_it_is_too_large(
        here: Any, far: Any, upload_max_100: None) -> None:
    """300 targets, at most 100 shipped: with a WHERE term leaving fewer than 100, the
    join uploads them (before: refused from the table's 300 rows, with advice to narrow
    what was already narrowed)."""
    n = rows(sync(here, "alice", "SELECT COUNT(*) AS n FROM mydb.targets WHERE hip < 500"))
    assert 10 < n[0][0] < 100
    query = FAR + " WHERE t.hip < 500"
    r = sync(here, "alice", query)
    got = rows(r)
    infos = infos_of(r)
    assert infos["FEDERATION"] == "upload" and infos["UPLOAD_ROWS"] == str(n[0][0]), infos
    want = rows(sync(here, "alice", query.replace("far.hipparcos.hip2", "hipparcos.hip2")))
    assert got == want and len(want) >= n[0][0]


def test_a_local_side_too_large_after_its_terms_is_named(
        here: Any, far: Any, upload_max_100: None) -> None:
    before = uploads_received(far)
    r = sync(here, "alice", FAR + " WHERE t.hip < 100000")
    assert r.status_code == 400, r.text
    assert "the local side is too large: user_alice.targets has more than 100 rows after" \
        " its own WHERE terms" in r.text and "Narrow it with a WHERE term" in r.text, r.text
    assert uploads_received(far) == before


def test_both_sides_too_large_names_both_and_how_to_narrow(
        here: Any, far: Any, upload_max_100: None) -> None:
    before = uploads_received(far)
    r = sync(here, "alice", FAR)
    assert r.status_code == 400, r.text
    text = r.text
    assert "the remote side is too large: far.hipparcos.hip2 has about 117955 rows" in text
    assert "user_alice.targets has 300 rows, more than the 100 this service uploads" in text
    assert "Narrow the remote side with a WHERE term on its own columns" in text
    assert "or the local side with a WHERE term on its columns" in text, text
    assert uploads_received(far) == before
    # EXPLAIN says the same before anything runs.
    e = explain(here, FAR)
    assert e.status_code == 400 and "the remote side is too large" in e.text, e.text


@pytest.fixture
def small(here: Any) -> Iterator[StandardTap]:
    """A standard TAP service accepting uploads whose cat.stars holds 40 Hipparcos stars
    (fewer than alice's 300 targets): registered as ``smallstd``."""
    r = sync(here, None, "SELECT TOP 40 hip AS id, ra, dec, hpmag AS mag FROM hipparcos.hip2"
             " WHERE dec BETWEEN 10 AND 30 ORDER BY hip", RESPONSEFORMAT="parquet")
    assert r.status_code == 200, r.text
    import pyarrow.parquet as pq

    stars: pa.Table = pq.read_table(io.BytesIO(r.content)).replace_schema_metadata(None)
    service = StandardTap(stars, upload_rows=1000, maxrec_hard=10_000).start()
    here.platform.remotes.add("smallstd", service.url)
    yield service
    here.platform.remotes.remove("smallstd")
    service.stop()


def test_a_small_remote_table_is_pulled_once(here: Any, small: StandardTap) -> None:
    query = ("SELECT t.hip AS mine, r.id AS theirs, r.mag FROM mydb.targets AS t JOIN"
             " smallstd.cat.stars AS r ON 1=CONTAINS(POINT(t.ra, t.dec),"
             " CIRCLE(r.ra, r.dec, 1/3600.))")
    e = explain(here, query)
    assert e.status_code == 200, e.text
    remote, _local = e.json()["parts"]
    assert remote["strategy"] == "pull"
    assert remote["estimates"]["remote_rows"] == 40 and remote["estimates"]["local_rows"] == 300
    r = sync(here, "alice", query)
    got = rows(r)
    assert infos_of(r)["FEDERATION"] == "pull"
    (job,) = small.jobs  # one request, nothing uploaded although it accepts uploads
    assert not job.uploads and job.adql.startswith("SELECT r.mag, r.id, r.ra, r.\"dec\"")
    ids = [x[0] for x in rows(sync(here, None, "SELECT TOP 40 hip FROM hipparcos.hip2"
                                   " WHERE dec BETWEEN 10 AND 30 ORDER BY hip"))]
    want = rows(sync(here, "alice", (
        "SELECT t.hip AS mine, r.hip AS theirs, r.hpmag AS mag FROM mydb.targets AS t"
        " JOIN hipparcos.hip2 AS r ON 1=CONTAINS(POINT(t.ra, t.dec),"
        f" CIRCLE(r.ra, r.dec, 1/3600.)) WHERE r.hip <= {max(ids)}")))
    assert got == want and len(want) == 40
