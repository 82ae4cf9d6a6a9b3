"""What the platform asks a remote for and how: BINARY2 VOTable where the remote offers
it (a BINARY answer read as well), and a UWS job on the remote for a query that may
return more than one sync request should carry. A real platform server, a fake remote
that records every request."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from fake_tap import CAPABILITIES, VOT, XML, FakeTap, Seen, job_document
from remote_helpers import LOOPBACK

from taphouse.remotes.pushdown import SYNC_MAX_ROWS

BINARY2_MIME = "application/x-votable+xml;serialization=BINARY2"
#: The fake's capabilities offering BINARY and BINARY2 VOTable and no hard row limit.
OFFERS_BINARY = CAPABILITIES.replace(
    b"<outputFormat><mime>application/x-votable+xml</mime></outputFormat>",
    b"<outputFormat><mime>application/x-votable+xml</mime></outputFormat>"
    b"<outputFormat><mime>application/x-votable+xml;serialization=BINARY</mime>"
    b"</outputFormat><outputFormat><mime>" + BINARY2_MIME.encode() + b"</mime>"
    b"<alias>votable/b2</alias></outputFormat>").replace(
    b'<hard unit="row">100</hard>', b"")


def binary_votable(rows: int) -> bytes:
    """A result of ``rows`` rows (id, raj2000 = id / 4) in BINARY (version 1)
    serialization, written by astropy as a remote would."""
    from astropy.io.votable import from_table
    from astropy.table import Table

    table = Table({"id": list(range(rows)), "raj2000": [i / 4 for i in range(rows)]})
    table["raj2000"].unit = "deg"
    vot = from_table(table)
    vot.get_first_table().format = "binary"
    out = io.BytesIO()
    vot.to_xml(out)
    return out.getvalue()


@pytest.fixture
def site(start_server, fake_tap: FakeTap) -> Any:  # noqa: ANN001
    fake_tap.routes["/tap/capabilities"] = lambda s: (200, XML, OFFERS_BINARY)
    server = start_server(outbound_allow=LOOPBACK)
    server.platform.remotes.add("bin", fake_tap.url)
    return server


def sync(server: Any, query: str, **params: str) -> httpx.Response:
    return httpx.post(server.url + "/tap/sync", timeout=120,
                      data={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "csv",
                            **params})


def test_binary2_is_asked_for_and_a_binary_answer_read(site, fake_tap: FakeTap) -> None:  # noqa: ANN001
    fake_tap.routes["/tap/sync"] = lambda s: (200, VOT, binary_votable(5))
    r = sync(site, "SELECT TOP 5 id, raj2000 FROM bin.cat.stars ORDER BY id")
    assert r.status_code == 200, r.text
    assert r.text.splitlines() == ["id,raj2000", "0,0", "1,0.25", "2,0.5", "3,0.75",
                                   "4,1"]
    (query,) = [s for s in fake_tap.seen if s.path == "/tap/sync"]
    assert query.form["RESPONSEFORMAT"] == BINARY2_MIME
    assert query.form["QUERY"] == "SELECT TOP 5 id, raj2000 FROM cat.stars ORDER BY id"


def test_a_large_answer_runs_as_a_job_on_the_remote(site, fake_tap: FakeTap) -> None:  # noqa: ANN001
    job = fake_tap.url + "/async/big"
    created: list[Seen] = []

    def create(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        created.append(seen)
        return 303, {"Location": job}, b""

    fake_tap.routes["/tap/async"] = create
    fake_tap.routes["/tap/async/big"] = lambda s: (200, XML, job_document(
        "big", "COMPLETED", result_href=job + "/results/result"))
    fake_tap.routes["/tap/async/big/results/result"] = lambda s: (200, VOT,
                                                                  binary_votable(30))
    r = sync(site, "SELECT id FROM bin.cat.stars WHERE raj2000 >= 0",
             MAXREC=str(SYNC_MAX_ROWS + 1))
    assert r.status_code == 200, r.text
    assert len(r.text.splitlines()) == 31
    assert not any(s.path == "/tap/sync" for s in fake_tap.seen)  # a job, not a request
    (sent,) = created
    assert sent.form["QUERY"] == "SELECT id FROM cat.stars WHERE raj2000 >= 0"
    assert sent.form["RESPONSEFORMAT"] == BINARY2_MIME
    assert sent.form["MAXREC"] == str(SYNC_MAX_ROWS + 2)  # one more: a cut shows
    # The job is deleted on the remote once its result is read.
    assert any(s.path == "/tap/async/big" and s.form.get("ACTION") == "DELETE"
               for s in fake_tap.seen)
