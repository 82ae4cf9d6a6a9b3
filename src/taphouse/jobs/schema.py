"""Metadata tables of the job store (UWS jobs, shared by TAP async and compute)."""

from taphouse.metadata import register_migrations

register_migrations("jobs", [
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL DEFAULT 'tap',
        owner TEXT,
        phase TEXT NOT NULL,
        run_id TEXT,
        params TEXT NOT NULL,
        parts TEXT NOT NULL DEFAULT '{}',
        workspace TEXT,
        created REAL NOT NULL,
        queued REAL,
        started REAL,
        ended REAL,
        quote REAL,
        execution_duration REAL NOT NULL,
        destruction REAL NOT NULL,
        error TEXT,
        result_file TEXT,
        result_mime TEXT,
        result_size INTEGER,
        result_rows INTEGER,
        result_overflow INTEGER
    );
    CREATE INDEX jobs_owner_created ON jobs(owner, created);
    CREATE INDEX jobs_phase ON jobs(phase, queued);
    CREATE INDEX jobs_destruction ON jobs(destruction)
    """,
    # Ownership by the owner's stable user id (names can be re-created). A job whose owner
    # name no longer exists, or was created before the account now holding the name,
    # belongs to nobody (0: never a user id) and is reachable by no one.
    """
    ALTER TABLE jobs ADD COLUMN owner_id INTEGER;
    UPDATE jobs SET owner_id = COALESCE(
        (SELECT u.id FROM users u WHERE u.name = jobs.owner AND u.created <= jobs.created),
        0) WHERE owner IS NOT NULL;
    CREATE INDEX jobs_owner_id_created ON jobs(owner_id, created)
    """,
    # Admission (issue 11): the key a job is budgeted under (its owner's account, or
    # the client address of an anonymous job; never used to reach a job) and the
    # bytes of its files (uploaded parts and result).
    """
    ALTER TABLE jobs ADD COLUMN budget_key TEXT;
    ALTER TABLE jobs ADD COLUMN files_bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE jobs SET budget_key = CASE WHEN owner_id IS NULL THEN 'addr:-'
                                      ELSE 'user:' || owner_id END;
    UPDATE jobs SET files_bytes = COALESCE(result_size, 0);
    CREATE INDEX jobs_budget_key ON jobs(budget_key)
    """,
])
