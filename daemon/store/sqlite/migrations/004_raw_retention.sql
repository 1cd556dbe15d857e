-- Retention of raw inputs nothing verified (issue 9 item 13): every public
-- POST body is stored raw before it is verified, so refused and never
-- verified inputs would otherwise fill the disk. raw_inputs and
-- raw_verdicts stay append-only (UPDATE is always refused, 001_core); a
-- DELETE is accepted only for a raw input that PruneRaw listed in
-- raw_prune within the same transaction and that no verdict verified, and
-- for the unverified verdicts of such an input. raw_prune is empty outside
-- PruneRaw's transactions. A history row naming a raw input keeps it
-- (foreign key, checked by SQLite at the end of the DELETE); the other
-- tables naming raw inputs (payments, acks...) are checked by PruneRaw.
CREATE TABLE raw_prune (
  raw_id INTEGER PRIMARY KEY
);
-- PruneRaw walks old inputs in (received_at, id) order; the foreign key
-- check of a deleted raw input and PruneRaw look history up by raw_id.
CREATE INDEX raw_inputs_received ON raw_inputs (received_at, id);
CREATE INDEX history_raw ON history (raw_id) WHERE raw_id IS NOT NULL;

DROP TRIGGER raw_inputs_append_only_d;
DROP TRIGGER raw_verdicts_append_only_d;
CREATE TRIGGER raw_inputs_append_only_d BEFORE DELETE ON raw_inputs
WHEN NOT EXISTS (SELECT 1 FROM raw_prune WHERE raw_id = OLD.id)
  OR EXISTS (SELECT 1 FROM raw_verdicts WHERE raw_id = OLD.id AND verified <> 0)
BEGIN SELECT RAISE(ABORT, 'raw_inputs is append-only: only an unverified raw input past its retention is deleted, by PruneRaw'); END;
CREATE TRIGGER raw_verdicts_append_only_d BEFORE DELETE ON raw_verdicts
WHEN OLD.verified <> 0
  OR NOT EXISTS (SELECT 1 FROM raw_prune WHERE raw_id = OLD.raw_id)
  OR EXISTS (SELECT 1 FROM raw_verdicts WHERE raw_id = OLD.raw_id AND verified <> 0)
BEGIN SELECT RAISE(ABORT, 'raw_verdicts is append-only: a verdict goes only with its pruned raw input'); END;
