-- Version 3: retrying executions are runnable again once their run_at has come.
DROP INDEX executions_runnable;
CREATE INDEX executions_runnable ON executions (run_at, id) WHERE status IN ('queued', 'retrying');
