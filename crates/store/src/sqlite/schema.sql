-- Version 1: executions, their step records and log lines.
CREATE TABLE executions (
    id               TEXT PRIMARY KEY,   -- exe_<ULID>: sorts by creation time
    integration      TEXT NOT NULL,
    flow             TEXT NOT NULL,
    status           TEXT NOT NULL,      -- queued | running | succeeded | failed
    trigger          TEXT NOT NULL,      -- JSON: $trigger
    input            TEXT NOT NULL,      -- JSON: .
    attempt          INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,   -- Unix milliseconds
    run_at           INTEGER NOT NULL,   -- not runnable before
    started_at       INTEGER,
    finished_at      INTEGER,
    lease_token      TEXT,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    error            TEXT                -- JSON: {code, message, step}
);
CREATE INDEX executions_runnable ON executions (run_at, id) WHERE status = 'queued';
CREATE INDEX executions_leased ON executions (lease_expires_at) WHERE status = 'running';
CREATE INDEX executions_by_flow ON executions (integration, flow, id);
CREATE INDEX executions_by_status ON executions (status, id);

CREATE TABLE steps (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    step_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,          -- succeeded | failed
    attempt      INTEGER NOT NULL,
    input        TEXT NOT NULL,
    output       TEXT,
    error        TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE execution_logs (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    level        TEXT NOT NULL,
    step_id      TEXT,
    message      TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
