-- Raw bodies of any size (issue 12). A downloaded document is stored in
-- 1 MiB rows of raw_chunks, written in its raw input's own transaction;
-- raw_inputs.body is then empty and raw_inputs.chunked_size holds the body's
-- length (-1, the default: the body is raw_inputs.body itself).
ALTER TABLE raw_inputs ADD COLUMN chunked_size INTEGER NOT NULL DEFAULT -1;

-- A chunk goes with its raw input, like its verdicts (004): PruneRaw
-- deletes the raw_* parts of the inputs it listed in raw_prune, then the
-- inputs; and deleting a raw_inputs row by any other way the triggers allow
-- deletes its chunks too (ON DELETE CASCADE; the SQLite store opens every
-- connection with foreign_keys on). Otherwise the table is append-only: no
-- update, and no delete of a chunk whose raw input exists and is not being
-- pruned.
CREATE TABLE raw_chunks (
  raw_id INTEGER NOT NULL REFERENCES raw_inputs (id) ON DELETE CASCADE,
  seq    INTEGER NOT NULL,
  data   BLOB NOT NULL,
  PRIMARY KEY (raw_id, seq)
);
CREATE TRIGGER raw_chunks_append_only_u BEFORE UPDATE ON raw_chunks BEGIN SELECT RAISE(ABORT, 'raw_chunks is append-only'); END;
CREATE TRIGGER raw_chunks_append_only_d BEFORE DELETE ON raw_chunks
  WHEN EXISTS (SELECT 1 FROM raw_inputs WHERE id = OLD.raw_id)
   AND NOT EXISTS (SELECT 1 FROM raw_prune WHERE raw_id = OLD.raw_id)
  BEGIN SELECT RAISE(ABORT, 'raw_chunks is append-only: a chunk is deleted only with its raw input'); END;
