-- The schema of a serving snapshot (`recpipe export --db FILE --out serving.sqlite`) besides
-- what it copies from the database with the database's own definitions (ServingSnapshot), so
-- the two cannot drift apart: recommendation_rows (the live run's rows only),
-- live_recommendations, score_runs and models (the live run's rows), item_metadata (whole),
-- and the views recommendations, recommendations_with_items, recommendations_explained,
-- recommended_items and live_recommendation_run. Not a recpipe database: one export writes
-- it whole under a temporary name and renames it into place; the machines that serve read it.

-- What the snapshot is of (one row).
CREATE TABLE serving_snapshot (
    one             INTEGER PRIMARY KEY CHECK (one = 1),
    run_id          INTEGER NOT NULL,
    model_kind      TEXT    NOT NULL,
    users           INTEGER NOT NULL,
    rows            INTEGER NOT NULL,
    exported_at     TEXT    NOT NULL,
    source_database TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL
);

-- The list for a key that has none in the snapshot (a user never seen): the split's most
-- popular items, without the items the business rules hide at export time; what
-- `recpipe recommend` answers for such a key (source 'fallback-popular').
CREATE TABLE popular_items (
    rank     INTEGER PRIMARY KEY,
    item_key TEXT    NOT NULL,
    score    REAL    NOT NULL
);
