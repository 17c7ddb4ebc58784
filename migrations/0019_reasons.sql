-- A reason for every recommended item: the item of the user's history that most supports it
-- (EASE, ItemKNN: the largest term of the item's score; Mult-VAE, Mult-DAE, iALS: the
-- history item whose vector is closest by cosine). NULL for popularity lists.

ALTER TABLE recommendation_rows ADD COLUMN because_item_key TEXT;

DROP VIEW recommended_items;
DROP VIEW recommendations_with_items;
DROP VIEW recommendations;

CREATE VIEW recommendations AS
SELECT r.user_key, r.item_key, r.rank, r.score, s.model_id, r.run_id, s.created_at, r.source, r.because_item_key
FROM recommendation_rows AS r
JOIN score_runs AS s ON s.run_id = r.run_id
WHERE r.run_id = (SELECT run_id FROM live_recommendations WHERE one = 1);

CREATE VIEW recommendations_with_items AS
SELECT r.user_key, r.rank, r.item_key, m.title, m.category, r.score, r.model_id, r.run_id, r.created_at, r.source,
       r.because_item_key
FROM recommendations AS r
LEFT JOIN item_metadata AS m ON m.item_key = r.item_key;

CREATE VIEW recommended_items AS
SELECT item_key, count(*) AS users, min(rank) AS best_rank, avg(rank) AS mean_rank
FROM recommendations
GROUP BY item_key;

-- The live lists with the titles of the item and of the history item behind it.
CREATE VIEW recommendations_explained AS
SELECT r.user_key, r.rank, r.item_key, m.title, r.because_item_key, b.title AS because_title, r.source, r.score
FROM recommendations AS r
LEFT JOIN item_metadata AS m ON m.item_key = r.item_key
LEFT JOIN item_metadata AS b ON b.item_key = r.because_item_key;
