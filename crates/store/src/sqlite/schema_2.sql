-- Version 2: alert states, and an index for looking back over ended executions.
CREATE TABLE alert_states (
    integration TEXT NOT NULL,
    alert       TEXT NOT NULL,
    firing      INTEGER NOT NULL,       -- 0 | 1
    since       INTEGER NOT NULL,       -- Unix milliseconds
    summary     TEXT NOT NULL,
    PRIMARY KEY (integration, alert)
);
CREATE INDEX executions_finished ON executions (integration, finished_at) WHERE finished_at IS NOT NULL;
