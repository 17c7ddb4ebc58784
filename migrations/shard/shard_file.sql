-- The schema of a scoring shard file (`recpipe score --shard I/N --shard-out FILE`) besides
-- its recommendation_rows, which is created from the database's own definition of that table
-- (ShardFile.create), so the two cannot drift apart. shard_info is written last, so that a
-- file without it is known to be incomplete. Not a recpipe database: the file is created
-- whole by one score process and read once by `recpipe score --merge`.
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
