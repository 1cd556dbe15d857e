-- Transmissions: one row per file sent to a bank, with the identifiers its
-- acknowledgements will name. Times are unix milliseconds (portable).
CREATE TABLE transmissions (
    id              TEXT PRIMARY KEY,
    bank            TEXT NOT NULL,
    function        TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    spool_path      TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    size            BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    msg_id          TEXT NOT NULL,
    nb_of_txs       BIGINT NOT NULL,
    ctrl_sum        TEXT NOT NULL,
    state           TEXT NOT NULL,
    order_id        TEXT NOT NULL DEFAULT '',
    transaction_id  TEXT NOT NULL DEFAULT '',
    partner_id      TEXT NOT NULL DEFAULT '',
    upload_attempts BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    details         TEXT NOT NULL DEFAULT '{}',
    created_ms      BIGINT NOT NULL,
    submitted_ms    BIGINT NOT NULL DEFAULT 0,
    deadline_ms     BIGINT NOT NULL DEFAULT 0,
    updated_ms      BIGINT NOT NULL,
    version         BIGINT NOT NULL DEFAULT 1,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until_ms  BIGINT NOT NULL DEFAULT 0,
    UNIQUE (bank, sha256)
);
CREATE INDEX transmissions_state ON transmissions (state, deadline_ms);
CREATE INDEX transmissions_msg ON transmissions (bank, msg_id);
CREATE INDEX transmissions_order ON transmissions (bank, order_id);

-- The transactions of each file, with their latest status from the bank.
CREATE TABLE transmission_txs (
    transmission_id TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    pmt_inf_id      TEXT NOT NULL,
    end_to_end_id   TEXT NOT NULL,
    instr_id        TEXT NOT NULL DEFAULT '',
    amount          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    name            TEXT NOT NULL DEFAULT '',
    iban            TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT '',
    reason_code     TEXT NOT NULL DEFAULT '',
    reason_text     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (transmission_id, seq)
);
CREATE INDEX transmission_txs_e2e ON transmission_txs (end_to_end_id);

-- Every acknowledgement document downloaded, once per content.
CREATE TABLE acks (
    id           TEXT PRIMARY KEY,
    bank         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    format       TEXT NOT NULL DEFAULT '',
    name         TEXT NOT NULL DEFAULT '',
    raw_id       BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    received_ms  BIGINT NOT NULL,
    parse_error  TEXT NOT NULL DEFAULT '',
    entries      BIGINT NOT NULL DEFAULT 0,
    unmatched    BIGINT NOT NULL DEFAULT 0,
    UNIQUE (bank, kind, sha256)
);

-- What each acknowledgement said, entry by entry, and which transmission it
-- was matched to ('' when it matched nothing: ack.unmatched).
CREATE TABLE ack_entries (
    ack_id          TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    transmission_id TEXT NOT NULL DEFAULT '',
    level           TEXT NOT NULL,
    ref             TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT '',
    reason_code     TEXT NOT NULL DEFAULT '',
    reason_text     TEXT NOT NULL DEFAULT '',
    at_ms           BIGINT NOT NULL DEFAULT 0,
    summary         TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (ack_id, seq)
);
CREATE INDEX ack_entries_tx ON ack_entries (transmission_id);
