// Package store holds acquit's durable state behind one interface, with an
// embedded SQLite implementation (the default) and a PostgreSQL one for
// several instances sharing the work. Both pass the same suite
// (storetest).
//
// Rules every implementation keeps:
//   - every raw input from a bank is recorded as received before anything acts
//     on it (RecordRaw), and its verdict is appended, never overwritten; a
//     raw input is deleted only by PruneRaw, and only when no verdict
//     verified it and nothing names it (refused or never verified input
//     past its retention);
//   - a state change and the event it raises commit in one transaction
//     (Tx.Emit inside Store.InTx): the outbox;
//   - nothing is updated in place without a record of the previous state
//     (history rows).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/acquit/acquit/internal/unixms"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when an optimistic version check fails or a unique
// key is already taken.
var ErrConflict = errors.New("conflict")

// ErrInvalid is returned when an argument is malformed (empty required
// field, payload that is not JSON, negative limit...).
var ErrInvalid = errors.New("invalid argument")

// ErrTooLarge is returned when an input exceeds the store's size limits.
var ErrTooLarge = errors.New("too large")

// ErrNotInteger is returned by KVIncr when the stored value is not an
// integer.
var ErrNotInteger = errors.New("value is not an integer")

// ErrReadOnly is returned by a write attempted inside Store.View.
var ErrReadOnly = errors.New("store: write inside a read-only View")

// Store is acquit's durable state.
type Store interface {
	// InTx runs fn in one transaction; it commits when fn returns nil.
	InTx(ctx context.Context, fn func(tx Tx) error) error

	// View runs fn in a read-only transaction that leaves the writer
	// alone: on SQLite on a reader connection, all of fn's statements
	// reading one snapshot; on PostgreSQL a READ ONLY transaction (read
	// committed, as InTx's). Whatever fn tries to write fails (Tx.Emit,
	// AddVerdict and RecordHistory with ErrReadOnly, Tx.Exec with the
	// database's refusal). For the reads behind the admin API, the CLI
	// and the dashboard, which on the single SQLite writer would wait for
	// (and hold up) the notifications being recorded.
	View(ctx context.Context, fn func(tx Tx) error) error

	// RecordRaw stores one raw input as received and returns its id. It is
	// its own transaction, committed before the input is acted on.
	RecordRaw(ctx context.Context, in RawInput) (int64, error)
	// RecordRawStream stores one raw input whose body, of any size, is read
	// from body, so the body is never held in memory. in.Body must be
	// empty; in.SHA256 and in.Size are required and checked against what
	// body yields (a mismatch, a short or a longer body store nothing and
	// return ErrInvalid). The body is written first in RawChunkSize chunks,
	// each in its own short transaction (other writers go in between), then
	// the raw input naming it is committed in one short transaction: a body
	// no raw input names is never a stored document, and SweepRawBodies
	// deletes it once idle. Committed before it returns, like RecordRaw.
	RecordRawStream(ctx context.Context, in RawInput, body io.Reader) (int64, error)
	// GetRaw returns one raw input with its verdicts. The body of a chunked
	// input (RawInput.Chunked) is not loaded: read it with OpenRawBody.
	GetRaw(ctx context.Context, id int64) (*RawInput, error)
	// PruneRaw deletes the raw inputs received before before that nothing
	// keeps, with their verdicts and other parts (tables named raw_*), and
	// returns how many inputs it deleted. A raw input is kept when a
	// verdict verified it, or when a row of another table names it in a
	// column named raw_id or ending in _raw_id (history, a payment's
	// timeline, an acknowledgement...): what is left is refused input and
	// input whose verification never finished (nothing verifies a raw
	// input again: the sender retries, reconciliation asks). It works in
	// transactions of at most batch inputs examined (0: 500), so that it
	// never holds the writer long, until done or ctx ends. An
	// implementation may resume where its previous call stopped (what it
	// walked past was deleted or is kept for good).
	PruneRaw(ctx context.Context, before time.Time, batch int) (int, error)
	// SweepRawBodies deletes the bodies RecordRawStream started that no
	// raw input names and that nobody wrote to since idleBefore (their
	// writer died: kill -9, or an error whose own cleanup failed), with
	// their chunks, a few chunks per transaction, and returns how many it
	// deleted. Call it with idleBefore at least RawBodyIdle ago, so that
	// the bodies being written by any instance are left alone.
	SweepRawBodies(ctx context.Context, idleBefore time.Time) (int, error)
	// OpenRawBody streams the body of raw input id, chunked or not, and
	// returns its size. The reader fails if a chunk is missing.
	OpenRawBody(ctx context.Context, id int64) (io.ReadCloser, int64, error)

	Events
	KV
	PluginState
	Schedules

	// Close releases the database.
	Close() error
	// Driver names the implementation ("sqlite" or "postgres").
	Driver() string
	// SerialWrites reports that write transactions never overlap: InTx's
	// fn runs alone, from its first statement to its return, so a row it
	// reads stays current until then and needs no row lock (SQLite, with
	// its one writer). False when transactions run concurrently
	// (PostgreSQL): a read-then-write must lock its row first.
	SerialWrites() bool
}

