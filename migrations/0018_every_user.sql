-- Every user with a list: users the model does not know (left out by the k-core filter, or
-- new since the last clean) get a fallback list in the same published set. `source` says
-- where each row comes from: `model` (the run's model), `fallback-item` (an item-based model,
-- score_runs.fallback_model_id, from the user's known items) or `fallback-popular` (the
-- most popular items the user has not had).

ALTER TABLE recommendation_rows ADD COLUMN source TEXT NOT NULL DEFAULT 'model'
    CHECK (source IN ('model', 'fallback-item', 'fallback-popular'));
ALTER TABLE score_runs ADD COLUMN fallback_model_id INTEGER REFERENCES models (model_id);

DROP VIEW recommended_items;
DROP VIEW recommendations_with_items;
DROP VIEW recommendations;

CREATE VIEW recommendations AS
SELECT r.user_key, r.item_key, r.rank, r.score, s.model_id, r.run_id, s.created_at, r.source
FROM recommendation_rows AS r
JOIN score_runs AS s ON s.run_id = r.run_id
WHERE r.run_id = (SELECT run_id FROM live_recommendations WHERE one = 1);

CREATE VIEW recommendations_with_items AS
SELECT r.user_key, r.rank, r.item_key, m.title, m.category, r.score, r.model_id, r.run_id, r.created_at, r.source
FROM recommendations AS r
LEFT JOIN item_metadata AS m ON m.item_key = r.item_key;

CREATE VIEW recommended_items AS
SELECT item_key, count(*) AS users, min(rank) AS best_rank, avg(rank) AS mean_rank
FROM recommendations
GROUP BY item_key;
