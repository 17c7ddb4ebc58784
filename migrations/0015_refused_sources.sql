-- Poison sources are quarantined, not fatal: a source ingest cannot use (unreadable, empty,
-- no usable header, too many rejected rows) is recorded as refused with its reason and its
-- first rejects, and a later run skips the same content without parsing it.

-- 'stored': its rows are in raw_interactions; 'refused': none of them are.
ALTER TABLE ingest_batches ADD COLUMN status TEXT NOT NULL DEFAULT 'stored' CHECK (status IN ('stored', 'refused'));
-- Why a source was refused (NULL for a stored one).
ALTER TABLE ingest_batches ADD COLUMN reason TEXT;
-- The ingest run that stored this content, or for a refused one the newest run that met it
-- (refused it, or skipped it as refused before).
ALTER TABLE ingest_batches ADD COLUMN seen_run_id INTEGER REFERENCES stage_runs (run_id);
UPDATE ingest_batches SET seen_run_id = run_id;

-- Keys read from SQLite sources as BLOBs are rejected with their own reason. SQLite cannot
-- change a CHECK constraint, so the table is rebuilt with its rows.
CREATE TABLE ingest_rejects_new (
    batch_id INTEGER NOT NULL REFERENCES ingest_batches (batch_id),
    line     INTEGER NOT NULL,
    reason   TEXT    NOT NULL CHECK (reason IN (
                 'column_count', 'empty_key', 'bad_rating', 'non_finite_rating',
                 'bad_timestamp', 'invalid_utf8', 'oversized_field', 'bad_quoting', 'malformed_json',
                 'missing_field', 'control_character', 'blob_key')),
    detail   TEXT    NOT NULL,
    raw      TEXT    NOT NULL
);
INSERT INTO ingest_rejects_new (batch_id, line, reason, detail, raw)
SELECT batch_id, line, reason, detail, raw FROM ingest_rejects ORDER BY rowid;
DROP TABLE ingest_rejects;
ALTER TABLE ingest_rejects_new RENAME TO ingest_rejects;
CREATE INDEX ingest_rejects_batch ON ingest_rejects (batch_id, line);
