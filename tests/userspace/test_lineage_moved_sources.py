"""A table's restricted lineage was followed by name at share time: a table made from a
user table that held restricted rows lost that lineage once the intermediate table was
renamed, dropped or replaced, and could then be shared with anyone (bob read rows of a
database restricted to a group he is not in). Each write now records the restricted
sources of what it read, so the lineage survives what happens to the tables later."""

from __future__ import annotations

import pytest
from test_restricted_shares import dest, site  # noqa: F401  (the fixture)
from userspace_helpers import client_for, sync


@pytest.mark.parametrize("move", ["rename", "drop", "replace"])
def test_moving_the_intermediate_table_does_not_launder_restricted_rows(
        site, move: str) -> None:  # noqa: ANN001, F811
    alice, bob = client_for(site, "alice"), client_for(site, "bob")
    dest(alice, "SELECT TOP 20 ra, dec, flux FROM secret_cat.stars", "t1")
    dest(alice, "SELECT ra, dec, flux FROM mydb.t1", "t2")
    if move == "rename":
        r = alice.patch("/api/usertables/t1", json={"name": "t1_elsewhere"})
        assert r.status_code == 200, r.text
    elif move == "drop":
        assert alice.delete("/api/usertables/t1").status_code in (200, 204)
    else:
        dest(alice, "SELECT TOP 1 ra, dec, flux FROM open_cat.stars", "t1", mode="replace")
    r = alice.put("/api/usertables/t2/shares", json={"users": ["bob"]})
    assert r.status_code == 403, r.text
    assert "secret_cat" in r.json()["error"]
    assert sync(bob, "SELECT COUNT(*) FROM user_alice.t2").status_code == 400
