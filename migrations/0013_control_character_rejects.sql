-- Keys with control characters (NUL and the other C0 codes, DEL) are rejected with their own
-- reason: a NUL cuts a key short in C strings, so two such keys could become one user.
-- SQLite cannot change a CHECK constraint, so the table is rebuilt with its rows.

CREATE TABLE ingest_rejects_new (
    batch_id INTEGER NOT NULL REFERENCES ingest_batches (batch_id),
    line     INTEGER NOT NULL,
    reason   TEXT    NOT NULL CHECK (reason IN (
                 'column_count', 'empty_key', 'bad_rating', 'non_finite_rating',
                 'bad_timestamp', 'invalid_utf8', 'oversized_field', 'bad_quoting', 'malformed_json',
                 'missing_field', 'control_character')),
    detail   TEXT    NOT NULL,
    raw      TEXT    NOT NULL
);
INSERT INTO ingest_rejects_new (batch_id, line, reason, detail, raw)
SELECT batch_id, line, reason, detail, raw FROM ingest_rejects ORDER BY rowid;
DROP TABLE ingest_rejects;
ALTER TABLE ingest_rejects_new RENAME TO ingest_rejects;
CREATE INDEX ingest_rejects_batch ON ingest_rejects (batch_id, line);
