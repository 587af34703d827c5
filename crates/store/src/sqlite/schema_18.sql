-- Version 18: bulk jobs' progress, saved as they run, so that any node sharing the store
-- answers for them; ended ones go with retention.
CREATE TABLE bulk_jobs (
    id          TEXT PRIMARY KEY,
    action      TEXT NOT NULL,
    state       TEXT NOT NULL,
    total       INTEGER,
    processed   INTEGER NOT NULL,
    applied     INTEGER NOT NULL,
    skipped     INTEGER NOT NULL,
    failed      INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    node        TEXT NOT NULL
);
CREATE INDEX bulk_jobs_finished ON bulk_jobs (finished_at) WHERE finished_at IS NOT NULL;
