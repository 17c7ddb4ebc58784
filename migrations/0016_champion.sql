-- Which model a scoring run published and why: `choice_reason` in one sentence, `choice` as
-- JSON with every candidate's validation figure on the same users (metric, users, chosen,
-- candidates [{model_id, kind, value, live}]). NULL for runs that were told the model
-- (--model) or that publish shards.

ALTER TABLE score_runs ADD COLUMN choice_reason TEXT;
ALTER TABLE score_runs ADD COLUMN choice TEXT;
