-- Version 13: schedules (ordered by their next fire, so the scheduler reads only what is
-- due), their fires keyed by flow and scheduled time (no fire twice), and the scheduled
-- time of the executions fires start.
CREATE TABLE schedules (
    integration     TEXT NOT NULL,
    flow            TEXT NOT NULL,
    timing          TEXT NOT NULL,          -- as written: `cron 0 2 * * * UTC`, `every 15m`
    next_fire_at    INTEGER NOT NULL,       -- Unix milliseconds
    paused          INTEGER NOT NULL DEFAULT 0,
    last_fire_at    INTEGER,
    last_success_at INTEGER,                -- the scheduled time of the last run that succeeded
    PRIMARY KEY (integration, flow)
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;

CREATE TABLE schedule_fires (
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    fired_at     INTEGER NOT NULL,
    outcome      TEXT NOT NULL,             -- fired | caught_up | skipped
    execution_id TEXT,
    PRIMARY KEY (integration, flow, scheduled_at)
);
CREATE INDEX schedule_fires_time ON schedule_fires (fired_at);

ALTER TABLE executions ADD COLUMN scheduled_at INTEGER;
CREATE INDEX executions_live ON executions (integration, flow)
    WHERE status IN ('queued', 'running', 'retrying', 'waiting');
