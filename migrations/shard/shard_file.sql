-- The schema of a scoring shard file (`recpipe score --shard I/N --shard-out FILE`): one
-- shard's lists, in the layout of the database's recommendation_rows, and shard_info, written
-- last, so that a file without it is known to be incomplete. Not a recpipe database: the file
-- is created whole by one score process and read once by `recpipe score --merge`.
CREATE TABLE recommendation_rows (
    run_id   INTEGER NOT NULL,
    user_key TEXT NOT NULL,
    rank     INTEGER NOT NULL,
    item_key TEXT NOT NULL,
    score    REAL NOT NULL,
    PRIMARY KEY (run_id, user_key, rank)
) WITHOUT ROWID;

CREATE TABLE shard_info (
    model_id    INTEGER NOT NULL,
    k           INTEGER NOT NULL,
    shard       INTEGER NOT NULL,
    shards      INTEGER NOT NULL,
    first_user  INTEGER NOT NULL,
    end_user    INTEGER NOT NULL,
    rows        INTEGER NOT NULL,
    batch_users INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
