-- Retention: old models are pruned so the database stops growing night after night. A pruned
-- model keeps its row in `models` (what it was, which lists and evaluations refer to it) and
-- loses its weights, its item index and its training logs, which are where the bytes are.

-- When the model's weights were deleted (NULL: still stored).
ALTER TABLE models ADD COLUMN pruned_at TEXT;
