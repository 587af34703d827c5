-- Version 12: the integrations deployed, with the fingerprint and the text of the
-- version last deployed, so that a changed or removed integration is told apart from
-- one already running, and a removed one's `deploy` flows can still run.
CREATE TABLE deployments (
    integration TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    source TEXT NOT NULL,
    deployed_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
