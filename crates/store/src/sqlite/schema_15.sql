-- Version 15: indexes that keep the work before each lease proportional to what it
-- takes, not to the queue: the executions an operator asked to cancel, and the runnable
-- deliveries apart from the runnable flows.
CREATE INDEX executions_cancel_requested ON executions (id) WHERE cancel_requested = 1;
CREATE INDEX executions_runnable_deliveries ON executions (run_at, id)
    WHERE integration = '_webhooks' AND status IN ('queued', 'retrying', 'waiting');
