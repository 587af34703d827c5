-- Version 16: an execution's trigger and input live apart from its row, written once.
-- Leasing and ending an execution update its row, and SQLite writes a whole row again
-- on update: with the payload in it, a 1 KB webhook body was written three times.
CREATE TABLE execution_payloads (
    execution_id TEXT PRIMARY KEY REFERENCES executions (id) ON DELETE CASCADE,
    trigger      TEXT NOT NULL,       -- JSON: $trigger
    input        TEXT NOT NULL        -- JSON: .
);
INSERT INTO execution_payloads (execution_id, trigger, input)
    SELECT id, trigger, input FROM executions;
ALTER TABLE executions DROP COLUMN trigger;
ALTER TABLE executions DROP COLUMN input;
