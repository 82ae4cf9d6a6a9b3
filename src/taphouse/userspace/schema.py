"""Metadata tables of the user space: user-table records, shares and workspaces.

A user table is a catalogue ``tables`` row in the database ``user_<name>``; its
provenance travels with each version (``TableMeta.extra["provenance"]``). The records
here add what is not per version: the job a ``job_<id>`` table belongs to, the share
list of each table, and the workspaces of each user.
"""

from taphouse.metadata import register_migrations
from taphouse.userspace.lineage import backfill_restrictions

register_migrations("userspace", [
    """
    CREATE TABLE user_tables (
        table_id INTEGER PRIMARY KEY REFERENCES tables(id) ON DELETE CASCADE,
        owner TEXT NOT NULL,
        job_id TEXT,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
    );
    CREATE INDEX user_tables_owner ON user_tables(owner);
    CREATE INDEX user_tables_job ON user_tables(job_id);
    CREATE TABLE user_shares (
        table_id INTEGER NOT NULL REFERENCES tables(id) ON DELETE CASCADE,
        grantee_kind TEXT NOT NULL CHECK (grantee_kind IN ('user', 'group')),
        grantee TEXT NOT NULL,
        PRIMARY KEY (table_id, grantee_kind, grantee)
    );
    CREATE INDEX user_shares_grantee ON user_shares(grantee_kind, grantee);
    CREATE TABLE workspaces (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        databases TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        UNIQUE (owner, name)
    )
    """,
    # Ownership by stable user id (a re-created name inherits nothing).
    # - a user schema whose owner is gone, or whose name another account holds now,
    #   becomes an archive readable by administrators only (archived_<name>_<old id>);
    # - shares name their grantee by id; shares to deleted users go;
    # - workspaces are keyed by (owner id, name); those of deleted users go.
    """
    UPDATE databases SET kind = 'archived',
        name = 'archived_' || substr(name, 6) || '_' || COALESCE(owner_id, 0)
        WHERE kind = 'user' AND NOT EXISTS (SELECT 1 FROM users u
            WHERE u.id = databases.owner_id AND 'user_' || u.name = databases.name);
    ALTER TABLE user_tables ADD COLUMN owner_id INTEGER;
    UPDATE user_tables SET owner_id = (SELECT d.owner_id FROM tables t
        JOIN databases d ON d.id = t.database_id WHERE t.id = user_tables.table_id);
    CREATE INDEX user_tables_owner_id ON user_tables(owner_id);
    ALTER TABLE user_shares ADD COLUMN grantee_id INTEGER;
    UPDATE user_shares SET grantee_id = (SELECT u.id FROM users u
        WHERE u.name = user_shares.grantee) WHERE grantee_kind = 'user';
    UPDATE user_shares SET grantee_id = (SELECT g.id FROM groups g
        WHERE g.name = user_shares.grantee) WHERE grantee_kind = 'group';
    DELETE FROM user_shares WHERE grantee_kind = 'user' AND grantee_id IS NULL;
    CREATE INDEX user_shares_grantee_id ON user_shares(grantee_kind, grantee_id);
    CREATE TABLE workspaces_by_id (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner_id INTEGER NOT NULL,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        databases TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        UNIQUE (owner_id, name)
    );
    INSERT INTO workspaces_by_id(id, owner_id, owner, name, databases, description, created)
        SELECT w.id, u.id, w.owner, w.name, w.databases, w.description, w.created
        FROM workspaces w JOIN users u ON u.name = w.owner
        WHERE CAST(strftime('%s', w.created) AS REAL) >= u.created - 1;
    DROP TABLE workspaces;
    ALTER TABLE workspaces_by_id RENAME TO workspaces
    """,
    # User tables written before their restricted sources were recorded (f8fda1e) get
    # them now, or "restricted-unknown" where they cannot be known (lineage.py).
    backfill_restrictions,
])
