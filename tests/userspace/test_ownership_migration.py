"""An existing store moves to ownership by user id: what belonged to a name's earlier
holder goes to nobody (archived for the operator where it is data)."""

from __future__ import annotations

import json

import pytest

from taphouse import metadata
from taphouse.metadata import MetadataDB


@pytest.fixture
def old_store(tmp_path, monkeypatch):
    """A store as the release before user-id ownership wrote it."""
    from taphouse import _components  # noqa: F401  (registers every component)

    path = tmp_path / "meta.sqlite"
    full = {c: list(m) for c, m in metadata._MIGRATIONS.items()}
    for component in ("jobs", "userspace"):
        monkeypatch.setitem(metadata._MIGRATIONS, component, full[component][:1])
    db = MetadataDB(path)
    con = db.connection()
    # eve (id 1) was deleted, and a new eve (id 3) created later; bob (id 2) lives on.
    con.execute("INSERT INTO users(id, name, password_hash, password_changed, created)"
                " VALUES (2, 'bob', 'x', 0, 50), (3, 'eve', 'x', 0, 200)")
    con.execute("INSERT INTO databases(id, name, kind, public, owner_id) VALUES"
                " (10, 'user_eve', 'user', 0, 1), (11, 'user_bob', 'user', 0, 2)")
    con.execute("INSERT INTO tables(id, database_id, name) VALUES (20, 10, 'secret'),"
                " (21, 11, 'shared')")
    con.execute("INSERT INTO user_tables(table_id, owner) VALUES (20, 'eve'), (21, 'bob')")
    con.execute("INSERT INTO user_shares(table_id, grantee_kind, grantee) VALUES"
                " (21, 'user', 'eve'), (21, 'user', 'gone')")
    for job_id, owner, created in [("jold", "eve", 100.0), ("jbob", "bob", 100.0),
                                   ("jnew", "eve", 300.0), ("janon", None, 1.0)]:
        con.execute("INSERT INTO jobs(id, owner, phase, params, created, execution_duration,"
                    " destruction) VALUES (?,?,?,?,?,?,?)",
                    (job_id, owner, "COMPLETED", "{}", created, 60.0, 9e9))
    con.execute("INSERT INTO workspaces(owner, name, databases) VALUES ('eve', 'w', ?),"
                " ('bob', 'w', ?), ('gone', 'w', ?)", (json.dumps([]),) * 3)
    db.close()
    for component in ("jobs", "userspace"):
        monkeypatch.setitem(metadata._MIGRATIONS, component, full[component])
    return path


def test_migration_keys_ownership_by_user_id(old_store):
    db = MetadataDB(old_store)
    q = db.query
    owners = {r["id"]: r["owner_id"] for r in q("SELECT id, owner_id FROM jobs")}
    # eve's job from before the new eve existed belongs to nobody
    assert owners == {"jold": 0, "jbob": 2, "jnew": 3, "janon": None}
    dbs = {r["name"]: (r["kind"], r["owner_id"]) for r in q("SELECT * FROM databases")}
    assert dbs == {"archived_eve_1": ("archived", 1), "user_bob": ("user", 2)}
    shares = [(r["grantee"], r["grantee_id"]) for r in q("SELECT * FROM user_shares")]
    assert shares == [("eve", 3)]  # a share made by name: the name's holder now
    ws = sorted((r["owner"], r["owner_id"]) for r in q("SELECT * FROM workspaces"))
    assert ws == [("bob", 2), ("eve", 3)]
    assert {r["table_id"]: r["owner_id"] for r in q("SELECT * FROM user_tables")} == {
        20: 1, 21: 2}
    db.close()
