-- Raw bodies of any size (issue 12). A downloaded document is stored in
-- 1 MiB rows of raw_chunks, written in its raw input's own transaction;
-- raw_inputs.body is then empty and raw_inputs.chunked_size holds the body's
-- length (-1, the default: the body is raw_inputs.body itself).
ALTER TABLE raw_inputs ADD COLUMN chunked_size BIGINT NOT NULL DEFAULT -1;

-- A chunk goes with its raw input, like its verdicts (004): PruneRaw
-- deletes the raw_* parts of the inputs it listed in raw_prune, then the
-- inputs; and deleting a raw_inputs row by any other way the triggers allow
-- deletes its chunks too (ON DELETE CASCADE). Otherwise the table is
-- append-only: no update, and no delete of a chunk whose raw input exists
-- and is not being pruned.
CREATE TABLE raw_chunks (
  raw_id BIGINT NOT NULL REFERENCES raw_inputs (id) ON DELETE CASCADE,
  seq    BIGINT NOT NULL,
  data   BYTEA NOT NULL,
  PRIMARY KEY (raw_id, seq)
);
CREATE FUNCTION acquit_raw_chunks_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' OR (EXISTS (SELECT 1 FROM raw_inputs WHERE id = OLD.raw_id)
                          AND NOT EXISTS (SELECT 1 FROM raw_prune WHERE raw_id = OLD.raw_id)) THEN
    RAISE EXCEPTION 'raw_chunks is append-only: a chunk is deleted only with its raw input';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER raw_chunks_append_only BEFORE UPDATE OR DELETE ON raw_chunks FOR EACH ROW EXECUTE FUNCTION acquit_raw_chunks_guard();
