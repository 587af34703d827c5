-- Version 8: debounce (a later execution of the group supersedes a waiting one) and
-- throttle (at most `throttle_count` starts of the group per `throttle_per_ms`).
ALTER TABLE executions ADD COLUMN debounce_key TEXT;
ALTER TABLE executions ADD COLUMN throttle_key TEXT;
ALTER TABLE executions ADD COLUMN throttle_count INTEGER;
ALTER TABLE executions ADD COLUMN throttle_per_ms INTEGER;
CREATE INDEX executions_debounce ON executions (integration, flow, debounce_key)
    WHERE debounce_key IS NOT NULL AND status = 'queued';
CREATE INDEX executions_throttle ON executions (integration, flow, throttle_key, started_at)
    WHERE throttle_key IS NOT NULL;
