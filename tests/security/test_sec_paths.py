"""Error messages tell nothing about the server's disk (no absolute paths)."""

from __future__ import annotations

from sec_helpers import client_for, error_of, sync

from accounts import new_user
from taphouse.errors import without_paths


def test_a_damaged_table_file_is_reported_without_its_path(start_server):
    server = start_server()
    user = new_user(server, "pth")
    with client_for(server, user) as c:
        r = c.put("/api/usertables/lost?format=csv", content=b"a,b\n1,2\n")
        assert r.status_code == 201, r.text
        table = server.platform.catalogue.table(f"user_{user}", "lost")
        files = list((server.data_dir / "tables").rglob("*.duckdb"))
        assert files
        for f in files:
            f.write_bytes(b"garbage " * 100)  # damaged on disk, before anything attached it
        r = sync(c, "SELECT * FROM mydb.lost")
        message = error_of(r) or r.text
        assert r.status_code in (400, 500) and table is not None
        assert str(server.data_dir) not in message and "/tables/" not in message, message


def test_library_messages_lose_their_paths():
    assert without_paths('IO Error: Cannot open file "/srv/taphouse/tables/u/t/v1.duckdb"'
                         ) == 'IO Error: Cannot open file "<file>"'
    assert without_paths("No such file /var/lib/taphouse/tmp/spill/x.tmp") == (
        "No such file <file>")
    for kept in ("log in at POST /auth/token", "see http://h:8000/tap/auth/capabilities",
                 "the endpoint /ws/<user>/<workspace>/tap"):
        assert without_paths(kept) == kept
