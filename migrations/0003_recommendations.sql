-- Top-K recommendations. Each scoring run writes its rows under its own run_id while the
-- live set stays in place; publishing moves the one-row pointer in live_recommendations,
-- so readers of the recommendations view see the old complete set or the new one, never a
-- mix or an empty table.

CREATE TABLE score_runs (
    run_id       INTEGER PRIMARY KEY REFERENCES stage_runs (run_id),
    model_id     INTEGER NOT NULL REFERENCES models (model_id),
    k            INTEGER NOT NULL,
    users        INTEGER NOT NULL,
    rows         INTEGER NOT NULL,
    created_at   TEXT    NOT NULL,
    published_at TEXT,
    seconds      REAL
);

CREATE TABLE recommendation_rows (
    run_id     INTEGER NOT NULL,
    user_key   TEXT    NOT NULL,
    rank       INTEGER NOT NULL,
    item_key   TEXT    NOT NULL,
    score      REAL    NOT NULL,
    PRIMARY KEY (run_id, user_key, rank)
) WITHOUT ROWID;

-- The scoring run whose rows are live (at most one row).
CREATE TABLE live_recommendations (
    one    INTEGER PRIMARY KEY CHECK (one = 1),
    run_id INTEGER NOT NULL REFERENCES score_runs (run_id)
);

CREATE VIEW recommendations AS
SELECT r.user_key, r.item_key, r.rank, r.score, s.model_id, r.run_id, s.created_at
FROM recommendation_rows AS r
JOIN score_runs AS s ON s.run_id = r.run_id
WHERE r.run_id = (SELECT run_id FROM live_recommendations WHERE one = 1);
