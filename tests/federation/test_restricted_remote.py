"""Rows fetched from a remote the operator restricted to groups (queried with the
operator's credentials) are restricted rows: a user table holding them (stored by DEST
from the remote, or from a join with it) is never uploaded to another remote, nor shared
with anyone outside the remote's groups."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from federation_helpers import PASSWORD, XMATCH, audit_queries, sync


@pytest.fixture(scope="module")
def vault(here: Any, far: Any) -> str:
    """Remote ``vault`` (the far service again, under another name) restricted to group
    ``vaulters``: vcarol is in it, vdave is not. vcarol's ``mydb.mine`` holds 60 Hipparcos
    stars of the local catalogue (public rows)."""
    p = here.platform
    accounts = p.authenticator.accounts
    accounts.add_group("vaulters")
    accounts.add_user("vcarol", PASSWORD, groups=["vaulters"])
    accounts.add_user("vdave", PASSWORD)
    p.remotes.add("vault", far.tap, groups=("vaulters",))
    r = sync(here, "vcarol", "SELECT TOP 60 hip, ra, dec FROM hipparcos.hip2"
             " WHERE dec BETWEEN 10 AND 30 ORDER BY hip", DEST="mydb.mine")
    assert r.status_code == 200, r.text
    return "vault"


def uploads_received(far: Any) -> int:
    return sum("TAP_UPLOAD" in q for q in audit_queries(far, 500))


def xmatch_with_far(table: str) -> str:
    return XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600.").replace(
        "mydb.targets", table)


@pytest.mark.parametrize("query", [
    # pushed down whole to the restricted remote
    "SELECT TOP 40 hip, ra, dec FROM vault.hipparcos.hip2 WHERE dec BETWEEN 10 AND 30"
    " ORDER BY hip",
    # a join of public rows with the restricted remote's: its rows are in the result
    "SELECT t.hip, r.ra, r.dec FROM mydb.mine AS t JOIN vault.hipparcos.hip2 AS r"
    " ON 1=CONTAINS(POINT(t.ra, t.dec), CIRCLE(r.ra, r.dec, 1/3600.))",
])
def test_rows_of_a_restricted_remote_are_not_uploaded_to_another(
        here: Any, far: Any, vault: str, query: str) -> None:
    r = sync(here, "vcarol", query, DEST="mydb.from_vault", DEST_MODE="replace")
    assert r.status_code == 200, r.text
    r = sync(here, "vcarol", "SELECT COUNT(*) AS n FROM mydb.from_vault", RESPONSEFORMAT="csv")
    assert int(r.text.split()[1]) > 10, r.text
    before = uploads_received(far)
    r = sync(here, "vcarol", xmatch_with_far("mydb.from_vault"))
    assert r.status_code == 400, r.text
    assert "holds rows of remote:vault" in r.text
    assert uploads_received(far) == before
    # and through a table made from it
    r = sync(here, "vcarol", "SELECT * FROM mydb.from_vault", DEST="mydb.from_vault2",
             DEST_MODE="replace")
    assert r.status_code == 200, r.text
    r = sync(here, "vcarol", xmatch_with_far("mydb.from_vault2"))
    assert r.status_code == 400 and "remote:vault" in r.text, r.text
    assert uploads_received(far) == before


def test_rows_of_a_restricted_remote_are_not_shared_outside_its_groups(
        here: Any, vault: str) -> None:
    r = sync(here, "vcarol", "SELECT TOP 10 hip, ra, dec FROM vault.hipparcos.hip2",
             DEST="mydb.shared_vault", DEST_MODE="replace")
    assert r.status_code == 200, r.text
    url = here.url + "/api/usertables/shared_vault/shares"
    headers = {"X-Taphouse": "tests"}
    r = httpx.put(url, json={"users": ["vdave"]}, auth=("vcarol", PASSWORD),
                  headers=headers, timeout=60)
    assert r.status_code == 403, r.text
    assert "remote:vault" in r.json()["error"] and "user vdave" in r.json()["error"]
    r = httpx.put(url, json={"groups": ["vaulters"]}, auth=("vcarol", PASSWORD),
                  headers=headers, timeout=60)
    assert r.status_code == 200, r.text
