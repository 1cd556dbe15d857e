-- Later operations on a payment (capture, refund, cancellation of the
-- authorisation), as the provider reported them: one row per operation id
-- and status, so a repeated statement is recognised and emits nothing.
CREATE TABLE payment_operations (
    reference    TEXT NOT NULL,
    operation_id TEXT NOT NULL,
    status       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    amount       BIGINT NOT NULL DEFAULT 0,
    currency     TEXT NOT NULL DEFAULT '',
    channel      TEXT NOT NULL,
    raw_id       BIGINT NOT NULL DEFAULT 0,
    at           BIGINT NOT NULL,
    PRIMARY KEY (reference, operation_id, status)
);
