-- Stage runs, the ingest stage's raw tables and the clean stage's model-input tables.
-- Timestamps written by recpipe (started_at, created_at, ...) are ISO 8601 UTC text;
-- event times (ts) are integer Unix seconds.

-- One row per stage invocation, from the command line or the scheduler.
CREATE TABLE stage_runs (
    run_id      INTEGER PRIMARY KEY,
    stage       TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    parameters  TEXT    NOT NULL DEFAULT '{}',
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    seconds     REAL,
    rows_in     INTEGER,
    rows_out    INTEGER,
    error       TEXT
);

-- One row per ingested source file (or SQLite query). A source whose content hash is
-- already here is skipped. Only fully committed sources have a row.
CREATE TABLE ingest_batches (
    batch_id      INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES stage_runs (run_id),
    source        TEXT    NOT NULL,
    query         TEXT,
    format        TEXT    NOT NULL,
    content_hash  TEXT    NOT NULL UNIQUE,
    bytes         INTEGER NOT NULL,
    rows_read     INTEGER NOT NULL,
    rows_accepted INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    started_at    TEXT    NOT NULL,
    finished_at   TEXT    NOT NULL,
    seconds       REAL    NOT NULL
);

-- Every accepted row, keys exactly as in the source. batch_id refers to ingest_batches;
-- it is not declared as a foreign key so that bulk loads stay fast.
CREATE TABLE raw_interactions (
    batch_id INTEGER NOT NULL,
    line     INTEGER NOT NULL,
    user_key TEXT    NOT NULL,
    item_key TEXT    NOT NULL,
    rating   REAL,
    ts       INTEGER
);

-- Every rejected row, with the reason. raw holds the line's text (invalid UTF-8 replaced,
-- cut at 1 KiB).
CREATE TABLE ingest_rejects (
    batch_id INTEGER NOT NULL REFERENCES ingest_batches (batch_id),
    line     INTEGER NOT NULL,
    reason   TEXT    NOT NULL CHECK (reason IN (
                 'column_count', 'empty_key', 'bad_rating', 'non_finite_rating',
                 'bad_timestamp', 'invalid_utf8', 'oversized_field', 'bad_quoting', 'malformed_json',
                 'missing_field')),
    detail   TEXT    NOT NULL,
    raw      TEXT    NOT NULL
);
CREATE INDEX ingest_rejects_batch ON ingest_rejects (batch_id, line);

-- One summary row per clean run; the latest describes the current users, items and
-- interactions tables.
CREATE TABLE clean_runs (
    run_id             INTEGER PRIMARY KEY REFERENCES stage_runs (run_id),
    created_at         TEXT    NOT NULL,
    split              TEXT    NOT NULL CHECK (split IN ('strong', 'temporal', 'predefined')),
    seed               INTEGER,
    parameters         TEXT    NOT NULL,
    raw_rows           INTEGER NOT NULL,
    raw_users          INTEGER NOT NULL,
    raw_items          INTEGER NOT NULL,
    deduplicated_rows  INTEGER NOT NULL,
    positive_rows      INTEGER NOT NULL,
    kcore_iterations   INTEGER NOT NULL,
    kcore_users_removed INTEGER NOT NULL,
    kcore_items_removed INTEGER NOT NULL,
    users              INTEGER NOT NULL,
    items              INTEGER NOT NULL,
    interactions       INTEGER NOT NULL,
    density            REAL    NOT NULL,
    train_users        INTEGER NOT NULL,
    validation_users   INTEGER NOT NULL,
    test_users         INTEGER NOT NULL,
    train_rows         INTEGER NOT NULL,
    validation_tr_rows INTEGER NOT NULL,
    validation_te_rows INTEGER NOT NULL,
    test_tr_rows       INTEGER NOT NULL,
    test_te_rows       INTEGER NOT NULL,
    dropped_heldout_rows INTEGER NOT NULL,
    validation_cutoff  INTEGER,
    test_cutoff        INTEGER,
    seconds            REAL    NOT NULL
);

-- Dense user index: user_idx = 0..n-1, user_key as in the source.
CREATE TABLE users (
    user_idx INTEGER PRIMARY KEY,
    user_key TEXT    NOT NULL UNIQUE,
    role     TEXT    NOT NULL CHECK (role IN ('train', 'validation', 'test'))
);

-- Dense item index over the items of the training part: item_idx = 0..m-1.
CREATE TABLE items (
    item_idx           INTEGER PRIMARY KEY,
    item_key           TEXT    NOT NULL UNIQUE,
    train_interactions INTEGER NOT NULL
);

-- Binarized, deduplicated interactions with the split part each belongs to.
CREATE TABLE interactions (
    user_idx INTEGER NOT NULL REFERENCES users (user_idx),
    item_idx INTEGER NOT NULL REFERENCES items (item_idx),
    part     TEXT    NOT NULL CHECK (part IN (
                 'train', 'validation_tr', 'validation_te', 'test_tr', 'test_te')),
    ts       INTEGER,
    PRIMARY KEY (user_idx, item_idx)
) WITHOUT ROWID;
