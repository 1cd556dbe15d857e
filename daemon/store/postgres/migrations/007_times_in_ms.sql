-- One time unit (issue 10 item 5): the core tables stored Unix nanoseconds,
-- the domain tables (payments, transmissions: columns named *_ms) Unix
-- milliseconds. Every core time becomes Unix milliseconds (internal/unixms),
-- 0 still meaning "no time". Instants are cut to the millisecond (x / 1e6);
-- deadlines (a lease's end, a kv expiry) are rounded up so that none comes
-- earlier than it did. An acquit older than this migration refuses the
-- converted database (schema_migrations records version 7, which it lacks).
--
-- raw_inputs, raw_verdicts and history refuse UPDATE (001_core, 004):
-- their append-only triggers are dropped for the conversion and recreated
-- identically (same names, events and functions), in this migration's one
-- transaction. The DELETE triggers of raw_inputs and raw_verdicts (004)
-- fire on DELETE only and stay.
DROP TRIGGER raw_inputs_append_only ON raw_inputs;
DROP TRIGGER raw_verdicts_append_only ON raw_verdicts;
DROP TRIGGER history_append_only ON history;

UPDATE raw_inputs SET received_at = received_at / 1000000;
UPDATE raw_verdicts SET at = at / 1000000;
UPDATE history SET at = at / 1000000;

CREATE TRIGGER raw_inputs_append_only BEFORE UPDATE ON raw_inputs FOR EACH ROW EXECUTE FUNCTION acquit_append_only();
CREATE TRIGGER raw_verdicts_append_only BEFORE UPDATE ON raw_verdicts FOR EACH ROW EXECUTE FUNCTION acquit_append_only();
CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history FOR EACH ROW EXECUTE FUNCTION acquit_append_only();

UPDATE events SET next_attempt = next_attempt / 1000000,
  created_at = created_at / 1000000,
  updated_at = updated_at / 1000000,
  locked_until = (locked_until + 999999) / 1000000;
UPDATE event_attempts SET started = started / 1000000, finished = finished / 1000000;
UPDATE kv SET expires_at = (expires_at + 999999) / 1000000 WHERE expires_at <> 0;
UPDATE plugin_state SET updated_at = updated_at / 1000000;
-- (schedule, scheduled) is unique: two runs of a schedule due within the
-- same millisecond (manual runs only: planned ones fall on whole seconds)
-- would collide once cut, so each run is due at its millisecond or 1 ms
-- after the run before it, whichever is later (a run moved into the next
-- millisecond pushes a run of that millisecond on): in (scheduled, id)
-- order, v(n) = max(ms(n), v(n-1) + 1) = n + max over k <= n of (ms(k) - k).
UPDATE schedule_runs SET scheduled = c.v, started = started / 1000000, finished = finished / 1000000
FROM (SELECT id, rn + MAX(ms - rn) OVER (PARTITION BY schedule ORDER BY scheduled, id ROWS UNBOUNDED PRECEDING) AS v
      FROM (SELECT id, schedule, scheduled, scheduled / 1000000 AS ms,
                   ROW_NUMBER() OVER (PARTITION BY schedule ORDER BY scheduled, id) AS rn
            FROM schedule_runs) AS r) AS c
WHERE c.id = schedule_runs.id;
-- On a new database the earlier migrations were just recorded by this
-- acquit, in milliseconds already: only nanosecond values (any instant after
-- 1973 is above 1e17 ns, any before year 5138 below 1e14 ms) are cut.
UPDATE schema_migrations SET applied_at = applied_at / 1000000 WHERE applied_at >= 100000000000000;
