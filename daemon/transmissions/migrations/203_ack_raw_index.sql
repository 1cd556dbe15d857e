-- acks.raw_id keeps the downloaded document from store.PruneRaw (retention
-- of refused and never verified inputs, issue 9 item 13), which asks, for
-- each old unverified input, whether an acknowledgement names it.
CREATE INDEX acks_raw ON acks (raw_id);
