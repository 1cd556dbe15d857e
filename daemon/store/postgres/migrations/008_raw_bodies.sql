-- Large bodies written before their raw input (issue 12). RecordRawStream
-- used to write a document's raw_chunks in the raw input's own
-- transaction, holding the writer (and SQLite's single one) for about 1 s
-- per 90 MB. A streamed body is now written first, one 1 MiB chunk per
-- short transaction, into raw_body_chunks under a raw_bodies row; then one
-- short transaction checks the chunks and commits the raw_inputs row
-- naming the body (raw_inputs.body_id). A body no raw input names is not a
-- stored document: it is being written, or its writer died (kill -9, an
-- error); SweepRawBodies deletes the latter once they have been idle
-- (touched_at) long enough. raw_chunks (005) stays for the bodies stored
-- before this migration.
CREATE TABLE raw_bodies (
  id         BIGSERIAL PRIMARY KEY,
  started_at BIGINT NOT NULL,
  touched_at BIGINT NOT NULL
);
CREATE INDEX raw_bodies_touched ON raw_bodies (touched_at);
CREATE TABLE raw_body_chunks (
  body_id BIGINT NOT NULL REFERENCES raw_bodies (id) ON DELETE CASCADE,
  seq     BIGINT NOT NULL,
  data    BYTEA NOT NULL,
  PRIMARY KEY (body_id, seq)
);
-- A body belongs to at most one raw input; deleting a body a raw input
-- names is refused by the foreign key.
ALTER TABLE raw_inputs ADD COLUMN body_id BIGINT REFERENCES raw_bodies (id);
CREATE UNIQUE INDEX raw_inputs_body ON raw_inputs (body_id) WHERE body_id IS NOT NULL;
-- The chunks of a stored body are append-only like raw_chunks; only the
-- chunks of a body no raw input names (an orphan) are ever deleted.
CREATE FUNCTION acquit_raw_body_chunks_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' OR EXISTS (SELECT 1 FROM raw_inputs WHERE body_id = OLD.body_id) THEN
    RAISE EXCEPTION 'raw_body_chunks is append-only: only the chunks of a body no raw input names are deleted';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER raw_body_chunks_append_only BEFORE UPDATE OR DELETE ON raw_body_chunks FOR EACH ROW EXECUTE FUNCTION acquit_raw_body_chunks_guard();
