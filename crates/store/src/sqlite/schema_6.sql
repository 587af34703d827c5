-- Version 6: retention deletes ended executions by their end time.
CREATE INDEX executions_ended ON executions (finished_at) WHERE finished_at IS NOT NULL;
