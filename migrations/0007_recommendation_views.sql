-- Views for the questions people ask of the live recommendations most often, and a place
-- for item metadata (titles, categories) that the lists can be read with.

-- Optional descriptive data about items, keyed like the source data. recpipe never writes
-- it; fill it with any SQL or the sqlite3 shell's .import. `attributes` is free JSON.
CREATE TABLE item_metadata (
    item_key   TEXT PRIMARY KEY,
    title      TEXT,
    category   TEXT,
    attributes TEXT
) WITHOUT ROWID;

-- The live lists with the item's metadata where there is some (NULL otherwise).
CREATE VIEW recommendations_with_items AS
SELECT r.user_key, r.rank, r.item_key, m.title, m.category, r.score, r.model_id, r.run_id, r.created_at
FROM recommendations AS r
LEFT JOIN item_metadata AS m ON m.item_key = r.item_key;

-- Which run and model the live lists come from, and when they were published.
CREATE VIEW live_recommendation_run AS
SELECT s.run_id, s.model_id, m.kind AS model_kind, s.k, s.users, s.rows, s.created_at, s.published_at
FROM live_recommendations AS l
JOIN score_runs AS s ON s.run_id = l.run_id
JOIN models AS m ON m.model_id = s.model_id;

-- How widely each item is recommended in the live lists: to how many users, at which ranks.
CREATE VIEW recommended_items AS
SELECT item_key, count(*) AS users, min(rank) AS best_rank, avg(rank) AS mean_rank
FROM recommendations
GROUP BY item_key;
