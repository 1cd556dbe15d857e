-- acquit core schema (SQLite). Times were Unix nanoseconds, 0 = unset; 007_times_in_ms made them Unix milliseconds.
CREATE TABLE raw_inputs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  source      TEXT NOT NULL,
  channel     TEXT NOT NULL DEFAULT '',
  remote_addr TEXT NOT NULL DEFAULT '',
  method      TEXT NOT NULL DEFAULT '',
  path        TEXT NOT NULL DEFAULT '',
  headers     TEXT NOT NULL DEFAULT '{}',
  body        BLOB NOT NULL,
  received_at INTEGER NOT NULL,
  sha256      TEXT NOT NULL
);
CREATE INDEX raw_inputs_source ON raw_inputs (source, received_at);
CREATE INDEX raw_inputs_sha256 ON raw_inputs (sha256);

CREATE TABLE raw_verdicts (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  raw_id   INTEGER NOT NULL REFERENCES raw_inputs (id),
  verified INTEGER NOT NULL,
  code     TEXT NOT NULL,
  message  TEXT NOT NULL DEFAULT '',
  subject  TEXT NOT NULL DEFAULT '',
  at       INTEGER NOT NULL
);
CREATE INDEX raw_verdicts_raw ON raw_verdicts (raw_id);
CREATE INDEX raw_verdicts_subject ON raw_verdicts (subject);

CREATE TABLE history (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  entity     TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  from_state TEXT NOT NULL DEFAULT '',
  to_state   TEXT NOT NULL DEFAULT '',
  cause      TEXT NOT NULL DEFAULT '',
  raw_id     INTEGER REFERENCES raw_inputs (id),
  details    TEXT NOT NULL DEFAULT '',
  at         INTEGER NOT NULL
);
CREATE INDEX history_entity ON history (entity, entity_id, id);

-- Append-only tables refuse updates and deletes.
CREATE TRIGGER raw_inputs_append_only_u BEFORE UPDATE ON raw_inputs BEGIN SELECT RAISE(ABORT, 'raw_inputs is append-only'); END;
CREATE TRIGGER raw_inputs_append_only_d BEFORE DELETE ON raw_inputs BEGIN SELECT RAISE(ABORT, 'raw_inputs is append-only'); END;
CREATE TRIGGER raw_verdicts_append_only_u BEFORE UPDATE ON raw_verdicts BEGIN SELECT RAISE(ABORT, 'raw_verdicts is append-only'); END;
CREATE TRIGGER raw_verdicts_append_only_d BEFORE DELETE ON raw_verdicts BEGIN SELECT RAISE(ABORT, 'raw_verdicts is append-only'); END;
CREATE TRIGGER history_append_only_u BEFORE UPDATE ON history BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TRIGGER history_append_only_d BEFORE DELETE ON history BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;

CREATE TABLE events (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT NOT NULL UNIQUE,
  type         TEXT NOT NULL,
  subject      TEXT NOT NULL DEFAULT '',
  payload      TEXT NOT NULL,
  state        TEXT NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_attempt INTEGER NOT NULL,
  last_error   TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  locked_by    TEXT NOT NULL DEFAULT '',
  locked_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_due ON events (state, next_attempt);
CREATE INDEX events_lease ON events (state, locked_until);
CREATE INDEX events_undelivered ON events (subject, seq) WHERE state <> 'delivered';

CREATE TABLE event_attempts (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL REFERENCES events (id),
  n        INTEGER NOT NULL,
  worker   TEXT NOT NULL,
  started  INTEGER NOT NULL,
  finished INTEGER NOT NULL DEFAULT 0,
  ok       INTEGER NOT NULL DEFAULT 0,
  error    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX event_attempts_event ON event_attempts (event_id, id);

CREATE TABLE kv (
  ns         TEXT NOT NULL,
  k          TEXT NOT NULL,
  value      TEXT NOT NULL,
  expires_at INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (ns, k)
);

CREATE TABLE plugin_state (
  plugin     TEXT NOT NULL,
  k          TEXT NOT NULL,
  value      BLOB NOT NULL,
  version    INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (plugin, k)
);

CREATE TABLE sequences (
  plugin TEXT NOT NULL,
  name   TEXT NOT NULL,
  value  INTEGER NOT NULL,
  PRIMARY KEY (plugin, name)
);

CREATE TABLE schedule_runs (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  schedule  TEXT NOT NULL,
  scheduled INTEGER NOT NULL,
  started   INTEGER NOT NULL,
  finished  INTEGER NOT NULL DEFAULT 0,
  ok        INTEGER NOT NULL DEFAULT 0,
  summary   TEXT NOT NULL DEFAULT '',
  error     TEXT NOT NULL DEFAULT '',
  instance  TEXT NOT NULL DEFAULT '',
  UNIQUE (schedule, scheduled)
);
-- At most one unfinished run per schedule: no overlap, even across instances.
CREATE UNIQUE INDEX schedule_runs_one_running ON schedule_runs (schedule) WHERE finished = 0;
CREATE INDEX schedule_runs_unfinished ON schedule_runs (finished, started);
