-- Every model kind is stored like the Mult-VAE, and some tensors are larger than one SQLite
-- value may be (an EASE model over 20,000 items is 1.6 GB; SQLite's limit is 1 GB): a
-- tensor is now stored in chunks, its values being the concatenation of its rows' data in
-- chunk order (each row repeats the tensor's full shape). Sparse models store their
-- indices as int32 tensors.

CREATE TABLE model_weights_chunked (
    model_id INTEGER NOT NULL REFERENCES models (model_id) ON DELETE CASCADE,
    tensor   TEXT    NOT NULL,
    chunk    INTEGER NOT NULL DEFAULT 0 CHECK (chunk >= 0),
    shape    TEXT    NOT NULL,
    dtype    TEXT    NOT NULL DEFAULT 'float32' CHECK (dtype IN ('float32', 'int32')),
    data     BLOB    NOT NULL,
    PRIMARY KEY (model_id, tensor, chunk)
);

INSERT INTO model_weights_chunked (model_id, tensor, chunk, shape, dtype, data)
SELECT model_id, tensor, 0, shape, dtype, data FROM model_weights;

DROP TABLE model_weights;
ALTER TABLE model_weights_chunked RENAME TO model_weights;