// Tx is what can be done inside one transaction.
type Tx interface {
	// Emit adds an event to the outbox; it is delivered after commit.
	Emit(ctx context.Context, ev NewEvent) (Event, error)
	// AddVerdict appends a verdict to a raw input.
	AddVerdict(ctx context.Context, rawID int64, v Verdict) error
	// RecordHistory appends a state transition of an entity.
	RecordHistory(ctx context.Context, h History) error
	// Exec and Query give domain packages (payments, transmissions) access
	// to their own tables with portable SQL using ? placeholders; the
	// PostgreSQL implementation rewrites them to $n.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
	Query(ctx context.Context, query string, args ...any) (Rows, error)
}

// Row is a single result row.
type Row interface{ Scan(dest ...any) error }

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// RawInput is one input from outside, as received.
type RawInput struct {
	ID         int64
	Source     string // "atos", "ebics:bnp", ...
	Channel    string // "automatic", "manual", "download", ...
	RemoteAddr string
	Method     string
	Path       string
	Headers    map[string][]string
	Body       []byte
	ReceivedAt time.Time
	// SHA256 of Body, hex; computed by the store when empty.
	SHA256 string
	// Size is the body's length (set by GetRaw; required by
	// RecordRawStream).
	Size int64
	// Chunked is set by GetRaw when the body is stored in chunks
	// (RecordRawStream): Body is then empty, read it with OpenRawBody.
	Chunked  bool
	Verdicts []Verdict
	// DeferSync (RecordRaw only) lets the commit skip its own flush to
	// disk: the input is stored for good against a crash of this process
	// (kill -9) when RecordRaw returns, and against power loss once the
	// caller's next ordinary commit returns (SQLite WAL: that commit's
	// fsync covers the WAL written before it; PostgreSQL: the WAL is
	// flushed past both). Set it only when the caller always commits
	// again before it answers the sender (payments: the verdict or the
	// transition), so that nothing answered is ever less durable.
	DeferSync bool
}

// RawBodyIdle is how long a body RecordRawStream is writing may go
// without a new chunk before SweepRawBodies may take it for an orphan:
// a chunk is written every few milliseconds while a body streams.
const RawBodyIdle = 10 * time.Minute

// RawChunkSize is the size of one raw_body_chunks row written by
// RecordRawStream (the last one may be shorter).
const RawChunkSize = 1 << 20

// Verdict is the outcome of verifying a raw input.
type Verdict struct {
	Verified bool
	Code     string // "ok", "bad_seal", "duplicate", ...
	Message  string
	Subject  string // the payment/transmission it concerned, when known
	At       time.Time
}

