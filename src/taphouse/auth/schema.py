"""Metadata tables of the auth package: accounts, groups, database access, tokens, audit."""

from taphouse.metadata import register_migrations

register_migrations("auth", [
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        password_changed REAL NOT NULL,
        credentials_version INTEGER NOT NULL DEFAULT 1,
        disabled INTEGER NOT NULL DEFAULT 0,
        is_admin INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE groups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL
    );
    CREATE TABLE memberships (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, group_id)
    );
    CREATE INDEX memberships_group ON memberships(group_id);
    CREATE TABLE database_groups (
        database_id INTEGER NOT NULL REFERENCES databases(id) ON DELETE CASCADE,
        group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        PRIMARY KEY (database_id, group_id)
    );
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        digest TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('session', 'personal')),
        name TEXT NOT NULL DEFAULT '',
        scopes TEXT NOT NULL DEFAULT '',
        issued REAL NOT NULL,
        expires REAL,
        session_start REAL NOT NULL,
        last_used REAL,
        revoked REAL
    );
    CREATE INDEX tokens_user ON tokens(user_id);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        event TEXT NOT NULL,
        user_id INTEGER,
        username TEXT,
        method TEXT,
        client TEXT,
        duration REAL,
        rows INTEGER,
        outcome TEXT NOT NULL DEFAULT 'ok',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_log_at ON audit_log(at);
    CREATE INDEX audit_log_user ON audit_log(username, at)
    """,
    # Job tokens (compute): one per running sandbox, bound to its job, kept apart from
    # session/personal tokens so those stay as they are.
    """
    CREATE TABLE job_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        digest TEXT NOT NULL UNIQUE,
        job_id TEXT NOT NULL,
        scopes TEXT NOT NULL DEFAULT '',
        issued REAL NOT NULL,
        expires REAL NOT NULL,
        revoked REAL
    );
    CREATE INDEX job_tokens_job ON job_tokens(job_id)
    """,
    # Session families: a refreshed token names its successor (one per token: concurrent
    # refreshes of one token give one), and all tokens of one login share a family that
    # logout ends.
    """
    ALTER TABLE tokens ADD COLUMN family INTEGER;
    ALTER TABLE tokens ADD COLUMN replaced_by INTEGER;
    UPDATE tokens SET family = id;
    CREATE INDEX tokens_family ON tokens(family)
    """,
])
