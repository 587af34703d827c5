-- Version 5: operator control: retry a failed execution from its failed step with fresh
-- attempts, replay one as a new execution, cancel one.
ALTER TABLE executions ADD COLUMN attempts_from_seq INTEGER NOT NULL DEFAULT 0;  -- failed attempts count from this step record
ALTER TABLE executions ADD COLUMN replay_of TEXT;                                -- the execution this one replays
ALTER TABLE executions ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;   -- a running one stops at its next checkpoint
