-- Indexes no query uses, dropped: every automatic response wrote an entry
-- in each (issue 12). raw_inputs_source (source, received_at): nothing
-- selects raw inputs by source (PruneRaw walks raw_inputs_received).
-- events_lease (state, locked_until): ClaimEvents walks events_state_seq
-- (state, seq) and ExpireLeases filters the few running events found
-- through it as well.
DROP INDEX IF EXISTS raw_inputs_source;
DROP INDEX IF EXISTS events_lease;
