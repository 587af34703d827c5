-- Version 14: files taken by `files` triggers. A file is claimed (one row per flow and
-- path) in the transaction that queues its execution, so it is taken once; the row
-- goes once the file has been moved or deleted after its execution ended.
CREATE TABLE file_claims (
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    path         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    modified_at  INTEGER NOT NULL,          -- Unix milliseconds
    execution_id TEXT NOT NULL,
    claimed_at   INTEGER NOT NULL,
    PRIMARY KEY (integration, flow, path)
);
