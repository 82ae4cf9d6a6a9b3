"""Metadata tables of the user space: user-table records, shares and workspaces.

A user table is a catalogue ``tables`` row in the database ``user_<name>``; its
provenance travels with each version (``TableMeta.extra["provenance"]``). The records
here add what is not per version: the job a ``job_<id>`` table belongs to, the share
list of each table, and the workspaces of each user.
"""

from taphouse.metadata import register_migrations

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
])
