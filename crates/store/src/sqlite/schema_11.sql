-- Version 11: executions started by another (a `call` step, a dispatch) name their
-- parent, which their end wakes when it waits for them; the output of a succeeded
-- execution, the answer of its `respond` step, and the URL to call back when a
-- synchronous caller stopped waiting.
ALTER TABLE executions ADD COLUMN parent_id TEXT;
ALTER TABLE executions ADD COLUMN wakes_parent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN output TEXT;
ALTER TABLE executions ADD COLUMN response TEXT;
ALTER TABLE executions ADD COLUMN callback_url TEXT;
CREATE INDEX executions_parent ON executions (parent_id, id) WHERE parent_id IS NOT NULL;
