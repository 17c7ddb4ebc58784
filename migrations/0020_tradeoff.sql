-- The accuracy / long-tail trade-off, recorded by every evaluation for every model it
-- evaluates, on the validation and the test users: the model's own lists (lever 'none'),
-- its candidates re-ranked by each lever at each weight ('xquad', 'popularity'; setting = λ),
-- and the Mult-VAEs trained with synthetic interactions ('augmentation'; setting = the
-- weight of the synthetic rows). The *_change_se columns are the paired standard errors of
-- the per-user differences to the base point on the same users (the model's own lists; for
-- augmentation points, the Mult-VAE trained on real data only). chosen = 1 marks the
-- operating point of a model (on both parts), chosen on the validation users: the largest
-- APLT@20 whose NDCG@100 is within the evaluation's --max-ndcg-loss of the base point's.
CREATE TABLE tradeoff_points (
    run_id             INTEGER NOT NULL REFERENCES evaluation_runs (run_id),
    model              TEXT    NOT NULL,
    model_id           INTEGER REFERENCES models (model_id),
    lever              TEXT    NOT NULL CHECK (lever IN ('none', 'xquad', 'popularity', 'augmentation')),
    setting            REAL    NOT NULL,
    part               TEXT    NOT NULL CHECK (part IN ('validation', 'test')),
    ndcg_100           REAL    NOT NULL,
    ndcg_100_se        REAL    NOT NULL,
    aplt_20            REAL    NOT NULL,
    aplt_20_se         REAL    NOT NULL,
    coverage_20        REAL    NOT NULL,
    novelty_20         REAL    NOT NULL,
    users              INTEGER NOT NULL,
    ndcg_100_change_se REAL,
    aplt_20_change_se  REAL,
    chosen             INTEGER NOT NULL DEFAULT 0 CHECK (chosen IN (0, 1)),
    PRIMARY KEY (run_id, model, lever, setting, part)
);

-- The re-ranking a published set applied (JSON: lever, weight, and where it came from), NULL
-- for none.
ALTER TABLE score_runs ADD COLUMN rerank TEXT;
