-- Version 17: the nodes running on this store, each with its last heartbeat (one on
-- SQLite; PostgreSQL's schema has the same table for its many).
CREATE TABLE nodes (
    id              TEXT PRIMARY KEY,
    started_at      INTEGER NOT NULL,
    heartbeat_at    INTEGER NOT NULL,
    workers         INTEGER NOT NULL,
    webhook_workers INTEGER NOT NULL,
    leads           INTEGER NOT NULL,
    version         TEXT NOT NULL
);
CREATE INDEX nodes_heartbeat ON nodes (heartbeat_at);
