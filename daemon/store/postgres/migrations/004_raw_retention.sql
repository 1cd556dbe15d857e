-- Retention of raw inputs nothing verified (issue 9 item 13): every public
-- POST body is stored raw before it is verified, so refused and never
-- verified inputs would otherwise fill the disk. raw_inputs and
-- raw_verdicts stay append-only (UPDATE is always refused, 001_core); a
-- DELETE is accepted only for a raw input that PruneRaw listed in
-- raw_prune within the same transaction and that no verdict verified, and
-- for the unverified verdicts of such an input. raw_prune is empty outside
-- PruneRaw's transactions. A history row naming a raw input keeps it
-- (foreign key); the other tables naming raw inputs (payments, acks...)
-- are checked by PruneRaw.
CREATE TABLE raw_prune (
  raw_id BIGINT PRIMARY KEY
);
-- PruneRaw walks old inputs in (received_at, id) order; the foreign key
-- check of a deleted raw input and PruneRaw look history up by raw_id.
CREATE INDEX raw_inputs_received ON raw_inputs (received_at, id);
CREATE INDEX history_raw ON history (raw_id) WHERE raw_id IS NOT NULL;

DROP TRIGGER raw_inputs_append_only ON raw_inputs;
DROP TRIGGER raw_verdicts_append_only ON raw_verdicts;
CREATE TRIGGER raw_inputs_append_only BEFORE UPDATE ON raw_inputs FOR EACH ROW EXECUTE FUNCTION acquit_append_only();
CREATE TRIGGER raw_verdicts_append_only BEFORE UPDATE ON raw_verdicts FOR EACH ROW EXECUTE FUNCTION acquit_append_only();

CREATE FUNCTION acquit_raw_input_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM raw_prune WHERE raw_id = OLD.id)
     OR EXISTS (SELECT 1 FROM raw_verdicts WHERE raw_id = OLD.id AND verified <> 0) THEN
    RAISE EXCEPTION 'raw_inputs is append-only: only an unverified raw input past its retention is deleted, by PruneRaw';
  END IF;
  RETURN OLD;
END;
$$;
CREATE FUNCTION acquit_raw_verdict_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.verified <> 0
     OR NOT EXISTS (SELECT 1 FROM raw_prune WHERE raw_id = OLD.raw_id)
     OR EXISTS (SELECT 1 FROM raw_verdicts WHERE raw_id = OLD.raw_id AND verified <> 0) THEN
    RAISE EXCEPTION 'raw_verdicts is append-only: a verdict goes only with its pruned raw input';
  END IF;
  RETURN OLD;
END;
$$;
CREATE TRIGGER raw_inputs_delete BEFORE DELETE ON raw_inputs FOR EACH ROW EXECUTE FUNCTION acquit_raw_input_delete();
CREATE TRIGGER raw_verdicts_delete BEFORE DELETE ON raw_verdicts FOR EACH ROW EXECUTE FUNCTION acquit_raw_verdict_delete();
