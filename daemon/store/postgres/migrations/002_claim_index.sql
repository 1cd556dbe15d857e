-- ClaimEvents walks due events of one state in seq order and stops at its
-- limit; this index serves that walk (the (state, next_attempt) index made
-- the planner sort every pending event on each claim).
CREATE INDEX events_state_seq ON events (state, seq);
DROP INDEX events_due;
