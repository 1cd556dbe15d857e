-- The columns naming raw inputs keep them from store.PruneRaw (retention of
-- refused and never verified inputs, issue 9 item 13): it asks, for each
-- old unverified input, whether one of these names it.
CREATE INDEX payments_decided_raw ON payments (decided_raw_id) WHERE decided_raw_id <> 0;
CREATE INDEX payment_responses_raw ON payment_responses (raw_id) WHERE raw_id <> 0;
CREATE INDEX payment_operations_raw ON payment_operations (raw_id) WHERE raw_id <> 0;
