"""Rows of a restricted catalogue database reach only its groups through shares: a table
whose provenance (every query that wrote it, not just the latest) holds such rows is not
shared with anyone outside the groups, and a table shared before restricted rows were
appended stops being readable by those the rows are not for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from userspace_helpers import client_for, sync

from accounts import PASSWORD
from taphouse.auth.database_access import DatabaseAccess
from taphouse.auth.passwords import PasswordHashing
from taphouse.catalogue.ingest import ingest_files


@pytest.fixture
def site(start_server, tmp_path: Path):  # noqa: ANN001, ANN201
    """``secret_cat.stars`` restricted to group ``team`` (alice); ``open_cat.stars``
    public; bob is in no group."""
    server = start_server()
    p = server.platform
    p.authenticator.hashing = PasswordHashing(time_cost=1, memory_cost=4096, parallelism=1)
    rng = np.random.default_rng(3)
    for name in ("secret_cat", "open_cat"):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"ra": rng.uniform(0, 360, 500),
                                 "dec": rng.uniform(-90, 90, 500),
                                 "flux": rng.normal(size=500)}), path)
        ingest_files(p.catalogue, [path], name, "stars")
    acc = p.authenticator.accounts
    acc.add_group("team")
    acc.add_user("alice", PASSWORD, groups=["team"])
    acc.add_user("bob", PASSWORD)
    DatabaseAccess(p.meta, p.catalogue).restrict("secret_cat", ["team"])
    return server


def dest(client, query: str, table: str, mode: str = "create") -> None:  # noqa: ANN001
    r = sync(client, query, DEST=f"mydb.{table}", DEST_MODE=mode, RESPONSEFORMAT="csv")
    assert r.status_code == 200, r.text


def test_an_append_of_public_rows_does_not_make_restricted_ones_shareable(site) -> None:  # noqa: ANN001
    alice = client_for(site, "alice")
    dest(alice, "SELECT TOP 20 ra, dec, flux FROM secret_cat.stars", "t")
    dest(alice, "SELECT TOP 0 ra, dec, flux FROM open_cat.stars", "t", mode="append")
    r = alice.put("/api/usertables/t/shares", json={"users": ["bob"]})
    assert r.status_code == 403, r.text
    assert "secret_cat" in r.json()["error"] and "user bob" in r.json()["error"]
    # and through a table made from it
    dest(alice, "SELECT ra, dec FROM mydb.t", "derived")
    r = alice.put("/api/usertables/derived/shares", json={"groups": ["outsiders"]})
    assert r.status_code == 403, r.text
    assert "secret_cat" in r.json()["error"]
    bob = client_for(site, "bob")
    assert sync(bob, "SELECT COUNT(*) FROM user_alice.t").status_code == 400


def test_restricted_rows_appended_to_a_shared_table_are_not_read_outside_the_groups(
        site) -> None:  # noqa: ANN001
    alice, bob = client_for(site, "alice"), client_for(site, "bob")
    dest(alice, "SELECT TOP 10 ra, dec, flux FROM open_cat.stars", "mixed")
    r = alice.put("/api/usertables/mixed/shares", json={"users": ["bob"]})
    assert r.status_code == 200, r.text
    r = sync(bob, "SELECT COUNT(*) AS n FROM user_alice.mixed", RESPONSEFORMAT="csv")
    assert r.status_code == 200 and r.text.split() == ["n", "10"], r.text

    dest(alice, "SELECT TOP 30 ra, dec, flux FROM secret_cat.stars", "mixed", mode="append")
    r = sync(bob, "SELECT COUNT(*) AS n FROM user_alice.mixed", RESPONSEFORMAT="csv")
    assert r.status_code == 400, r.text  # the table is no longer there for bob
    assert "user_alice.mixed" in r.text or "mixed" in r.text
    assert bob.get("/api/usertables/user_alice.mixed").status_code == 404
    # alice (in the group) still reads it, and sees it is still listed as shared
    r = sync(alice, "SELECT COUNT(*) AS n FROM mydb.mixed", RESPONSEFORMAT="csv")
    assert r.text.split() == ["n", "40"], r.text
    # when bob joins the group, the share reads again
    site.platform.authenticator.accounts.add_member("team", "bob")
    bob = client_for(site, "bob")
    r = sync(bob, "SELECT COUNT(*) AS n FROM user_alice.mixed", RESPONSEFORMAT="csv")
    assert r.status_code == 200 and r.text.split() == ["n", "40"], r.text


def test_a_dropped_source_table_does_not_launder_a_derived_one(site) -> None:  # noqa: ANN001
    """``b`` made from ``a`` (restricted rows), then ``a`` dropped: the walk through ``a``'s
    provenance is gone with it; ``b`` keeps the restricted sources recorded when it was
    written."""
    alice = client_for(site, "alice")
    dest(alice, "SELECT TOP 20 ra, dec, flux FROM secret_cat.stars", "a")
    dest(alice, "SELECT ra, dec FROM mydb.a", "b")
    assert alice.delete("/api/usertables/a").status_code == 204
    r = alice.put("/api/usertables/b/shares", json={"users": ["bob"]})
    assert r.status_code == 403, r.text
    assert "secret_cat" in r.json()["error"]
