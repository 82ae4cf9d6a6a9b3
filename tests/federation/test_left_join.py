"""``local LEFT JOIN remote``: every local row is kept (NULLs where the remote has no
match), through an upload join and through a pull; the answers equal the same LEFT
JOIN computed locally."""

from __future__ import annotations

import io
from typing import Any

import pytest
from astropy.io.votable import parse_single_table
from federation_helpers import audit_queries, sync

LEFT = ("SELECT t.hip AS mine, r.hip AS theirs FROM mydb.targets AS t LEFT JOIN {remote}"
        " AS r ON 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, 1/3600.))"
        " AND r.hpmag < 8 {where}")


def pairs(response: Any) -> list[tuple]:
    assert response.status_code == 200, response.text
    table = parse_single_table(io.BytesIO(response.content)).to_table()
    out = []
    for mine, theirs in zip(table["mine"], table["theirs"], strict=True):
        out.append((int(mine), None if theirs is None or getattr(theirs, "mask", False)
                    or str(theirs) == "--" else int(theirs)))
    return sorted(out, key=lambda p: (p[0], p[1] is None, p[1] or 0))


@pytest.mark.parametrize("where", ["", "WHERE r.hip IS NULL", "WHERE t.hip < 5000"])
def test_left_join_by_upload_equals_the_local_one(here: Any, far: Any, where: str) -> None:
    got = pairs(sync(here, "alice", LEFT.format(remote="far.hipparcos.hip2", where=where)))
    want = pairs(sync(here, "alice", LEFT.format(remote="hipparcos.hip2", where=where)))
    assert got == want
    assert any(theirs is None for _, theirs in want) or where == ""
    sent = next(q for q in audit_queries(far) if "TAP_UPLOAD" in q)
    # The ON terms went to the remote; a WHERE term on the remote side stayed here.
    assert sent.endswith("WHERE r.hpmag < 8") and "IS NULL" not in sent


def test_left_join_keeps_unmatched_rows(here: Any) -> None:
    got = pairs(sync(here, "alice", LEFT.format(remote="far.hipparcos.hip2", where="")))
    mine = {m for m, _ in got}
    assert len(mine) == 300  # every target, matched or not
    assert any(t is None for _, t in got) and any(t is not None for _, t in got)
