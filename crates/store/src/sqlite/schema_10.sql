-- Version 10: the event bus, subscriber cursors, flow state, and executions asleep in a
-- `sleep` step (`waiting`), runnable again at run_at like retrying ones.
DROP INDEX executions_runnable;
CREATE INDEX executions_runnable ON executions (run_at, id)
    WHERE status IN ('queued', 'retrying', 'waiting');
DROP INDEX executions_ordering;
CREATE INDEX executions_ordering ON executions (integration, flow, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND status IN ('queued', 'running', 'retrying', 'waiting');

CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    key TEXT,
    source TEXT NOT NULL,
    time INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_topic ON events (topic, seq);
CREATE INDEX events_time ON events (time);

CREATE TABLE bus_cursors (
    subscriber TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);

CREATE TABLE flow_state (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
);
