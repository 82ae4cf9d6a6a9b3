"""VOSI availability tells the truth: false when the metadata database cannot be read."""

from __future__ import annotations

import httpx


def test_availability_is_false_when_the_metadata_cannot_be_read(start_server):
    server = start_server()
    r = httpx.get(server.tap + "/availability")
    assert "<avl:available>true</avl:available>" in r.text
    path = server.platform.settings.meta_path
    moved = path.with_name("elsewhere.sqlite")
    path.rename(moved)  # as if its disk went away (open connections keep their file)
    try:
        r = httpx.get(server.tap + "/availability")
        assert r.status_code == 200
        assert "<avl:available>false</avl:available>" in r.text
        assert str(path.parent) not in r.text and "server log" in r.text
    finally:
        moved.rename(path)
    assert "<avl:available>true</avl:available>" in httpx.get(server.tap + "/availability").text
