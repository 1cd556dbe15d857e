-- acquit core schema (PostgreSQL). Times were Unix nanoseconds, 0 = unset; 007_times_in_ms made them Unix milliseconds.
CREATE TABLE raw_inputs (
  id          BIGSERIAL PRIMARY KEY,
  source      TEXT NOT NULL,
  channel     TEXT NOT NULL DEFAULT '',
  remote_addr TEXT NOT NULL DEFAULT '',
  method      TEXT NOT NULL DEFAULT '',
  path        TEXT NOT NULL DEFAULT '',
  headers     TEXT NOT NULL DEFAULT '{}',
  body        BYTEA NOT NULL,
  received_at BIGINT NOT NULL,
  sha256      TEXT NOT NULL
);
CREATE INDEX raw_inputs_source ON raw_inputs (source, received_at);
CREATE INDEX raw_inputs_sha256 ON raw_inputs (sha256);

CREATE TABLE raw_verdicts (
  id       BIGSERIAL PRIMARY KEY,
  raw_id   BIGINT NOT NULL REFERENCES raw_inputs (id),
  verified BIGINT NOT NULL,
  code     TEXT NOT NULL,
  message  TEXT NOT NULL DEFAULT '',
  subject  TEXT NOT NULL DEFAULT '',
  at       BIGINT NOT NULL
);
CREATE INDEX raw_verdicts_raw ON raw_verdicts (raw_id);
CREATE INDEX raw_verdicts_subject ON raw_verdicts (subject);

CREATE TABLE history (
  id         BIGSERIAL PRIMARY KEY,
  entity     TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  from_state TEXT NOT NULL DEFAULT '',
  to_state   TEXT NOT NULL DEFAULT '',
  cause      TEXT NOT NULL DEFAULT '',
  raw_id     BIGINT REFERENCES raw_inputs (id),
  details    TEXT NOT NULL DEFAULT '',
  at         BIGINT NOT NULL
);
CREATE INDEX history_entity ON history (entity, entity_id, id);

-- Append-only tables refuse updates and deletes.

CREATE TABLE events (
  seq          BIGSERIAL PRIMARY KEY,
  id           TEXT NOT NULL UNIQUE,
  type         TEXT NOT NULL,
  subject      TEXT NOT NULL DEFAULT '',
  payload      TEXT NOT NULL,
  state        TEXT NOT NULL,
  attempts     BIGINT NOT NULL DEFAULT 0,
  next_attempt BIGINT NOT NULL,
  last_error   TEXT NOT NULL DEFAULT '',
  created_at   BIGINT NOT NULL,
  updated_at   BIGINT NOT NULL,
  locked_by    TEXT NOT NULL DEFAULT '',
  locked_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_due ON events (state, next_attempt);
CREATE INDEX events_lease ON events (state, locked_until);
CREATE INDEX events_undelivered ON events (subject, seq) WHERE state <> 'delivered';

CREATE TABLE event_attempts (
  id       BIGSERIAL PRIMARY KEY,
  event_id TEXT NOT NULL REFERENCES events (id),
  n        BIGINT NOT NULL,
  worker   TEXT NOT NULL,
  started  BIGINT NOT NULL,
  finished BIGINT NOT NULL DEFAULT 0,
  ok       BIGINT NOT NULL DEFAULT 0,
  error    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX event_attempts_event ON event_attempts (event_id, id);

CREATE TABLE kv (
  ns         TEXT NOT NULL,
  k          TEXT NOT NULL,
  value      TEXT NOT NULL,
  expires_at BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (ns, k)
);

CREATE TABLE plugin_state (
  plugin     TEXT NOT NULL,
  k          TEXT NOT NULL,
  value      BYTEA NOT NULL,
  version    BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (plugin, k)
);

CREATE TABLE sequences (
  plugin TEXT NOT NULL,
  name   TEXT NOT NULL,
  value  BIGINT NOT NULL,
  PRIMARY KEY (plugin, name)
);

CREATE TABLE schedule_runs (
  id        BIGSERIAL PRIMARY KEY,
  schedule  TEXT NOT NULL,
  scheduled BIGINT NOT NULL,
  started   BIGINT NOT NULL,
  finished  BIGINT NOT NULL DEFAULT 0,
  ok        BIGINT NOT NULL DEFAULT 0,
  summary   TEXT NOT NULL DEFAULT '',
  error     TEXT NOT NULL DEFAULT '',
  instance  TEXT NOT NULL DEFAULT '',
  UNIQUE (schedule, scheduled)
);
-- At most one unfinished run per schedule: no overlap, even across instances.
CREATE UNIQUE INDEX schedule_runs_one_running ON schedule_runs (schedule) WHERE finished = 0;
CREATE INDEX schedule_runs_unfinished ON schedule_runs (finished, started);

CREATE FUNCTION acquit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER raw_inputs_append_only BEFORE UPDATE OR DELETE ON raw_inputs FOR EACH ROW EXECUTE FUNCTION acquit_append_only();
CREATE TRIGGER raw_verdicts_append_only BEFORE UPDATE OR DELETE ON raw_verdicts FOR EACH ROW EXECUTE FUNCTION acquit_append_only();
CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history FOR EACH ROW EXECUTE FUNCTION acquit_append_only();
