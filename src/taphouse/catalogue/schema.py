"""Metadata tables of the catalogue (and of user schemas, which are databases too)."""

from taphouse.metadata import register_migrations

register_migrations("catalogue", [
    """
    CREATE TABLE databases (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT 'catalogue',
        public INTEGER NOT NULL DEFAULT 1,
        owner_id INTEGER,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
    );
    CREATE TABLE tables (
        id INTEGER PRIMARY KEY,
        database_id INTEGER NOT NULL REFERENCES databases(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        current_version_id INTEGER,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        UNIQUE (database_id, name)
    );
    CREATE TABLE table_versions (
        id INTEGER PRIMARY KEY,
        table_id INTEGER REFERENCES tables(id) ON DELETE SET NULL,
        path TEXT NOT NULL,
        nrows INTEGER NOT NULL,
        nbytes INTEGER NOT NULL,
        meta TEXT NOT NULL,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        retired TEXT
    );
    CREATE INDEX table_versions_retired ON table_versions(retired);
    CREATE TABLE catalogue_generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
    INSERT INTO catalogue_generation VALUES (1, 0)
    """,
])
