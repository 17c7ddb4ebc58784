-- Rollback: publishing keeps the set it replaces, so `recpipe rollback` can point the live
-- lists back at it in one transaction.

-- The set that was live before the current one (NULL: none kept).
ALTER TABLE live_recommendations ADD COLUMN previous_run_id INTEGER REFERENCES score_runs (run_id);

-- When a published set was taken down by a rollback (NULL: never).
ALTER TABLE score_runs ADD COLUMN rolled_back_at TEXT;
