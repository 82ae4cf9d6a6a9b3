"""A remote's answer to an upload block is checked before it is joined: row keys it was
not sent in that block (a remote answering every block with the same keys joined the
first block's rows several times), columns it sent in another order than asked
(matched by name when the names say so; before, by position: values of one column
joined under another's name) and, where its names are its own, a column whose type is
not the one its metadata declares."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from federation_helpers import sync

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "remotes"))
from fake_tap import CAPABILITIES, VOT, XML, FakeTap  # noqa: E402

JOIN = ("SELECT t.hip, r.raj2000 FROM mydb.targets AS t JOIN fake_answers.cat.stars AS r"
        " ON t.hip = r.id")
#: uploads of at most 100 rows: the 300 targets go in three blocks.
LIMITED = CAPABILITIES.replace(b"</outputLimit>", b'</outputLimit><uploadLimit><hard unit="row">'
                               b"100</hard></uploadLimit>")


def answer(fields: list[tuple[str, str]], rows: list[tuple[Any, ...]]) -> bytes:
    head = "".join(f'<FIELD name="{n}" datatype="{t}"' + (' arraysize="*"' if t == "char"
                                                         else "") + "/>" for n, t in fields)
    trs = "".join("<TR>" + "".join(f"<TD>{v}</TD>" for v in row) + "</TR>" for row in rows)
    return (f'<?xml version="1.0"?><VOTABLE version="1.4"'
            f' xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
            f'<INFO name="QUERY_STATUS" value="OK"/><TABLE>{head}<DATA><TABLEDATA>{trs}'
            "</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>").encode()


@pytest.fixture
def fake(here: Any) -> Iterator[FakeTap]:
    service = FakeTap()
    service.routes["/tap/capabilities"] = lambda s: (200, XML, LIMITED)
    service.start()
    here.platform.remotes.add("fake_answers", service.url)
    yield service
    here.platform.remotes.remove("fake_answers")
    service.stop()


def csv_rows(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    return [line.split(",") for line in response.text.strip().splitlines()[1:]]


def test_keys_not_sent_in_the_block_are_refused(here: Any, fake: FakeTap) -> None:
    # Every block answered with row key 5: the second and third blocks were never sent it.
    fake.routes["/tap/sync"] = lambda s: (200, VOT, answer(
        [("taphouse_key", "long"), ("RAJ2000", "double")], [(5, 1.5)]))
    r = sync(here, "alice", JOIN, RESPONSEFORMAT="csv")
    assert r.status_code == 502, r.text
    assert "remote 'fake_answers'" in r.text and "row keys" in r.text, r.text


def test_columns_in_another_order_are_matched_by_name(here: Any, fake: FakeTap) -> None:
    first = csv_rows(sync(here, "alice", "SELECT TOP 3 hip FROM mydb.targets ORDER BY hip",
                          RESPONSEFORMAT="csv"))
    hips = [int(row[0]) for row in first]
    # The remote sends its column first and the key second (its own order), key 1 only.
    fake.routes["/tap/sync"] = lambda s: (200, VOT, answer(
        [("RAJ2000", "double"), ("taphouse_key", "long")], [(2.5, 1)]))
    rows = csv_rows(sync(here, "alice", JOIN + f" WHERE t.hip <= {hips[-1]}",
                         RESPONSEFORMAT="csv"))
    # (before: the value 2.5 taken as the key 2, the key 1 as RAJ2000)
    assert len(rows) == 1 and int(rows[0][0]) in hips and rows[0][1] == "2.5", rows


def test_a_column_of_another_type_than_declared_is_refused(here: Any, fake: FakeTap) -> None:
    # Names of its own (no way to match them), the second a text where RAJ2000 is double.
    fake.routes["/tap/sync"] = lambda s: (200, VOT, answer(
        [("col0", "long"), ("col1", "char")], [(1, "abc")]))
    r = sync(here, "alice", JOIN + " WHERE t.hip < 100", RESPONSEFORMAT="csv")
    assert r.status_code == 502, r.text
    assert "RAJ2000" in r.text and "double" in r.text and "char" in r.text, r.text


def test_names_of_its_own_with_the_declared_types_are_taken_in_order(
        here: Any, fake: FakeTap) -> None:
    fake.routes["/tap/sync"] = lambda s: (200, VOT, answer(
        [("COL0", "long"), ("COL1", "float")], [(0, 4.5)]))
    rows = csv_rows(sync(here, "alice", JOIN + " WHERE t.hip < 100", RESPONSEFORMAT="csv"))
    assert len(rows) == 1 and rows[0][1] == "4.5", rows


def test_a_column_named_as_asked_but_of_another_type_is_refused(
        here: Any, fake: FakeTap) -> None:
    """The names are those asked for, the type is not the one its metadata lists (text
    where RAJ2000 is double): before, the text was joined under RAJ2000's name (an
    ORDER BY on it sorted "10" before "9", the answer's column changed type)."""
    fake.routes["/tap/sync"] = lambda s: (200, VOT, answer(
        [("taphouse_key", "long"), ("RAJ2000", "char")], [(0, "10"), (1, "9")]))
    r = sync(here, "alice", JOIN + " WHERE t.hip < 100 ORDER BY r.raj2000",
             RESPONSEFORMAT="csv")
    assert r.status_code == 502, r.text
    assert "a char column 'RAJ2000' where it lists 'RAJ2000' as double" in r.text, r.text
