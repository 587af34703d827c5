-- Version 9: outbound webhooks. Endpoints with their signing secrets, messages, the
-- deliveries (each an execution of `_webhooks/deliver`) and every attempt.
CREATE TABLE endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    event_types TEXT NOT NULL,
    filter TEXT,
    headers TEXT NOT NULL,
    rate_limit INTEGER,
    ordering TEXT NOT NULL,
    retry_schedule TEXT,
    disabled INTEGER NOT NULL,
    disabled_reason TEXT,
    failing_since INTEGER,
    metadata TEXT NOT NULL,
    tenant TEXT,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX endpoints_tenant ON endpoints (tenant, id);

CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    tenant TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX messages_created ON messages (created_at);

CREATE TABLE deliveries (
    execution_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX deliveries_message ON deliveries (message_id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, created_at);

CREATE TABLE delivery_attempts (
    id INTEGER PRIMARY KEY,
    execution_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    url TEXT NOT NULL,
    at INTEGER NOT NULL,
    status TEXT NOT NULL,
    response_status INTEGER,
    latency_ms INTEGER NOT NULL,
    response_headers TEXT NOT NULL,
    response_body TEXT,
    body_truncated INTEGER NOT NULL,
    error_kind TEXT,
    error TEXT
);
CREATE INDEX delivery_attempts_message ON delivery_attempts (message_id, id);
CREATE INDEX delivery_attempts_endpoint ON delivery_attempts (endpoint_id, status, id);
CREATE INDEX delivery_attempts_execution ON delivery_attempts (execution_id);
