-- Indexes no query uses, dropped from the hot insert path (issue 12): every
-- automatic response inserts a raw input and a verdict, and each of these
-- indexes, keyed in no relation to insertion order (a digest, a payment
-- subject), dirtied one more page per response that the commit writes to
-- the WAL: 15% of the single SQLite writer's CPU in
-- BenchmarkAutomaticResponse32. Raw inputs are found by id (GetRaw, the
-- verdicts, history, payments and acks name it), downloaded documents by
-- acks.sha256, verdicts by raw_id (raw_verdicts_raw stays).
DROP INDEX IF EXISTS raw_inputs_sha256;
DROP INDEX IF EXISTS raw_verdicts_subject;