// History is one state transition of an entity.
type History struct {
	Entity  string // "payment", "transmission"
	ID      string
	From    string
	To      string
	Cause   string // channel or reason
	RawID   int64  // raw input that caused it, 0 if none
	Details json.RawMessage
	At      time.Time
}

// NewEvent is an event to be emitted.
type NewEvent struct {
	Type    string // "payment.accepted", ...
	Subject string // ordering key: events of one subject are delivered in order ("" = unordered)
	Payload json.RawMessage
}

// EventState is where an event is in its delivery.
type EventState string

// Event states.
const (
	EventPending   EventState = "pending"
	EventRunning   EventState = "running"
	EventDelivered EventState = "delivered"
	EventDead      EventState = "dead"
)

// Event is an outbox event.
type Event struct {
	ID          string          `json:"id"`  // stable id (ULID-like, sortable), the hook's idempotency key
	Seq         int64           `json:"seq"` // global insertion order
	Type        string          `json:"type"`
	Subject     string          `json:"subject"`
	Payload     json.RawMessage `json:"payload"`
	State       EventState      `json:"state"`
	Attempts    int             `json:"attempts"`
	NextAttempt time.Time       `json:"next_attempt,omitzero"`
	LastError   string          `json:"last_error,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	LockedBy    string          `json:"locked_by,omitempty"`
	LockedUntil time.Time       `json:"locked_until,omitzero"`
}

// EventFilter selects events for listing.
type EventFilter struct {
	State    EventState
	Type     string
	Subject  string
	Limit    int
	AfterSeq int64
}

// Events is the outbox.
type Events interface {
	// ClaimEvents leases up to limit deliverable events for worker until
	// lease expires. An event is deliverable when it is pending, due
	// (NextAttempt <= now), and no earlier event of the same subject is
	// undelivered (pending, running or dead): order per subject.
	ClaimEvents(ctx context.Context, worker string, limit int, lease time.Duration, now time.Time) ([]Event, error)
	// CompleteEvent marks a leased event delivered.
	CompleteEvent(ctx context.Context, id, worker string) error
	// FailEvent records a failed attempt: back to pending at next, or dead
	// when dead is set.
	FailEvent(ctx context.Context, id, worker, errText string, next time.Time, dead bool) error
	// ReplayEvent puts a dead (or delivered) event back to pending, attempts
	// reset, keeping its id.
	ReplayEvent(ctx context.Context, id string) error
	GetEvent(ctx context.Context, id string) (*Event, error)
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)
	// EventAttempts lists every delivery attempt of an event.
	EventAttempts(ctx context.Context, id string) ([]Attempt, error)
	// ExtendLease moves the lease of a running event held by worker to
	// until; ErrConflict when worker no longer holds it.
	ExtendLease(ctx context.Context, id, worker string, until time.Time) error
	// CountEvents counts events in state ("" counts all).
	CountEvents(ctx context.Context, state EventState) (int64, error)
	// CompleteEvents marks several leased events delivered in one
	// transaction (one disk sync instead of one per event). errs[i] is the
	// outcome for ids[i], as CompleteEvent would return it; err is set when
	// the transaction failed.
	CompleteEvents(ctx context.Context, worker string, ids []string) (errs []error, err error)
	// PruneEvents deletes delivered events (and their attempts) delivered
	// before deliveredBefore; the outbox would otherwise grow forever.
	// Undelivered (pending, running, dead) events are never pruned.
	PruneEvents(ctx context.Context, deliveredBefore time.Time) (int, error)
	// ExpireLeases ends at once the leases of running events held by
	// workers whose name starts with prefix, except keep (the previous
	// processes of a restarted instance), and returns how many.
	ExpireLeases(ctx context.Context, prefix, keep string, now time.Time) (int, error)
}

// AttemptLeaseExpired is the Error of an attempt whose lease ran out before
// an outcome was recorded: the process delivering it died (or lost the
// store) while the handler ran. ClaimEvents closes such attempts with it.
const AttemptLeaseExpired = "lease expired"

// Attempt is one delivery attempt of an event.
type Attempt struct {
	EventID  string    `json:"event_id"`
	N        int       `json:"n"`
	Worker   string    `json:"worker"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
}

