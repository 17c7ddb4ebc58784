-- Where a scoring run's time went: write_seconds, the seconds spent writing its rows into
-- SQLite (the writer's own time; the model's scoring runs beside it on other threads);
-- publish_seconds, the guards, the switch and the removal of the sets no longer reachable.
-- NULL for runs published before this migration.
ALTER TABLE score_runs ADD COLUMN write_seconds REAL;
ALTER TABLE score_runs ADD COLUMN publish_seconds REAL;
