-- The peak resident memory of the process that ran each stage, in MiB (NULL for runs
-- recorded before this column existed, and while a stage runs).
ALTER TABLE stage_runs ADD COLUMN peak_rss_mb REAL;
