-- Version 4: webhook de-duplication keys, one live key per flow.
CREATE TABLE dedupe_keys (
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    key          TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,      -- Unix milliseconds
    PRIMARY KEY (integration, flow, key)
);
CREATE INDEX dedupe_keys_expiry ON dedupe_keys (expires_at);
