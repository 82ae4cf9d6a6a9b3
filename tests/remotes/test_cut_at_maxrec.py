"""A remote that cuts its answer at exactly the MAXREC it was sent (or at its advertised
hard limit) without saying OVERFLOW: its answer is not taken as complete. The platform
asks one row more than it wants (one more than the caller's MAXREC), so a cut answer
shows more rows than wanted; where it cannot (the remote's hard limit), an answer of
exactly that many rows counts as possibly cut. Tests over a real server with a fake
remote that cuts silently."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fake_tap import CAPABILITIES, VOT, FakeTap, Seen, votable
from remote_helpers import LOOPBACK, PASSWORD

#: The fake's capabilities without an upload method: a federated join must pull.
NO_UPLOADS = re.sub(rb"<uploadMethod[^>]*/>", b"", CAPABILITIES)
HARD = 100  # the fake's advertised hard limit (fake_tap.CAPABILITIES)


def silent_cut(total: int) -> Any:
    """A /sync that returns at most MAXREC (and at most HARD) of ``total`` rows (id,
    raj2000 = id / 2), never saying OVERFLOW; the columns in the order the query names
    them."""
    def route(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        maxrec = min(int(seen.form.get("MAXREC", HARD)), HARD)
        rows = [(i, i * 0.5) for i in range(min(total, maxrec))]
        select = seen.form.get("QUERY", "").lower().split(" from ")[0]
        if "raj2000" in select and select.find("raj2000") < select.find("id"):
            body = votable([(r, i) for i, r in rows]).replace(  # type: ignore[misc]
                b'<FIELD name="id" datatype="long"/><FIELD name="raj2000" datatype="double"'
                b' unit="deg"/>', b'<FIELD name="raj2000" datatype="double" unit="deg"/>'
                b'<FIELD name="id" datatype="long"/>')
            return 200, VOT, body
        return 200, VOT, votable(rows)
    return route


@pytest.fixture
def site(start_server, fake_tap: FakeTap) -> Any:  # noqa: ANN001
    fake_tap.routes["/tap/capabilities"] = lambda s: (200, {"Content-Type": "text/xml"},
                                                      NO_UPLOADS)
    fake_tap.routes["/tap/sync"] = silent_cut(50)
    server = start_server(outbound_allow=LOOPBACK)
    server.platform.remotes.add("cutter", fake_tap.url)
    server.platform.authenticator.accounts.add_user("ann", PASSWORD)
    return server


def sync(server: Any, query: str, **params: str) -> httpx.Response:
    return httpx.post(server.url + "/tap/sync", auth=("ann", PASSWORD), timeout=120,
                      headers={"X-Taphouse": "tests"},
                      data={"LANG": "ADQL", "QUERY": query, **params})


def test_an_answer_cut_at_the_maxrec_asked_is_an_overflow(site, fake_tap) -> None:  # noqa: ANN001
    r = sync(site, "SELECT * FROM cutter.cat.stars", MAXREC="10", RESPONSEFORMAT="csv")
    assert r.status_code == 200, r.text
    assert len(r.text.strip().splitlines()) == 11  # header + 10 rows
    r = sync(site, "SELECT * FROM cutter.cat.stars", MAXREC="10")
    assert r.status_code == 200, r.text
    assert re.search(r'name="QUERY_STATUS"\s+value="OVERFLOW"', r.text), r.text
    assert fake_tap.seen[-1].form["MAXREC"] == "11"
    # an answer of exactly MAXREC rows that is complete stays complete
    r = sync(site, "SELECT * FROM cutter.cat.stars", MAXREC="50")
    assert r.status_code == 200, r.text
    assert 'value="OVERFLOW"' not in r.text
    r = sync(site, "SELECT * FROM cutter.cat.stars", MAXREC="50", RESPONSEFORMAT="csv")
    assert len(r.text.strip().splitlines()) == 51


def test_dest_refuses_an_answer_cut_at_the_remotes_hard_limit(site, fake_tap) -> None:  # noqa: ANN001
    fake_tap.routes["/tap/sync"] = silent_cut(150)  # 150 rows, it gives 100 (HARD)
    r = sync(site, "SELECT * FROM cutter.cat.stars", DEST="mydb.copy")
    assert r.status_code == 400, r.text
    assert "truncated" in r.text or "cut" in r.text, r.text
    r = sync(site, "SELECT COUNT(*) FROM mydb.copy")
    assert r.status_code == 400 and "copy" in r.text, r.text  # nothing stored
    # 80 rows: complete below the hard limit, stored whole
    fake_tap.routes["/tap/sync"] = silent_cut(80)
    r = sync(site, "SELECT * FROM cutter.cat.stars", DEST="mydb.copy")
    assert r.status_code == 200, r.text
    r = sync(site, "SELECT COUNT(*) AS n FROM mydb.copy", RESPONSEFORMAT="csv")
    assert r.text.split() == ["n", "80"], r.text


def test_a_federated_join_does_not_join_an_answer_cut_silently(site, fake_tap) -> None:  # noqa: ANN001
    ids = votable([(i, 0.0) for i in range(0, 400, 2)])  # 200 even ids
    r = httpx.post(site.url + "/tap/sync", auth=("ann", PASSWORD), timeout=120,
                   headers={"X-Taphouse": "tests"},
                   data={"LANG": "ADQL", "QUERY": "SELECT id FROM TAP_UPLOAD.ids",
                         "UPLOAD": "ids,param:ids", "DEST": "mydb.ids"},
                   files={"ids": ("ids.xml", ids, "application/x-votable+xml")})
    assert r.status_code == 200, r.text
    query = ("SELECT t.id, s.raj2000 FROM mydb.ids AS t JOIN cutter.cat.stars AS s"
             " ON t.id = s.id")
    fake_tap.routes["/tap/sync"] = silent_cut(150)  # pulled: 100 of 150 (HARD)
    r = sync(site, query, RESPONSEFORMAT="csv")
    assert r.status_code == 400, r.text
    assert "too large" in r.text, r.text
    fake_tap.routes["/tap/sync"] = silent_cut(60)  # all of it
    r = sync(site, query, RESPONSEFORMAT="csv")
    assert r.status_code == 200, r.text
    joined = len(r.text.strip().splitlines()) - 1
    r = sync(site, "SELECT COUNT(*) AS n FROM mydb.ids WHERE id < 60", RESPONSEFORMAT="csv")
    assert joined == int(r.text.split()[1]) > 0, r.text
