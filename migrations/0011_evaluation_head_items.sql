-- The popular head of each evaluation run, the items APLT counts as outside the long tail:
-- the most popular items that together hold 80% of training interactions, plus always the
-- most popular one (ties in popularity in item index order). interactions is the item's
-- number of training users.
CREATE TABLE evaluation_head_items (
    run_id       INTEGER NOT NULL REFERENCES evaluation_runs (run_id),
    item_key     TEXT    NOT NULL,
    interactions INTEGER NOT NULL,
    PRIMARY KEY (run_id, item_key)
) WITHOUT ROWID;
