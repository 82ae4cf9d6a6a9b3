"""User tables written before their restricted sources were recorded in their provenance
(f8fda1e) had no record: once a source table or database was dropped, their rows were
treated as public — joined with any remote, they were uploaded to it. The userspace
migration backfills the record, naming the sources where they can still be found and
``restricted-unknown`` where they cannot; either way an untrusted remote gets nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from federation_helpers import XMATCH, audit_queries, sync

from taphouse.userspace.lineage import UNKNOWN_SOURCE


def _strip_records(platform: Any, schema: str, name: str, *, everything: bool = False
                   ) -> None:
    """Give a user table the shape of one written before restricted sources were
    recorded (or, ``everything``, before provenance was kept at all)."""
    with platform.meta.transaction() as con:
        version_id, text = con.execute(
            "SELECT v.id, v.meta FROM tables t JOIN databases d ON d.id = t.database_id"
            " JOIN table_versions v ON v.id = t.current_version_id"
            " WHERE d.name = ? AND t.name = ?", (schema, name)).fetchone()
        meta = json.loads(text)
        if everything:
            meta["extra"] = {}
        for record in [meta["extra"].get("provenance"), *meta["extra"].get("history", [])]:
            if isinstance(record, dict):
                record.pop("restricted", None)
        con.execute("UPDATE table_versions SET meta = ? WHERE id = ?",
                    (json.dumps(meta), version_id))


def _join(here: Any, table: str) -> Any:
    return sync(here, "alice", XMATCH.format(remote="far.hipparcos.hip2", radius="1/3600.")
                .replace("mydb.targets", table))


def _uploads(far: Any) -> int:
    return sum("TAP_UPLOAD" in q for q in audit_queries(far, 500))


def test_old_tables_get_their_restricted_sources_backfilled(here, far, tmp_path: Path
                                                            ) -> None:  # noqa: ANN001
    from taphouse.auth.database_access import DatabaseAccess
    from taphouse.catalogue.ingest import ingest_files

    p = here.platform
    r = sync(here, "alice", "SELECT hip, ra, dec FROM mydb.targets", RESPONSEFORMAT="csv")
    for db in ("gone_cat", "kept_cat"):
        path = tmp_path / f"{db}.csv"
        path.write_text(r.text)
        ingest_files(p.catalogue, [path], db, "stars")
    p.authenticator.accounts.add_group("backfill_team")
    p.authenticator.accounts.add_member("backfill_team", "alice")
    access = DatabaseAccess(p.meta, p.catalogue)
    access.restrict("gone_cat", ["backfill_team"])
    access.restrict("kept_cat", ["backfill_team"])
    made = {
        "from_gone": "SELECT * FROM gone_cat.stars WHERE hip < 5000",
        "from_kept": "SELECT * FROM kept_cat.stars WHERE hip < 5000",
        "from_public": "SELECT TOP 40 hip, ra, dec FROM hipparcos.hip2 ORDER BY hip",
        "no_provenance": "SELECT TOP 40 hip, ra, dec FROM hipparcos.hip2 ORDER BY hip",
    }
    for name, query in made.items():
        r = sync(here, "alice", query, DEST=f"mydb.{name}")
        assert r.status_code == 200, r.text
        _strip_records(p, "user_alice", name, everything=name == "no_provenance")
    # from_kept: also the ADQL only (no source tables), as the oldest records may be.
    with p.meta.transaction() as con:
        version_id, text = con.execute(
            "SELECT v.id, v.meta FROM tables t JOIN databases d ON d.id = t.database_id"
            " JOIN table_versions v ON v.id = t.current_version_id"
            " WHERE d.name = 'user_alice' AND t.name = 'from_kept'").fetchone()
        meta = json.loads(text)
        del meta["extra"]["provenance"]["source_tables"]
        con.execute("UPDATE table_versions SET meta = ? WHERE id = ?",
                    (json.dumps(meta), version_id))
    p.catalogue.drop_database("gone_cat")

    # The hole: with its source database gone, the table's rows went up to the remote.
    before = _uploads(far)
    assert _join(here, "mydb.from_gone").status_code == 200
    assert _uploads(far) > before

    # The migration, as a server opening this metadata database would run it.
    with p.meta.transaction() as con:
        con.execute("UPDATE schema_version SET version = 2"
                    " WHERE component = 'userspace'")
    assert "userspace 3" in p.meta.migrate()

    def recorded(name: str) -> Any:
        return p.catalogue.table("user_alice", name).extra["provenance"].get("restricted")

    assert recorded("from_gone") == {UNKNOWN_SOURCE: []}
    assert recorded("from_kept") == {"kept_cat": ["backfill_team"]}
    assert recorded("from_public") is None
    assert recorded("no_provenance") == {UNKNOWN_SOURCE: []}

    before = _uploads(far)
    for name, source in (("from_gone", UNKNOWN_SOURCE), ("no_provenance", UNKNOWN_SOURCE),
                         ("from_kept", "kept_cat")):
        r = _join(here, f"mydb.{name}")
        assert r.status_code == 400, (name, r.text)
        assert f"holds rows of {source}, which this service never sends to remote 'far'" \
            in r.text, r.text
    assert _uploads(far) == before
    # Not over-cautious: a table of public rows still joins.
    assert _join(here, "mydb.from_public").status_code == 200
