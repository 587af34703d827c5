-- Version 7: flow control. A concurrency group (key and limit) and an ordering key,
-- computed when the execution is accepted.
ALTER TABLE executions ADD COLUMN concurrency_key TEXT;
ALTER TABLE executions ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE executions ADD COLUMN ordering_key TEXT;
CREATE INDEX executions_ordering ON executions (integration, flow, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND status IN ('queued', 'running', 'retrying');
CREATE INDEX executions_concurrency ON executions (integration, flow, concurrency_key)
    WHERE status = 'running';
