-- Evaluation of every model on the same held-out users, side by side.

CREATE TABLE evaluation_runs (
    run_id       INTEGER PRIMARY KEY REFERENCES stage_runs (run_id),
    clean_run_id INTEGER NOT NULL REFERENCES clean_runs (run_id),
    part         TEXT    NOT NULL CHECK (part IN ('validation', 'test')),
    users        INTEGER NOT NULL,
    head_items   INTEGER NOT NULL,
    created_at   TEXT    NOT NULL
);

-- One row per (run, model, metric, cut-off). model names the recommender ('multvae',
-- 'multdae', 'popularity', ...); model_id is its models row when it has one.
CREATE TABLE evaluation (
    run_id   INTEGER NOT NULL REFERENCES evaluation_runs (run_id),
    model    TEXT    NOT NULL,
    model_id INTEGER REFERENCES models (model_id),
    metric   TEXT    NOT NULL,
    k        INTEGER NOT NULL,
    value    REAL    NOT NULL,
    stderr   REAL,
    users    INTEGER NOT NULL,
    PRIMARY KEY (run_id, model, metric, k)
);

-- Per-user values of the per-user metrics, for confidence intervals and paired comparisons.
CREATE TABLE evaluation_users (
    run_id   INTEGER NOT NULL REFERENCES evaluation_runs (run_id),
    model    TEXT    NOT NULL,
    user_key TEXT    NOT NULL,
    metric   TEXT    NOT NULL,
    k        INTEGER NOT NULL,
    value    REAL    NOT NULL,
    PRIMARY KEY (run_id, model, metric, k, user_key)
) WITHOUT ROWID;
