-- Trained models, their item index, their weights and their training log.

-- One row per trained model. At most one model of each kind is published: the one the
-- score stage uses.
CREATE TABLE models (
    model_id           INTEGER PRIMARY KEY,
    run_id             INTEGER NOT NULL REFERENCES stage_runs (run_id),
    kind               TEXT    NOT NULL,
    created_at         TEXT    NOT NULL,
    hyperparameters    TEXT    NOT NULL,
    clean_run_id       INTEGER REFERENCES clean_runs (run_id),
    data_fingerprint   TEXT    NOT NULL,
    items              INTEGER NOT NULL,
    training_users     INTEGER NOT NULL,
    training_seconds   REAL    NOT NULL,
    epochs             INTEGER NOT NULL,
    best_epoch         INTEGER,
    validation_metrics TEXT    NOT NULL DEFAULT '{}',
    warm_start_from    INTEGER REFERENCES models (model_id),
    status             TEXT    NOT NULL CHECK (status IN ('candidate', 'published', 'retired'))
);
CREATE UNIQUE INDEX models_published_kind ON models (kind) WHERE status = 'published';

-- The model's item index: position i of its item tensors is item_key.
CREATE TABLE model_items (
    model_id INTEGER NOT NULL REFERENCES models (model_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    item_key TEXT    NOT NULL,
    PRIMARY KEY (model_id, position)
) WITHOUT ROWID;

-- Weights: one row per tensor, row-major little-endian float32 values.
CREATE TABLE model_weights (
    model_id INTEGER NOT NULL REFERENCES models (model_id) ON DELETE CASCADE,
    tensor   TEXT    NOT NULL,
    shape    TEXT    NOT NULL,
    dtype    TEXT    NOT NULL DEFAULT 'float32' CHECK (dtype = 'float32'),
    data     BLOB    NOT NULL,
    PRIMARY KEY (model_id, tensor)
);

-- One row per training epoch.
CREATE TABLE training_log (
    model_id           INTEGER NOT NULL REFERENCES models (model_id) ON DELETE CASCADE,
    epoch              INTEGER NOT NULL,
    loss               REAL    NOT NULL,
    kl                 REAL,
    beta               REAL,
    validation_ndcg100 REAL,
    seconds            REAL    NOT NULL,
    PRIMARY KEY (model_id, epoch)
);
