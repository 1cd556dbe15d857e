-- One order, one live payment. payment_orders names, per gateway, merchant
-- account (as the shop gave it, '' for the default) and order id, the
-- payment that holds the order: a start for an order whose holder is
-- pending, unknown or accepted returns that payment instead of creating a
-- second one; after a refusal, cancellation, failure or expiry a start makes
-- a new attempt, which becomes the holder.
CREATE TABLE payment_orders (
    gateway    TEXT NOT NULL,
    merchant   TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    reference  TEXT NOT NULL,
    attempts   BIGINT NOT NULL,
    PRIMARY KEY (gateway, merchant, order_id)
);

-- Idempotency-Key of POST /v1/payments: the first request's body hash and
-- the payment it started. The same key with the same body answers that
-- payment again; with another body it is refused (409).
CREATE TABLE payment_idempotency (
    idem_key    TEXT PRIMARY KEY,
    request_sha TEXT NOT NULL,
    reference   TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- The attempt number of a payment within its order (1, 2, ...) and the
-- answer given to the shop, so a repeated start returns the same redirect.
ALTER TABLE payments ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;
ALTER TABLE payments ADD COLUMN start_answer TEXT NOT NULL DEFAULT '';
