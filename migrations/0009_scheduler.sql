-- The scheduler: one row per pipeline run (`recpipe run MANIFEST`, `recpipe retry MANIFEST`)
-- and one row per attempt of each of its stages, linked to the stage's own stage_runs row.

CREATE TABLE pipeline_runs (
    pipeline_run_id INTEGER PRIMARY KEY,
    pipeline        TEXT    NOT NULL,
    manifest        TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned')),
    selection       TEXT    NOT NULL,
    forced          INTEGER NOT NULL DEFAULT 0,
    retry_of        INTEGER REFERENCES pipeline_runs (pipeline_run_id),
    code_version    TEXT    NOT NULL,
    pid             INTEGER NOT NULL,
    host            TEXT    NOT NULL,
    started_at      TEXT    NOT NULL,
    finished_at     TEXT,
    seconds         REAL,
    stages_run      INTEGER,
    stages_skipped  INTEGER,
    stages_failed   INTEGER,
    error           TEXT
);
CREATE INDEX pipeline_runs_pipeline ON pipeline_runs (pipeline, pipeline_run_id);

-- One row per attempt of a stage in a pipeline run; skipped (up to date) and blocked
-- (an upstream stage failed) stages get one row with attempt 0.
CREATE TABLE pipeline_stage_runs (
    id              INTEGER PRIMARY KEY,
    pipeline_run_id INTEGER NOT NULL REFERENCES pipeline_runs (pipeline_run_id),
    stage           TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped', 'blocked')),
    reason          TEXT,
    fingerprint     TEXT,
    parameters      TEXT,
    inputs          TEXT,
    output          TEXT,
    stage_run_id    INTEGER REFERENCES stage_runs (run_id),
    pid             INTEGER,
    started_at      TEXT    NOT NULL,
    finished_at     TEXT,
    seconds         REAL,
    rows_in         INTEGER,
    rows_out        INTEGER,
    exit_status     INTEGER,
    signal          INTEGER,
    error           TEXT
);
CREATE INDEX pipeline_stage_runs_run ON pipeline_stage_runs (pipeline_run_id, id);
CREATE INDEX pipeline_stage_runs_stage ON pipeline_stage_runs (stage, status, id);
