"""Rows of restricted databases, of user tables derived from them and of other users'
tables shared with the caller never go to a remote the operator has not marked trusted
for that database (federation_trusted)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from federation_helpers import PASSWORD, XMATCH, audit_queries, sync


@pytest.fixture(scope="module")
def secret(here: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A restricted catalogue ``secret_cat.stars`` (alice is in its group), and alice's
    ``mydb.secret_copy`` derived from it."""
    from taphouse.auth.database_access import DatabaseAccess
    from taphouse.catalogue.ingest import ingest_files

    p = here.platform
    r = sync(here, "alice", "SELECT hip, ra, dec FROM mydb.targets", RESPONSEFORMAT="csv")
    path = Path(tmp_path_factory.mktemp("secret")) / "stars.csv"
    path.write_text(r.text)
    ingest_files(p.catalogue, [path], "secret_cat", "stars")
    p.authenticator.accounts.add_group("team")
    p.authenticator.accounts.add_member("team", "alice")
    DatabaseAccess(p.meta, p.catalogue).restrict("secret_cat", ["team"])
    r = sync(here, "alice", "SELECT * FROM secret_cat.stars WHERE hip < 5000",
             DEST="mydb.secret_copy")
    assert r.status_code == 200, r.text
    return "secret_cat.stars"


def uploads_received(far: Any) -> int:
    return sum("TAP_UPLOAD" in q for q in audit_queries(far, 500))


@pytest.mark.parametrize("table", ["secret_cat.stars", "mydb.secret_copy"])
def test_restricted_rows_are_not_uploaded(here, far, secret, table: str) -> None:  # noqa: ANN001
    before = uploads_received(far)
    query = XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600.").replace(
        "mydb.targets", table)
    r = sync(here, "alice", query)
    assert r.status_code == 400, r.text
    assert "holds rows of secret_cat, which this service never sends to remote 'far'" \
        in r.text
    assert uploads_received(far) == before


def test_a_trusted_remote_receives_them(here, far, secret) -> None:  # noqa: ANN001
    service = here.platform.query_service
    settings = service.settings
    service.settings = dataclasses.replace(settings, federation_trusted=("far:secret_cat",))
    try:
        before = uploads_received(far)
        r = sync(here, "alice", XMATCH.format(remote="far.hipparcos.hip2",
                                              radius="1/3600.").replace("mydb.targets",
                                                                        "secret_cat.stars"))
        assert r.status_code == 200, r.text
        assert uploads_received(far) > before
    finally:
        service.settings = settings


def test_another_users_shared_table_is_not_uploaded(here, far) -> None:  # noqa: ANN001
    import httpx

    here.platform.authenticator.accounts.add_user("bob", PASSWORD)
    r = sync(here, "bob", "SELECT TOP 50 hip, ra, dec FROM hipparcos.hip2 ORDER BY hip",
             DEST="mydb.mine")
    assert r.status_code == 200, r.text
    r = httpx.put(here.url + "/api/usertables/mine/shares", auth=("bob", PASSWORD),
                   headers={"X-Taphouse": "tests"}, json={"users": ["alice"]}, timeout=60)
    assert r.status_code in (200, 201), r.text
    before = uploads_received(far)
    r = sync(here, "alice", XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600.")
             .replace("mydb.targets", "user_bob.mine"))
    assert r.status_code == 400, r.text
    assert "holds rows of user_bob" in r.text
    assert uploads_received(far) == before


def test_rows_appended_from_a_public_query_do_not_launder_restricted_ones(  # noqa: ANN201
        here, far, secret):  # noqa: ANN001
    """A table holding restricted rows, then appended to from a public catalogue (here 0
    rows), still holds the restricted rows: its latest provenance names only the public
    source, the earlier ones are in its history, and they count."""
    r = sync(here, "alice", "SELECT * FROM secret_cat.stars WHERE hip < 5000",
             DEST="mydb.laundered")
    assert r.status_code == 200, r.text
    r = sync(here, "alice", "SELECT TOP 0 hip, ra, dec FROM hipparcos.hip2",
             DEST="mydb.laundered", DEST_MODE="append")
    assert r.status_code == 200, r.text
    before = uploads_received(far)
    r = sync(here, "alice", XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600.")
             .replace("mydb.targets", "mydb.laundered"))
    assert r.status_code == 400, r.text
    assert "holds rows of secret_cat" in r.text
    assert uploads_received(far) == before


def test_tap_schema_rows_describing_restricted_tables_are_not_uploaded(  # noqa: ANN201
        here, far, secret):  # noqa: ANN001
    """TAP_SCHEMA lists the restricted tables alice may read (names, descriptions,
    columns): joined with a remote, its rows went up like public ones."""
    before = uploads_received(far)
    r = sync(here, "alice", "SELECT s.table_name, r.hip FROM tap_schema.tables AS s JOIN"
             " far.hipparcos.hip2 AS r ON r.hip = s.table_index OR s.table_name = 'x'")
    assert r.status_code == 400, r.text
    assert "holds rows of secret_cat" in r.text, r.text
    assert uploads_received(far) == before


def test_a_user_table_made_from_tap_schema_is_not_uploaded(here, far, secret) -> None:  # noqa: ANN001, E501
    """TAP_SCHEMA's rows describe the restricted tables alice sees; stored in her user
    space they were a public table's rows (no restricted source in their provenance) and
    went up to an untrusted remote like any."""
    r = sync(here, "alice", "SELECT table_name, table_index FROM tap_schema.tables",
             DEST="mydb.described", DEST_MODE="replace")
    assert r.status_code == 200, r.text
    before = uploads_received(far)
    r = sync(here, "alice", "SELECT s.table_name, r.hip FROM mydb.described AS s JOIN"
             " far.hipparcos.hip2 AS r ON r.hip = s.table_index OR s.table_name = 'x'")
    assert r.status_code == 400, r.text
    assert "holds rows of secret_cat" in r.text, r.text
    assert uploads_received(far) == before
