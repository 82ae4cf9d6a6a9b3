"""Metadata tables of the remotes package: registered remote TAP services and one shared
cache of their tables (one row per table, its columns as JSON)."""

from __future__ import annotations

from taphouse.metadata import register_migrations

register_migrations("remotes", [
    """
    CREATE TABLE remotes (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        url TEXT NOT NULL,
        auth TEXT NOT NULL DEFAULT 'none',
        owner_id INTEGER,
        groups TEXT NOT NULL DEFAULT '[]',
        title TEXT NOT NULL DEFAULT '',
        capabilities TEXT NOT NULL DEFAULT '{}',
        metadata_source TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'new',
        last_error TEXT,
        checked_at TEXT,
        refreshed_at TEXT,
        timeout REAL,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        created_by TEXT
    );
    CREATE UNIQUE INDEX remotes_name ON remotes(name, IFNULL(owner_id, 0));
    CREATE TABLE remote_tables (
        remote_id INTEGER NOT NULL REFERENCES remotes(id) ON DELETE CASCADE,
        schema_name TEXT NOT NULL,
        table_name TEXT NOT NULL,
        description TEXT,
        table_type TEXT NOT NULL DEFAULT 'table',
        nrows INTEGER,
        columns TEXT NOT NULL,
        PRIMARY KEY (remote_id, schema_name, table_name)
    );
    """,
])
