-- Payments: one row per payment started by the shop, decided exactly once.
-- Times are unix milliseconds (portable between SQLite and PostgreSQL).
CREATE TABLE payments (
    reference              TEXT PRIMARY KEY,
    gateway                TEXT NOT NULL,
    merchant               TEXT NOT NULL,
    provider_reference     TEXT NOT NULL,
    transaction_date       TEXT NOT NULL DEFAULT '',
    daily_sequence         BIGINT NOT NULL DEFAULT 0,
    order_id               TEXT NOT NULL,
    amount                 BIGINT NOT NULL,
    currency               TEXT NOT NULL,
    customer_id            TEXT NOT NULL DEFAULT '',
    customer_email         TEXT NOT NULL DEFAULT '',
    success_url            TEXT NOT NULL,
    failure_url            TEXT NOT NULL,
    state                  TEXT NOT NULL,
    decided_channel        TEXT NOT NULL DEFAULT '',
    decided_at             BIGINT NOT NULL DEFAULT 0,
    decided_raw_id         BIGINT NOT NULL DEFAULT 0,
    response_code          TEXT NOT NULL DEFAULT '',
    acquirer_response_code TEXT NOT NULL DEFAULT '',
    authorisation_id       TEXT NOT NULL DEFAULT '',
    explanation            TEXT NOT NULL DEFAULT '',
    init_raw               TEXT NOT NULL DEFAULT '{}',
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    next_check_at          BIGINT NOT NULL,
    check_count            BIGINT NOT NULL DEFAULT 0,
    version                BIGINT NOT NULL DEFAULT 1,
    UNIQUE (gateway, provider_reference, transaction_date)
);

CREATE INDEX payments_due ON payments (state, next_check_at);
CREATE INDEX payments_created ON payments (created_at);
CREATE INDEX payments_order ON payments (order_id);

-- The timeline: every response received about a payment (or naming an
-- unknown reference), with the raw input it came from and its verdict.
CREATE TABLE payment_responses (
    id                     TEXT PRIMARY KEY,
    reference              TEXT NOT NULL,
    n                      BIGINT NOT NULL DEFAULT 0, -- order within the reference
    gateway                TEXT NOT NULL,
    raw_id                 BIGINT NOT NULL DEFAULT 0,
    channel                TEXT NOT NULL,
    outcome                TEXT NOT NULL DEFAULT '',
    response_code          TEXT NOT NULL DEFAULT '',
    acquirer_response_code TEXT NOT NULL DEFAULT '',
    verdict                TEXT NOT NULL,
    at                     BIGINT NOT NULL,
    details                TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX payment_responses_ref ON payment_responses (reference, n);
