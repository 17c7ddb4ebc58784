-- The augment stage. A generative model (CFGAN) trained on the training users' interactions
-- proposes synthetic interactions for some training users. They are kept apart from the real
-- data: clean, the splits and evaluation never read them; train reads them only when asked.

-- One row per augment run: the generator that produced it and the split it belongs to.
-- Synthetic rows refer to user_idx and item_idx of that split (`clean_run_id`).
CREATE TABLE augment_runs (
    run_id       INTEGER PRIMARY KEY REFERENCES stage_runs (run_id),
    model_id     INTEGER NOT NULL REFERENCES models (model_id),
    clean_run_id INTEGER NOT NULL REFERENCES clean_runs (run_id),
    parameters   TEXT    NOT NULL,
    users        INTEGER NOT NULL,
    rows         INTEGER NOT NULL,
    created_at   TEXT    NOT NULL
);

-- The synthetic interactions, with the generator's score (its output in [0, 1]).
CREATE TABLE augmented_interactions (
    user_idx INTEGER NOT NULL,
    item_idx INTEGER NOT NULL,
    score    REAL    NOT NULL,
    model_id INTEGER NOT NULL REFERENCES models (model_id),
    run_id   INTEGER NOT NULL REFERENCES augment_runs (run_id),
    PRIMARY KEY (run_id, user_idx, item_idx)
) WITHOUT ROWID;

-- The current split's synthetic interactions under source keys.
CREATE VIEW augmented_interactions_by_key AS
SELECT u.user_key, i.item_key, a.score, a.model_id, a.run_id
FROM augmented_interactions AS a
JOIN augment_runs AS r ON r.run_id = a.run_id
JOIN users AS u ON u.user_idx = a.user_idx
JOIN items AS i ON i.item_idx = a.item_idx
WHERE r.clean_run_id = (SELECT max(run_id) FROM clean_runs);

-- The generative model's training curves, one row per epoch.
CREATE TABLE gan_training_log (
    model_id           INTEGER NOT NULL REFERENCES models (model_id) ON DELETE CASCADE,
    epoch              INTEGER NOT NULL,
    generator_loss     REAL    NOT NULL,
    discriminator_loss REAL    NOT NULL,
    zr_loss            REAL    NOT NULL,
    output_spread      REAL    NOT NULL,
    validation_ndcg100 REAL,
    seconds            REAL    NOT NULL,
    PRIMARY KEY (model_id, epoch)
);
