-- How last night's live recommendations did against what users did next.

CREATE TABLE closed_loop (
    run_id           INTEGER NOT NULL REFERENCES stage_runs (run_id),
    score_run_id     INTEGER NOT NULL REFERENCES score_runs (run_id),
    k                INTEGER NOT NULL,
    users            INTEGER NOT NULL,
    new_interactions INTEGER NOT NULL,
    hit_rate         REAL    NOT NULL,
    recall           REAL    NOT NULL,
    since            TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    PRIMARY KEY (run_id, k)
);
