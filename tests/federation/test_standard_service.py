"""A standard TAP service that is not taphouse as the remote (async only, TABLEDATA or
BINARY answers, its own MAXREC and upload row limits, uploads refusable): what the
platform ships to it is read from its own job records."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from astropy.io.votable import parse_single_table
from federation_helpers import XMATCH, infos_of, sync
from standard_tap import StandardTap

#: Stars of the demo Hipparcos table in the targets' sky (dec 10..30): the service's
#: cat.stars (with hip as its id).
STARS = ("SELECT hip AS id, ra, dec, hpmag AS mag FROM hipparcos.hip2"
         " WHERE dec BETWEEN 10 AND 30 AND ra < 60")


def rows(response: Any) -> list[tuple]:
    table = parse_single_table(io.BytesIO(response.content)).to_table()
    return sorted(tuple(r) for r in table.as_array().tolist())


@pytest.fixture(scope="module")
def stars(here: Any) -> pa.Table:
    tr = sync(here, None, STARS, RESPONSEFORMAT="parquet", MAXREC="1000000")
    assert tr.status_code == 200, tr.text
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(tr.content)).replace_schema_metadata(None)


@pytest.fixture
def std(here: Any, stars: pa.Table, request: pytest.FixtureRequest) -> Iterator[StandardTap]:
    options = getattr(request, "param", {})
    service = StandardTap(stars, **options).start()
    name = "std" + re.sub(r"\W", "", request.node.name)[-12:].lower()
    here.platform.remotes.add(name, service.url)
    service.name = name  # type: ignore[attr-defined]
    yield service
    here.platform.remotes.remove(name)
    service.stop()


def local_answer(here: Any, query: str) -> list[tuple]:
    r = sync(here, "alice", query)
    assert r.status_code == 200, r.text
    return rows(r)


@pytest.mark.parametrize("std", [{"upload_rows": 40, "maxrec_hard": 1000,
                                  "serialization": "binary"}], indirect=True)
def test_upload_join_in_blocks_of_its_row_limit(here: Any, std: StandardTap) -> None:
    query = (f"SELECT t.hip AS mine, r.id AS theirs, r.mag FROM mydb.targets AS t JOIN"
             f" {std.name}.cat.stars AS r ON 1=CONTAINS(POINT(t.ra, t.dec),"  # type: ignore[attr-defined]
             " CIRCLE(r.ra, r.dec, 1/3600.))")
    r = sync(here, "alice", query)
    assert r.status_code == 200, r.text
    uploads = [j.uploads["taphouse_block"] for j in std.jobs if j.uploads]
    # Blocks of at most its 40 rows, only the key and the positions, every target once.
    assert len(uploads) >= 8 and all(len(u) <= 40 for u in uploads)
    assert all(u.colnames == ["taphouse_key", "ra", "dec"] for u in uploads)
    assert sum(len(u) for u in uploads) == 300
    assert all(j.phase == "ARCHIVED" for j in std.jobs)  # async only; every job deleted
    want = local_answer(here, (
        "SELECT t.hip AS mine, r.hip AS theirs, r.hpmag AS mag FROM mydb.targets AS t"
        " JOIN hipparcos.hip2 AS r ON 1=CONTAINS(POINT(t.ra, t.dec),"
        " CIRCLE(r.ra, r.dec, 1/3600.)) WHERE r.ra < 60"))
    assert rows(r) == want and len(want) > 10


@pytest.mark.parametrize("std", [{"upload_rows": None, "maxrec_hard": 100000}],
                         indirect=True)
def test_a_remote_refusing_uploads_is_pulled_when_small(here: Any, std: StandardTap) -> None:
    query = XMATCH.format(remote=f"{std.name}.cat.stars",  # type: ignore[attr-defined]
                          radius="1/3600.").replace("r.hip AS", "r.id AS").replace(
                              "r.hpmag", "r.mag")
    r = sync(here, "alice", query + " WHERE r.mag < 9")
    assert r.status_code == 200, r.text
    assert b'name="FEDERATION" value="pull"' in r.content
    (job,) = std.jobs
    assert not job.uploads
    assert job.adql == 'SELECT r.mag, r.id, r.ra, r."dec" FROM cat.stars AS r WHERE r.mag < 9'
    want = local_answer(here, (
        "SELECT t.hip AS mine, r.hip AS theirs, r.hpmag AS mag FROM mydb.targets AS t"
        " JOIN hipparcos.hip2 AS r ON 1=CONTAINS(POINT(t.ra, t.dec),"
        " CIRCLE(r.ra, r.dec, 1/3600.)) WHERE r.ra < 60 AND r.hpmag < 9"))
    assert rows(r) == want and len(want) > 3


@pytest.mark.parametrize("std", [{"upload_rows": None, "maxrec_hard": 500}], indirect=True)
def test_too_large_on_both_sides_is_a_clear_error(here: Any, std: StandardTap) -> None:
    query = XMATCH.format(remote=f"{std.name}.cat.stars",  # type: ignore[attr-defined]
                          radius="1/3600.").replace("r.hip AS", "r.id AS").replace(
                              "r.hpmag", "r.mag")
    r = sync(here, "alice", query)
    assert r.status_code == 400
    assert "the remote side is too large" in r.text
    assert "accepts no uploads" in r.text and "WHERE term" in r.text, r.text
    assert all(not j.uploads for j in std.jobs)


@pytest.mark.parametrize("std", [{"upload_rows": None, "maxrec_hard": 100000}],
                         indirect=True)
def test_a_left_join_by_pull(here: Any, std: StandardTap) -> None:
    query = (f"SELECT t.hip AS mine, r.id AS theirs FROM mydb.targets AS t LEFT JOIN"
             f" {std.name}.cat.stars AS r ON 1=CONTAINS(POINT(t.ra, t.dec),"  # type: ignore[attr-defined]
             " CIRCLE(r.ra, r.dec, 1/3600.)) AND r.mag < 8")
    r = sync(here, "alice", query)
    assert r.status_code == 200, r.text
    (job,) = std.jobs
    assert job.adql.endswith("FROM cat.stars AS r WHERE r.mag < 8")
    got = parse_single_table(io.BytesIO(r.content)).to_table()
    want = parse_single_table(io.BytesIO(sync(here, "alice", (
        "SELECT t.hip AS mine, r.hip AS theirs FROM mydb.targets AS t LEFT JOIN"
        " hipparcos.hip2 AS r ON 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, 1/3600.))"
        " AND r.hpmag < 8 AND r.ra < 60")).content)).to_table()
    assert len(got) == len(want) >= 300
    assert sorted(map(str, got["theirs"])) == sorted(map(str, want["theirs"]))


WIDE = ("SELECT t.hip AS mine, r.id AS theirs FROM mydb.targets AS t JOIN {name}.cat.stars"
        " AS r ON 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, {radius}))"
        " WHERE t.hip < 3000")


@pytest.mark.parametrize("std", [{"upload_rows": 40, "maxrec_hard": 30}], indirect=True)
def test_its_own_maxrec_overflow_halves_the_block(here: Any, std: StandardTap) -> None:
    """Blocks of its 40-row upload limit match more stars at 0.5 degrees than its MAXREC
    hard limit (30): its TABLEDATA answers say OVERFLOW, each such block is halved and
    sent again, and the answer equals the crossmatch done locally."""
    r = sync(here, "alice", WIDE.format(name=std.name, radius="0.5"))  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    infos = infos_of(r)
    assert int(infos["UPLOAD_HALVINGS"]) >= 1, infos
    assert any(j.overflow for j in std.jobs) and all(j.maxrec == 30 for j in std.jobs)
    # An answer of exactly its hard limit may be cut without OVERFLOW said: halved too.
    joined = [j for j in std.jobs if j.rows < 30]
    assert sum(len(j.uploads["taphouse_block"]) for j in joined) == int(infos["UPLOAD_ROWS"])
    want = local_answer(here, WIDE.format(name="", radius="0.5").replace(
        ".cat.stars", "hipparcos.hip2").replace("r.id", "r.hip")
        + " AND r.ra < 60 AND r.dec BETWEEN 10 AND 30")
    assert rows(r) == want and len(want) > 60


@pytest.mark.parametrize("std", [{"upload_rows": 40, "maxrec_hard": 30}], indirect=True)
def test_one_row_past_its_maxrec_fails_naming_it(here: Any, std: StandardTap) -> None:
    r = sync(here, "alice", WIDE.format(name=std.name, radius="6"))  # type: ignore[attr-defined]
    assert r.status_code == 400, r.text
    assert "(its limit: MAXREC 30) for a single row of user_alice.targets" in r.text, r.text
