"""Shapes of federated queries: SELECT *, unqualified columns, no local row, DEST into
mydb, a TAP_UPLOAD table joined with a remote's, and what is refused with a message."""

from __future__ import annotations

import io
from typing import Any

import pytest
from astropy.io.votable import parse_single_table
from federation_helpers import XMATCH, audit_queries, sync


def table_of(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return parse_single_table(io.BytesIO(response.content)).to_table()


def test_select_star_and_unqualified_columns(here: Any) -> None:
    t = table_of(sync(here, "alice", "SELECT * FROM mydb.targets AS t JOIN far.hipparcos.hip2"
                      " AS r ON 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, 1/3600.))"
                      " WHERE hpmag < 7 ORDER BY plx"))
    assert "taphouse_key" not in t.colnames
    assert t.colnames[:4] == ["hip", "ra", "dec", "hip_2"] or t.colnames[:3] == [
        "hip", "ra", "dec"], t.colnames
    assert len(t) > 3 and all(m < 7 for m in t["hpmag"])
    assert list(t["plx"]) == sorted(t["plx"])


def test_no_local_row_gives_an_empty_answer_with_columns(here: Any, far: Any) -> None:
    before = sum("TAP_UPLOAD" in q for q in audit_queries(far, 500))
    t = table_of(sync(here, "alice", XMATCH.format(remote="far.hipparcos.hip2",
                                                   radius="1/3600.") + " WHERE t.hip < 0"))
    assert len(t) == 0 and t.colnames == ["mine", "theirs", "hpmag"]
    assert sum("TAP_UPLOAD" in q for q in audit_queries(far, 500)) == before


def test_dest_stores_the_join_in_mydb(here: Any) -> None:
    r = sync(here, "alice", XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600."),
             DEST="mydb.matches", MAXREC="5")
    t = table_of(r)
    assert len(t) == 5
    stored = here.platform.catalogue.table("user_alice", "matches")
    assert stored is not None and stored.nrows >= 300
    sources = stored.extra["provenance"]["source_tables"]
    assert "user_alice.targets" in sources


def test_a_tap_upload_joined_with_a_remote_table(here: Any) -> None:
    first = table_of(sync(here, "alice", "SELECT TOP 3 hip, ra, dec FROM mydb.targets"
                          " ORDER BY hip"))
    lines = ["id,ra,dec"] + [f"{int(h)},{float(ra)!r},{float(de)!r}" for h, ra, de in
                             zip(first["hip"], first["ra"], first["dec"], strict=True)]
    up = ("\n".join(lines) + "\n").encode()
    import httpx
    from federation_helpers import PASSWORD

    r = httpx.post(here.tap + "/sync", auth=("alice", PASSWORD), timeout=300,
                   headers={"X-Taphouse": "tests"},
                   data={"LANG": "ADQL", "UPLOAD": "mine,param:mine", "QUERY":
                         "SELECT u.id, r.hip FROM TAP_UPLOAD.mine AS u JOIN"
                         " far.hipparcos.hip2 AS r ON 1=CONTAINS(POINT(u.ra, u.dec),"
                         " CIRCLE(r.ra, r.dec, 1/3600.))"},
                   files={"mine": ("mine.csv", up, "text/csv")})
    t = table_of(r)
    assert sorted(zip(t["id"], t["hip"], strict=True)) == [(h, h) for h in first["hip"]]


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT * FROM far.hipparcos.hip2 AS r LEFT JOIN mydb.targets AS t ON t.hip = r.hip",
     "LEFT JOIN between local and remote tables is not available yet"),
    ("SELECT * FROM mydb.targets AS t FULL OUTER JOIN far.hipparcos.hip2 AS r"
     " ON t.hip = r.hip", "JOIN between local and remote tables is not available yet"),
    ("SELECT * FROM mydb.targets AS t JOIN far.hipparcos.hip2 AS r ON t.hip = r.hip"
     " WHERE t.hip IN (SELECT hip FROM hipparcos.hip2)", "may not hold subqueries"),
    ("SELECT * FROM mydb.targets AS t JOIN far.hipparcos.hip2 AS r ON t.hip = r.hip"
     " JOIN other.x.y AS o ON o.a = t.hip", "several remote services"),
    ("SELECT nope FROM mydb.targets AS t JOIN far.hipparcos.hip2 AS r ON t.hip = r.hip",
     "unknown column 'nope'"),
    ("SELECT ra FROM mydb.targets AS t JOIN far.hipparcos.hip2 AS r ON t.hip = r.hip",
     "column 'ra' is ambiguous"),
    ("SELECT * FROM mydb.targets AS t JOIN far.hipparcos.nope AS r ON t.hip = r.hip",
     "remote 'far' has no table hipparcos.nope"),
])
def test_refusals_say_what_and_how(here: Any, query: str, message: str) -> None:
    r = sync(here, "alice", query)
    assert r.status_code == 400 and message in r.text, r.text


@pytest.mark.parametrize(("query", "local"), [
    ("SELECT COUNT(*) AS n FROM mydb.targets AS t JOIN far.hipparcos.hip2 AS r"
     " ON 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, 1/3600.))", None),
    ("SELECT COUNT(*) AS n FROM tap_schema.schemas AS s, far.hipparcos.hip2 AS r"
     " WHERE r.hip < 10", None),
])
def test_counts_need_no_remote_column(here: Any, query: str, local: Any) -> None:
    got = table_of(sync(here, "alice", query))
    want = table_of(sync(here, "alice", query.replace("far.hipparcos.hip2", "hipparcos.hip2")))
    assert list(got["n"]) == list(want["n"]) and want["n"][0] > 0
