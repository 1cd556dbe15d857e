-- Submissions in progress. A file's transactions are written to
-- transmission_txs in batches while the file is read (nothing holds them
-- all in memory), under the id its transmission will have; the
-- transmissions row commits last, and until then no query sees them (every
-- reader goes through transmissions). A row here names the staged
-- transactions of a submission not committed yet, or interrupted by a
-- crash: those are purged after six hours.
CREATE TABLE transmission_staging (
    id         TEXT PRIMARY KEY,
    bank       TEXT NOT NULL,
    started_ms BIGINT NOT NULL
);
