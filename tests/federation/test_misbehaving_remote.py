"""A misbehaving remote (tests/remotes/fake_tap.py) in a federated join: an answer
that always overflows is never joined (halved down to one row, then an error naming
the limit), a dropped connection and an error document are clear errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from federation_helpers import sync

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "remotes"))
from fake_tap import VOT, FakeTap, error_document, votable  # noqa: E402

JOIN = "SELECT t.hip, r.raj2000 FROM mydb.targets AS t JOIN fake.cat.stars AS r ON t.hip = r.id"


@pytest.fixture
def fake(here: Any) -> Iterator[FakeTap]:
    service = FakeTap().start()
    here.platform.remotes.add("fake", service.url)
    yield service
    here.platform.remotes.remove("fake")
    service.stop()


def test_an_answer_that_always_overflows_is_never_joined(here: Any, fake: FakeTap) -> None:
    fake.routes["/tap/sync"] = lambda s: (200, VOT, votable([(1, 2.0)], trailing="OVERFLOW"))
    r = sync(here, "alice", JOIN)
    assert r.status_code == 400
    assert "remote 'fake' cut its answer at 1 rows (its limit: MAXREC 100) for a single" \
        " row of" in r.text, r.text
    # 300 rows, halved down to one row: about log2(300) + 1 requests, all with an upload.
    posts = [s for s in fake.seen if s.path == "/tap/sync"]
    assert 8 <= len(posts) <= 12
    assert all("multipart/form-data" in s.headers["content-type"] for s in posts)


def test_a_dropped_connection_is_a_clear_error(here: Any, fake: FakeTap) -> None:
    fake.routes["/tap/sync"] = lambda s: "drop"
    r = sync(here, "alice", JOIN)
    assert r.status_code == 502 and "remote 'fake'" in r.text, r.text


def test_the_remotes_own_error_is_quoted(here: Any, fake: FakeTap) -> None:
    fake.routes["/tap/sync"] = lambda s: (400, VOT, error_document("upload too <big>"))
    r = sync(here, "alice", JOIN)
    assert r.status_code == 400 and "upload too &lt;big&gt;" in r.text, r.text


def test_a_key_that_is_not_one_of_ours_is_refused(here: Any, fake: FakeTap) -> None:
    body = votable([(1, 2.0)]).replace(b'name="id" datatype="long"',
                                       b'name="id" datatype="char" arraysize="*"')
    body = body.replace(b"<TD>1</TD>", b"<TD>x</TD>")
    fake.routes["/tap/sync"] = lambda s: (200, VOT, body)
    r = sync(here, "alice", JOIN)
    assert r.status_code == 502 and "not the row keys" in r.text, r.text


def test_a_remote_refusing_the_upload_it_advertised_is_pulled(here: Any, fake: FakeTap) -> None:
    """The remote lists upload-inline but refuses the first block (its own error): its
    table, small enough, is fetched once instead and the join runs here (before: the
    query failed with the remote's error)."""
    r = sync(here, "alice", "SELECT TOP 3 hip FROM mydb.targets ORDER BY hip",
             RESPONSEFORMAT="csv")
    hips = [int(line) for line in r.text.split()[1:]]

    def answer(seen: Any) -> Any:
        if "multipart/form-data" in seen.headers.get("content-type", ""):
            return 400, VOT, error_document("uploads are switched off here")
        return 200, VOT, votable([(hips[0], 1.5), (hips[2], 2.5), (10**9, 3.5)])

    fake.routes["/tap/sync"] = answer
    r = sync(here, "alice", JOIN + " ORDER BY t.hip", RESPONSEFORMAT="csv")
    assert r.status_code == 200, r.text
    assert r.text.split()[1:] == [f"{hips[0]},1.5", f"{hips[2]},2.5"], r.text
    posts = [s for s in fake.seen if s.path == "/tap/sync"]
    assert len(posts) == 2 and "multipart/form-data" in posts[0].headers["content-type"]
    assert "multipart" not in posts[1].headers.get("content-type", "")
