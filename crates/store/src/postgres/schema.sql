-- Version 1: the whole schema, as SQLite's eighteen versions left it. Integers are
-- BIGINT (millisecond times, counts, and flags as 0 and 1), JSON is text: the queries
-- in `sql/` are shared with SQLite and read both alike.
CREATE TABLE executions (
    id                TEXT PRIMARY KEY,   -- exe_<ULID>: sorts by creation time
    integration       TEXT NOT NULL,
    flow              TEXT NOT NULL,
    status            TEXT NOT NULL,
    attempt           BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,    -- Unix milliseconds
    run_at            BIGINT NOT NULL,    -- not runnable before
    started_at        BIGINT,
    finished_at       BIGINT,
    lease_token       TEXT,
    lease_owner       TEXT,
    lease_expires_at  BIGINT,
    error             TEXT,               -- JSON: {code, message, step}
    attempts_from_seq BIGINT NOT NULL DEFAULT 0,
    replay_of         TEXT,
    cancel_requested  BIGINT NOT NULL DEFAULT 0,
    concurrency_key   TEXT,
    concurrency_limit BIGINT,
    ordering_key      TEXT,
    debounce_key      TEXT,
    throttle_key      TEXT,
    throttle_count    BIGINT,
    throttle_per_ms   BIGINT,
    parent_id         TEXT,
    wakes_parent      BIGINT NOT NULL DEFAULT 0,
    output            TEXT,
    response          TEXT,
    callback_url      TEXT,
    scheduled_at      BIGINT
);
CREATE INDEX executions_runnable ON executions (run_at, id)
    WHERE status IN ('queued', 'retrying', 'waiting');
CREATE INDEX executions_runnable_deliveries ON executions (run_at, id)
    WHERE integration = '_webhooks' AND status IN ('queued', 'retrying', 'waiting');
CREATE INDEX executions_leased ON executions (lease_expires_at) WHERE status = 'running';
CREATE INDEX executions_by_flow ON executions (integration, flow, id);
CREATE INDEX executions_by_status ON executions (status, id);
CREATE INDEX executions_finished ON executions (integration, finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX executions_ended ON executions (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX executions_ordering ON executions (integration, flow, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND status IN ('queued', 'running', 'retrying', 'waiting');
CREATE INDEX executions_concurrency ON executions (integration, flow, concurrency_key)
    WHERE status = 'running';
CREATE INDEX executions_debounce ON executions (integration, flow, debounce_key)
    WHERE debounce_key IS NOT NULL AND status = 'queued';
CREATE INDEX executions_throttle ON executions (integration, flow, throttle_key, started_at)
    WHERE throttle_key IS NOT NULL;
CREATE INDEX executions_parent ON executions (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX executions_live ON executions (integration, flow)
    WHERE status IN ('queued', 'running', 'retrying', 'waiting');
CREATE INDEX executions_cancel_requested ON executions (id) WHERE cancel_requested = 1;

CREATE TABLE execution_payloads (
    execution_id TEXT PRIMARY KEY REFERENCES executions (id) ON DELETE CASCADE,
    trigger      TEXT NOT NULL,
    input        TEXT NOT NULL
);

CREATE TABLE steps (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    step_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    input        TEXT NOT NULL,
    output       TEXT,
    error        TEXT,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE execution_logs (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    level        TEXT NOT NULL,
    step_id      TEXT,
    message      TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE alert_states (
    integration TEXT NOT NULL,
    alert       TEXT NOT NULL,
    firing      BIGINT NOT NULL,
    since       BIGINT NOT NULL,
    summary     TEXT NOT NULL,
    PRIMARY KEY (integration, alert)
);

CREATE TABLE dedupe_keys (
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    key          TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (integration, flow, key)
);
CREATE INDEX dedupe_keys_expiry ON dedupe_keys (expires_at);

CREATE TABLE endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    event_types TEXT NOT NULL,
    filter TEXT,
    headers TEXT NOT NULL,
    rate_limit BIGINT,
    ordering TEXT NOT NULL,
    retry_schedule TEXT,
    disabled BIGINT NOT NULL,
    disabled_reason TEXT,
    failing_since BIGINT,
    metadata TEXT NOT NULL,
    tenant TEXT,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX endpoints_tenant ON endpoints (tenant, id);

CREATE TABLE messages (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    tenant TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX messages_created ON messages (created_at);

CREATE TABLE deliveries (
    execution_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX deliveries_message ON deliveries (message_id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, created_at);

CREATE TABLE delivery_attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    url TEXT NOT NULL,
    at BIGINT NOT NULL,
    status TEXT NOT NULL,
    response_status BIGINT,
    latency_ms BIGINT NOT NULL,
    response_headers TEXT NOT NULL,
    response_body TEXT,
    body_truncated BIGINT NOT NULL,
    error_kind TEXT,
    error TEXT
);
CREATE INDEX delivery_attempts_message ON delivery_attempts (message_id, id);
CREATE INDEX delivery_attempts_endpoint ON delivery_attempts (endpoint_id, status, id);
CREATE INDEX delivery_attempts_execution ON delivery_attempts (execution_id);

-- Event sequence numbers are taken under a lock held to the commit (`Serial::Bus`), so
-- they are committed in order and a cursor never skips one that commits late.
CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    key TEXT,
    source TEXT NOT NULL,
    time BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_topic ON events (topic, seq);
CREATE INDEX events_time ON events (time);

CREATE TABLE bus_cursors (
    subscriber TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);

CREATE TABLE flow_state (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE TABLE deployments (
    integration TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    source TEXT NOT NULL,
    deployed_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE schedules (
    integration     TEXT NOT NULL,
    flow            TEXT NOT NULL,
    timing          TEXT NOT NULL,
    next_fire_at    BIGINT NOT NULL,
    paused          BIGINT NOT NULL DEFAULT 0,
    last_fire_at    BIGINT,
    last_success_at BIGINT,
    PRIMARY KEY (integration, flow)
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;

CREATE TABLE schedule_fires (
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    scheduled_at BIGINT NOT NULL,
    fired_at     BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    execution_id TEXT,
    PRIMARY KEY (integration, flow, scheduled_at)
);
CREATE INDEX schedule_fires_time ON schedule_fires (fired_at);

CREATE TABLE file_claims (
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    path         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL,
    execution_id TEXT NOT NULL,
    claimed_at   BIGINT NOT NULL,
    PRIMARY KEY (integration, flow, path)
);

CREATE TABLE nodes (
    id              TEXT PRIMARY KEY,
    started_at      BIGINT NOT NULL,
    heartbeat_at    BIGINT NOT NULL,
    workers         BIGINT NOT NULL,
    webhook_workers BIGINT NOT NULL,
    leads           BIGINT NOT NULL,
    version         TEXT NOT NULL
);
CREATE INDEX nodes_heartbeat ON nodes (heartbeat_at);

CREATE TABLE bulk_jobs (
    id          TEXT PRIMARY KEY,
    action      TEXT NOT NULL,
    state       TEXT NOT NULL,
    total       BIGINT,
    processed   BIGINT NOT NULL,
    applied     BIGINT NOT NULL,
    skipped     BIGINT NOT NULL,
    failed      BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    node        TEXT NOT NULL
);
CREATE INDEX bulk_jobs_finished ON bulk_jobs (finished_at) WHERE finished_at IS NOT NULL;

-- SQLite's json_extract for the `$.field` paths the shared queries use.
CREATE FUNCTION json_extract(document TEXT, path TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT (document::jsonb) #>> string_to_array(substr(path, 3), '.') $$;