// KV is the small durable key-value store offered to Lua hooks.
type KV interface {
	KVGet(ctx context.Context, ns, key string) (string, bool, error)
	// KVSet stores value; ttl 0 keeps it forever.
	KVSet(ctx context.Context, ns, key, value string, ttl time.Duration) error
	KVDelete(ctx context.Context, ns, key string) error
	// KVIncr adds delta to an integer value (missing = 0) and returns it.
	KVIncr(ctx context.Context, ns, key string, delta int64) (int64, error)
}

// PluginState backs sdk.Host for plugins.
type PluginState interface {
	StateGet(ctx context.Context, plugin, key string) ([]byte, int64, error)
	StatePut(ctx context.Context, plugin, key string, value []byte, version int64) (int64, error)
	NextSequence(ctx context.Context, plugin, name string) (int64, error)
}

// Run is one run of a schedule.
type Run struct {
	ID        int64
	Schedule  string
	Scheduled time.Time // the time the run was due
	Started   time.Time
	Finished  time.Time
	OK        bool
	Summary   string
	Error     string
	Instance  string
}

// Schedules records schedule runs and leases them among instances.
type Schedules interface {
	// StartRun records a run of schedule due at scheduled. It returns
	// ErrConflict if a run for the same schedule and due time already
	// exists (another instance took it, or it already ran) or if a run of
	// the schedule is still unfinished (no overlap).
	StartRun(ctx context.Context, schedule string, scheduled time.Time, instance string, now time.Time) (int64, error)
	FinishRun(ctx context.Context, id int64, ok bool, summary, errText string, now time.Time) error
	LastRun(ctx context.Context, schedule string) (*Run, error)
	ListRuns(ctx context.Context, schedule string, limit int) ([]Run, error)
	// AbandonRuns marks unfinished runs started before cutoff as failed
	// (their process died).
	AbandonRuns(ctx context.Context, before time.Time) (int, error)
	// AbandonInstanceRuns marks the unfinished runs of one instance as
	// failed (its previous process died); the scheduler calls it at start.
	AbandonInstanceRuns(ctx context.Context, instance string) (int, error)
}

// ReadHistory returns the state transitions recorded for one entity
// ("payment", "transmission") inside tx, oldest first. RawID is 0 when no
// raw input caused the transition; At is read from Unix milliseconds
// (internal/unixms).
func ReadHistory(ctx context.Context, tx Tx, entity, id string) ([]History, error) {
	rows, err := tx.Query(ctx, `SELECT from_state, to_state, cause, COALESCE(raw_id, 0), details, at FROM history
		WHERE entity = ? AND entity_id = ? ORDER BY id`, entity, id)
	if err != nil {
		return nil, fmt.Errorf("history of %s %s: %w", entity, id, err)
	}
	defer rows.Close()
	var out []History
	for rows.Next() {
		h := History{Entity: entity, ID: id}
		var details string
		var at int64
		if err := rows.Scan(&h.From, &h.To, &h.Cause, &h.RawID, &details, &at); err != nil {
			return nil, fmt.Errorf("history of %s %s: %w", entity, id, err)
		}
		h.Details, h.At = json.RawMessage(details), unixms.Time(at)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history of %s %s: %w", entity, id, err)
	}
	return out, nil
}

// CountGroups runs inside tx a query whose rows are (key TEXT, count
// INTEGER), e.g. "SELECT state, COUNT(*) FROM payments GROUP BY state",
// and returns the counts by key.
func CountGroups(ctx context.Context, tx Tx, query string, args ...any) (map[string]int64, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, rows.Err()
}
