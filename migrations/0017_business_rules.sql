-- Business rules the live lists obey, tables users fill with SQL (recpipe only reads them).
-- Times are ISO 8601 UTC text ('2026-12-24' or '2026-12-24T18:00:00Z'), compared as text
-- with the scoring time: a date alone means midnight UTC at its start.

-- Items that may not be recommended: hidden, or outside [available_from, available_until).
CREATE TABLE item_availability (
    item_key        TEXT    PRIMARY KEY,
    available_from  TEXT,
    available_until TEXT,
    hidden          INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1))
) WITHOUT ROWID;

-- Items one user may not be recommended (bought elsewhere, dismissed), until `until`
-- (exclusive; NULL: for good).
CREATE TABLE user_exclusions (
    user_key TEXT NOT NULL,
    item_key TEXT NOT NULL,
    until    TEXT,
    PRIMARY KEY (user_key, item_key)
) WITHOUT ROWID;

-- What a scoring run applied: a digest of the rule tables (and, with a category cap, of
-- the categories), and a summary as JSON (items unavailable, exclusions in force, the cap).
ALTER TABLE score_runs ADD COLUMN rules_digest TEXT;
ALTER TABLE score_runs ADD COLUMN rules TEXT;
