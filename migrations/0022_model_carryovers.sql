-- A model kept for a newer split instead of being retrained: `train --retrain-threshold`
-- found that the raw interactions had grown by no more than the threshold since the split
-- the model was trained on (same clean settings, a strong or temporal split, so none of the
-- newer split's held-out targets were in its training data). Evaluate and score treat the
-- model as trained on that split (the clean run's tables).
CREATE TABLE model_carryovers (
    model_id         INTEGER NOT NULL REFERENCES models (model_id) ON DELETE CASCADE,
    -- The split the model is carried to.
    clean_run_id     INTEGER NOT NULL REFERENCES clean_runs (run_id),
    -- The train run that decided it.
    run_id           INTEGER NOT NULL REFERENCES stage_runs (run_id),
    created_at       TEXT    NOT NULL,
    -- Raw interactions of the model's own split, those ingested since, and the threshold
    -- their ratio was held to.
    base_raw_rows    INTEGER NOT NULL,
    new_raw_rows     INTEGER NOT NULL,
    threshold        REAL    NOT NULL,
    PRIMARY KEY (model_id, clean_run_id)
) WITHOUT ROWID;
CREATE INDEX model_carryovers_split ON model_carryovers (clean_run_id);
