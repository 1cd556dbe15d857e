// Package sqlstore is the database/sql implementation of store.Store shared
// by the SQLite and PostgreSQL drivers; a Dialect holds what differs.
package sqlstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/acquit/acquit/daemon/store"
)

// Dialect is what differs between databases.
type Dialect struct {
	// Name is "sqlite" or "postgres".
	Name string
	// Rebind turns ? placeholders into the database's own.
	Rebind func(string) string
	// IsUnique reports a unique-constraint violation.
	IsUnique func(error) bool
	// ClaimLock is appended to the claim SELECT (" FOR UPDATE OF e SKIP LOCKED").
	ClaimLock string
	// RowLock is appended to SELECTs of a row about to be updated (" FOR UPDATE").
	RowLock string
	// SubjectLock, when set, is run (with the subject as argument) in Emit
	// before the event row is inserted, so that the insertion order of a
	// subject's events is also their commit order.
	SubjectLock string
}

// Limits on stored values.
const (
	maxName      = 256
	maxKVValue   = 1 << 20
	maxPayload   = 1 << 20
	maxErrorText = 4096
	maxStateVal  = 4 << 20
)

// DB implements store.Store on a writer pool W and a reader pool R (the
// same pool for PostgreSQL).
type DB struct {
	W, R       *sql.DB
	D          Dialect
	MaxRawBody int
	// WriterSlots, when set (SQLite: capacity 1), is taken before every
	// write transaction so that a caller waiting for the writer gets an
	// error after WriterWait instead of hanging (e.g. a Store method called
	// inside InTx's fn, which would wait for itself).
	WriterSlots chan struct{}
	// WriterWait bounds the wait for WriterSlots (default 60s).
	WriterWait time.Duration
	closeOnce  sync.Once
	closeErr   error
	kvSets     atomic.Int64
	stmts      stmtCache
}

// kvSweepEvery is how many KVSet calls pass between two sweeps of expired
// entries.
const kvSweepEvery = 256

// ErrWriterBusy is returned when the single SQLite writer stayed taken for
// DB.WriterWait; the usual cause is a Store method called from inside
// InTx's fn (use the Tx instead).
var ErrWriterBusy = errors.New("store writer busy (a Store method called inside InTx?)")

// maxCachedStmts bounds the prepared-statement cache.
const maxCachedStmts = 128

// stmtCache keeps the store's own statements prepared on the single SQLite
// writer connection: a statement first runs unprepared and is recorded as
// wanted; the next begin, with the writer idle, prepares it.
type stmtCache struct {
	mu       sync.Mutex
	prepared map[string]*sql.Stmt
	wanted   map[string]bool
}

// txStmt returns the cached statement for query inside tx, or nil.
func (s *DB) txStmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	if s.WriterSlots == nil {
		return nil // PostgreSQL: pgx caches statements per connection itself
	}
	s.stmts.mu.Lock()
	st := s.stmts.prepared[query]
	if st == nil && len(s.stmts.prepared)+len(s.stmts.wanted) < maxCachedStmts {
		if s.stmts.wanted == nil {
			s.stmts.wanted = map[string]bool{}
		}
		s.stmts.wanted[query] = true
	}
	s.stmts.mu.Unlock()
	if st == nil {
		return nil
	}
	return tx.StmtContext(ctx, st)
}

// prepareWanted prepares the statements recorded as wanted; called with the
// writer slot held and no transaction open.
func (s *DB) prepareWanted(ctx context.Context) {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	if len(s.stmts.wanted) == 0 {
		return
	}
	if s.stmts.prepared == nil {
		s.stmts.prepared = map[string]*sql.Stmt{}
	}
	for q := range s.stmts.wanted {
		st, err := s.W.PrepareContext(ctx, q)
		if err != nil {
			continue // it will keep running unprepared
		}
		s.stmts.prepared[q] = st
	}
	s.stmts.wanted = nil
}

func (s *DB) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	query = s.q(query)
	if st := s.txStmt(ctx, tx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

func (s *DB) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	query = s.q(query)
	if st := s.txStmt(ctx, tx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

func (s *DB) txQuery(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	query = s.q(query)
	if st := s.txStmt(ctx, tx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, query, args...)
}

// begin starts a write transaction.
func (s *DB) begin(ctx context.Context) (*sql.Tx, func(), error) {
	release := func() {}
	if s.WriterSlots != nil {
		wait := s.WriterWait
		if wait <= 0 {
			wait = 60 * time.Second
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case s.WriterSlots <- struct{}{}:
			release = func() { <-s.WriterSlots }
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("begin: %w", ctx.Err())
		case <-t.C:
			return nil, nil, fmt.Errorf("begin: %w after %s", ErrWriterBusy, wait)
		}
		s.prepareWanted(ctx)
	}
	tx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	return tx, release, nil
}

func (s *DB) q(query string) string { return s.D.Rebind(query) }

func toNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) && len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s
}

func checkName(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s: %w: empty", what, store.ErrInvalid)
	}
	if len(v) > maxName {
		return fmt.Errorf("%s: %w: longer than %d bytes", what, store.ErrTooLarge, maxName)
	}
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return fmt.Errorf("%s: %w: not valid UTF-8 text", what, store.ErrInvalid)
	}
	return nil
}

// conflict wraps a unique violation as store.ErrConflict.
func (s *DB) conflict(err error) error {
	if err != nil && s.D.IsUnique(err) {
		return fmt.Errorf("%w: %v", store.ErrConflict, err)
	}
	return err
}

// Close closes both pools.
func (s *DB) Close() error {
	s.closeOnce.Do(func() {
		s.stmts.mu.Lock()
		for _, st := range s.stmts.prepared {
			st.Close()
		}
		s.stmts.prepared = nil
		s.stmts.mu.Unlock()
		err := s.W.Close()
		if s.R != s.W {
			if e := s.R.Close(); err == nil {
				err = e
			}
		}
		s.closeErr = err
	})
	return s.closeErr
}

// Driver names the dialect.
func (s *DB) Driver() string { return s.D.Name }

// InTx runs fn in one transaction on the writer pool. fn must not call
// other Store methods that write (SQLite has one writer connection: that
// would wait for itself and fail with ErrWriterBusy after WriterWait).
func (s *DB) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	sqlTx, release, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer release()
	defer sqlTx.Rollback() //nolint:errcheck // no-op after commit
	if err := fn(&Tx{tx: sqlTx, s: s}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// inTx is InTx for the store's own use.
func (s *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	sqlTx, release, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer release()
	defer sqlTx.Rollback() //nolint:errcheck // no-op after commit
	if err := fn(sqlTx); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Tx is store.Tx on a database/sql transaction.
type Tx struct {
	tx *sql.Tx
	s  *DB
}

// Emit adds an event to the outbox.
func (t *Tx) Emit(ctx context.Context, ev store.NewEvent) (store.Event, error) {
	if err := checkName("event type", ev.Type); err != nil {
		return store.Event{}, fmt.Errorf("emit: %w", err)
	}
	if ev.Subject != "" {
		if err := checkName("event subject", ev.Subject); err != nil {
			return store.Event{}, fmt.Errorf("emit %s: %w", ev.Type, err)
		}
	}
	payload := ev.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	if len(payload) > maxPayload {
		return store.Event{}, fmt.Errorf("emit %s: payload: %w: %d bytes", ev.Type, store.ErrTooLarge, len(payload))
	}
	if !json.Valid(payload) {
		return store.Event{}, fmt.Errorf("emit %s: payload: %w: not JSON", ev.Type, store.ErrInvalid)
	}
	if t.s.D.SubjectLock != "" && ev.Subject != "" {
		if _, err := t.tx.ExecContext(ctx, t.s.q(t.s.D.SubjectLock), ev.Subject); err != nil {
			return store.Event{}, fmt.Errorf("emit %s: lock subject: %w", ev.Type, err)
		}
	}
	now := time.Now().UTC()
	e := store.Event{
		ID: NewID(now), Type: ev.Type, Subject: ev.Subject, Payload: payload,
		State: store.EventPending, NextAttempt: now, CreatedAt: now, UpdatedAt: now,
	}
	err := t.s.txQueryRow(ctx, t.tx, `INSERT INTO events
		(id, type, subject, payload, state, attempts, next_attempt, last_error, created_at, updated_at, locked_by, locked_until)
		VALUES (?, ?, ?, ?, 'pending', 0, ?, '', ?, ?, '', 0) RETURNING seq`,
		e.ID, e.Type, e.Subject, string(payload), toNS(now), toNS(now), toNS(now)).Scan(&e.Seq)
	if err != nil {
		return store.Event{}, fmt.Errorf("emit %s: %w", ev.Type, t.s.conflict(err))
	}
	return e, nil
}

// AddVerdict appends a verdict to a raw input.
func (t *Tx) AddVerdict(ctx context.Context, rawID int64, v store.Verdict) error {
	return addVerdict(ctx, t.s, t.tx, rawID, v)
}

func addVerdict(ctx context.Context, s *DB, tx *sql.Tx, rawID int64, v store.Verdict) error {
	if err := checkName("verdict code", v.Code); err != nil {
		return fmt.Errorf("verdict for raw %d: %w", rawID, err)
	}
	if v.At.IsZero() {
		v.At = time.Now()
	}
	var n int
	if err := s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM raw_inputs WHERE id = ?`, rawID).Scan(&n); err != nil {
		return fmt.Errorf("verdict for raw %d: %w", rawID, err)
	}
	if n == 0 {
		return fmt.Errorf("verdict for raw %d: %w", rawID, store.ErrNotFound)
	}
	_, err := s.txExec(ctx, tx, `INSERT INTO raw_verdicts (raw_id, verified, code, message, subject, at)
		VALUES (?, ?, ?, ?, ?, ?)`, rawID, b2i(v.Verified), v.Code, truncate(v.Message, maxErrorText), truncate(v.Subject, maxName), toNS(v.At))
	if err != nil {
		return fmt.Errorf("verdict for raw %d: %w", rawID, err)
	}
	return nil
}

// RecordHistory appends a state transition.
func (t *Tx) RecordHistory(ctx context.Context, h store.History) error {
	if err := checkName("history entity", h.Entity); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if err := checkName("history id", h.ID); err != nil {
		return fmt.Errorf("history %s: %w", h.Entity, err)
	}
	if len(h.Details) > 0 && !json.Valid(h.Details) {
		return fmt.Errorf("history %s %s: details: %w: not JSON", h.Entity, h.ID, store.ErrInvalid)
	}
	if len(h.Details) > maxPayload {
		return fmt.Errorf("history %s %s: details: %w", h.Entity, h.ID, store.ErrTooLarge)
	}
	if h.At.IsZero() {
		h.At = time.Now()
	}
	var raw any
	if h.RawID != 0 {
		raw = h.RawID
	}
	_, err := t.s.txExec(ctx, t.tx, `INSERT INTO history (entity, entity_id, from_state, to_state, cause, raw_id, details, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, h.Entity, h.ID, h.From, h.To, h.Cause, raw, string(h.Details), toNS(h.At))
	if err != nil {
		return fmt.Errorf("history %s %s: %w", h.Entity, h.ID, err)
	}
	return nil
}

// Exec runs a statement with ? placeholders and returns the rows affected.
// A unique violation is wrapped as store.ErrConflict.
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, t.s.q(query), args...)
	if err != nil {
		return 0, t.s.conflict(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, nil
}

// QueryRow runs a query returning one row; no row scans as store.ErrNotFound
// (which also matches sql.ErrNoRows).
func (t *Tx) QueryRow(ctx context.Context, query string, args ...any) store.Row {
	return row{t.tx.QueryRowContext(ctx, t.s.q(query), args...)}
}

// Query runs a query.
func (t *Tx) Query(ctx context.Context, query string, args ...any) (store.Rows, error) {
	rows, err := t.tx.QueryContext(ctx, t.s.q(query), args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

type row struct{ r *sql.Row }

// Scan scans the row; no row is store.ErrNotFound wrapping sql.ErrNoRows.
func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w (%w)", store.ErrNotFound, err)
	}
	return err
}

// RecordRaw stores one raw input in its own transaction.
func (s *DB) RecordRaw(ctx context.Context, in store.RawInput) (int64, error) {
	if err := checkName("raw source", in.Source); err != nil {
		return 0, fmt.Errorf("record raw: %w", err)
	}
	if len(in.Body) > s.MaxRawBody {
		return 0, fmt.Errorf("record raw from %s: body: %w: %d bytes > %d", in.Source, store.ErrTooLarge, len(in.Body), s.MaxRawBody)
	}
	sum := sha256.Sum256(in.Body)
	computed := hex.EncodeToString(sum[:])
	if in.SHA256 != "" && !strings.EqualFold(in.SHA256, computed) {
		return 0, fmt.Errorf("record raw from %s: %w: sha256 does not match body", in.Source, store.ErrInvalid)
	}
	headers, err := json.Marshal(in.Headers)
	if err != nil {
		return 0, fmt.Errorf("record raw from %s: headers: %w", in.Source, err)
	}
	if len(headers) > maxPayload {
		return 0, fmt.Errorf("record raw from %s: headers: %w", in.Source, store.ErrTooLarge)
	}
	if in.ReceivedAt.IsZero() {
		in.ReceivedAt = time.Now()
	}
	body := in.Body
	if body == nil {
		body = []byte{}
	}
	var id int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.txQueryRow(ctx, tx, `INSERT INTO raw_inputs
			(source, channel, remote_addr, method, path, headers, body, received_at, sha256)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			in.Source, truncate(in.Channel, maxName), truncate(in.RemoteAddr, maxName), truncate(in.Method, 32),
			truncate(in.Path, 4096), string(headers), body, toNS(in.ReceivedAt), computed).Scan(&id); err != nil {
			return err
		}
		for _, v := range in.Verdicts {
			if err := addVerdict(ctx, s, tx, id, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record raw from %s: %w", in.Source, err)
	}
	return id, nil
}

// GetRaw returns one raw input with its verdicts.
func (s *DB) GetRaw(ctx context.Context, id int64) (*store.RawInput, error) {
	var (
		in      store.RawInput
		headers string
		at      int64
	)
	err := s.R.QueryRowContext(ctx, s.q(`SELECT id, source, channel, remote_addr, method, path, headers, body, received_at, sha256
		FROM raw_inputs WHERE id = ?`), id).Scan(&in.ID, &in.Source, &in.Channel, &in.RemoteAddr, &in.Method, &in.Path,
		&headers, &in.Body, &at, &in.SHA256)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("raw %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("raw %d: %w", id, err)
	}
	in.ReceivedAt = fromNS(at)
	if headers != "" && headers != "null" {
		if err := json.Unmarshal([]byte(headers), &in.Headers); err != nil {
			return nil, fmt.Errorf("raw %d: headers: %w", id, err)
		}
	}
	if in.Body == nil {
		in.Body = []byte{}
	}
	rows, err := s.R.QueryContext(ctx, s.q(`SELECT verified, code, message, subject, at FROM raw_verdicts WHERE raw_id = ? ORDER BY id`), id)
	if err != nil {
		return nil, fmt.Errorf("raw %d verdicts: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v store.Verdict
		var ok int
		if err := rows.Scan(&ok, &v.Code, &v.Message, &v.Subject, &at); err != nil {
			return nil, fmt.Errorf("raw %d verdicts: %w", id, err)
		}
		v.Verified = ok != 0
		v.At = fromNS(at)
		in.Verdicts = append(in.Verdicts, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("raw %d verdicts: %w", id, err)
	}
	return &in, nil
}

// ---------------------------------------------------------------------------
// Events

const eventCols = `seq, id, type, subject, payload, state, attempts, next_attempt, last_error, created_at, updated_at, locked_by, locked_until`

type scanner interface{ Scan(dest ...any) error }

func scanEvent(r scanner) (store.Event, error) {
	var (
		e                       store.Event
		payload, state          string
		next, cre, upd, lockedU int64
	)
	if err := r.Scan(&e.Seq, &e.ID, &e.Type, &e.Subject, &payload, &state, &e.Attempts, &next, &e.LastError,
		&cre, &upd, &e.LockedBy, &lockedU); err != nil {
		return e, err
	}
	e.Payload = json.RawMessage(payload)
	e.State = store.EventState(state)
	e.NextAttempt, e.CreatedAt, e.UpdatedAt, e.LockedUntil = fromNS(next), fromNS(cre), fromNS(upd), fromNS(lockedU)
	return e, nil
}

// ClaimEvents leases up to limit deliverable events (see store.Events).
// A running event whose lease expired is deliverable again; its unfinished
// attempt is closed as "lease expired".
func (s *DB) ClaimEvents(ctx context.Context, worker string, limit int, lease time.Duration, now time.Time) ([]store.Event, error) {
	if err := checkName("worker", worker); err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	if limit <= 0 || limit > 1000 {
		return nil, fmt.Errorf("claim events: %w: limit %d", store.ErrInvalid, limit)
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim events: %w: lease %s", store.ErrInvalid, lease)
	}
	nowNS := toNS(now)
	until := toNS(now.Add(lease))
	var out []store.Event
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		type cand struct {
			seq   int64
			state string
		}
		var cands []cand
		// Two walks in seq order, each stopping at limit: expired leases
		// (rare) and due pending events; a non-head event of a subject is
		// skipped by the NOT EXISTS.
		for _, cond := range []string{
			`e.state = 'running' AND +e.locked_until <= ?`,
			`e.state = 'pending' AND +e.next_attempt <= ?`,
		} {
			rows, err := s.txQuery(ctx, tx, `SELECT e.seq, e.state FROM events e
				WHERE `+cond+`
				  AND (e.subject = '' OR NOT EXISTS (SELECT 1 FROM events p
				        WHERE p.subject = e.subject AND p.seq < e.seq AND p.state <> 'delivered'))
				ORDER BY e.seq LIMIT ?`+s.D.ClaimLock, nowNS, limit)
			if err != nil {
				return err
			}
			for rows.Next() {
				var c cand
				if err := rows.Scan(&c.seq, &c.state); err != nil {
					rows.Close()
					return err
				}
				cands = append(cands, c)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		sort.Slice(cands, func(i, j int) bool { return cands[i].seq < cands[j].seq })
		if len(cands) > limit {
			cands = cands[:limit] // PostgreSQL: the extra rows' locks end with the transaction
		}
		for _, c := range cands {
			e, err := scanEvent(s.txQueryRow(ctx, tx, `UPDATE events SET state = 'running', attempts = attempts + 1,
				locked_by = ?, locked_until = ?, updated_at = ? WHERE seq = ? RETURNING `+eventCols, worker, until, nowNS, c.seq))
			if err != nil {
				return err
			}
			if c.state == string(store.EventRunning) {
				if _, err := s.txExec(ctx, tx, `UPDATE event_attempts SET finished = ?, ok = 0, error = 'lease expired'
					WHERE event_id = ? AND finished = 0`, nowNS, e.ID); err != nil {
					return err
				}
			}
			if _, err := s.txExec(ctx, tx, `INSERT INTO event_attempts (event_id, n, worker, started, finished, ok, error)
				VALUES (?, ?, ?, ?, 0, 0, '')`, e.ID, e.Attempts, worker, nowNS); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim events for %s: %w", worker, err)
	}
	return out, nil
}

// heldBy checks, after an update matched no row, why: missing event or
// lease not held.
func (s *DB) heldBy(ctx context.Context, tx *sql.Tx, id, worker string) error {
	var state, by string
	err := s.txQueryRow(ctx, tx, `SELECT state, locked_by FROM events WHERE id = ?`, id).Scan(&state, &by)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: event is %s, leased by %q, not %q", store.ErrConflict, state, by, worker)
}

// CompleteEvent marks a leased event delivered.
func (s *DB) CompleteEvent(ctx context.Context, id, worker string) error {
	now := toNS(time.Now())
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE events SET state = 'delivered', locked_by = '', locked_until = 0, last_error = '', updated_at = ?
			WHERE id = ? AND state = 'running' AND locked_by = ?`, now, id, worker)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return s.heldBy(ctx, tx, id, worker)
		}
		_, err = s.txExec(ctx, tx, `UPDATE event_attempts SET finished = ?, ok = 1 WHERE event_id = ? AND finished = 0`, now, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("complete event %s: %w", id, err)
	}
	return nil
}

// CompleteEvents marks several leased events delivered in one transaction.
func (s *DB) CompleteEvents(ctx context.Context, worker string, ids []string) ([]error, error) {
	now := toNS(time.Now())
	var errs []error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		errs = make([]error, len(ids))
		for i, id := range ids {
			res, err := s.txExec(ctx, tx, `UPDATE events SET state = 'delivered', locked_by = '', locked_until = 0, last_error = '', updated_at = ?
			WHERE id = ? AND state = 'running' AND locked_by = ?`, now, id, worker)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				errs[i] = fmt.Errorf("complete event %s: %w", id, s.heldBy(ctx, tx, id, worker))
				continue
			}
			if _, err := s.txExec(ctx, tx, `UPDATE event_attempts SET finished = ?, ok = 1 WHERE event_id = ? AND finished = 0`, now, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("complete %d events: %w", len(ids), err)
	}
	return errs, nil
}

// FailEvent records a failed attempt.
func (s *DB) FailEvent(ctx context.Context, id, worker, errText string, next time.Time, dead bool) error {
	now := toNS(time.Now())
	state := store.EventPending
	if dead {
		state = store.EventDead
	}
	errText = truncate(errText, maxErrorText)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE events SET state = ?, next_attempt = ?, last_error = ?, locked_by = '', locked_until = 0, updated_at = ?
			WHERE id = ? AND state = 'running' AND locked_by = ?`, string(state), toNS(next), errText, now, id, worker)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return s.heldBy(ctx, tx, id, worker)
		}
		_, err = s.txExec(ctx, tx, `UPDATE event_attempts SET finished = ?, ok = 0, error = ? WHERE event_id = ? AND finished = 0`, now, errText, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("fail event %s: %w", id, err)
	}
	return nil
}

// ExtendLease moves the lease of a running event held by worker.
func (s *DB) ExtendLease(ctx context.Context, id, worker string, until time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE events SET locked_until = ? WHERE id = ? AND state = 'running' AND locked_by = ?`,
			toNS(until), id, worker)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return s.heldBy(ctx, tx, id, worker)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("extend lease of event %s: %w", id, err)
	}
	return nil
}

// ExpireLeases ends, as of now, the leases of running events held by
// workers whose name starts with prefix, except keep: after a restart the
// new process of an instance takes back at once what its killed
// predecessor held, instead of waiting for the leases to run out. The
// events are then redelivered as any expired lease is.
func (s *DB) ExpireLeases(ctx context.Context, prefix, keep string, now time.Time) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE events SET locked_until = ? WHERE state = 'running' AND locked_by <> ?
			AND substr(locked_by, 1, ?) = ? AND locked_until > ?`, toNS(now), keep, len(prefix), prefix, toNS(now))
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire leases of %s*: %w", prefix, err)
	}
	return int(n), nil
}

// ReplayEvent puts a dead or delivered event back to pending.
func (s *DB) ReplayEvent(ctx context.Context, id string) error {
	now := toNS(time.Now())
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE events SET state = 'pending', attempts = 0, next_attempt = ?, last_error = '',
			locked_by = '', locked_until = 0, updated_at = ? WHERE id = ? AND state IN ('dead', 'delivered')`, now, now, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var state string
			err := s.txQueryRow(ctx, tx, `SELECT state FROM events WHERE id = ?`, id).Scan(&state)
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNotFound
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: event is %s", store.ErrConflict, state)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay event %s: %w", id, err)
	}
	return nil
}

// GetEvent returns one event.
func (s *DB) GetEvent(ctx context.Context, id string) (*store.Event, error) {
	e, err := scanEvent(s.R.QueryRowContext(ctx, s.q(`SELECT `+eventCols+` FROM events WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	return &e, nil
}

// ListEvents lists events in insertion order (Limit default 100, max 10000).
func (s *DB) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("list events: %w: limit %d", store.ErrInvalid, f.Limit)
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.Limit > 10000 {
		f.Limit = 10000
	}
	query := `SELECT ` + eventCols + ` FROM events WHERE seq > ?`
	args := []any{f.AfterSeq}
	if f.State != "" {
		query += ` AND state = ?`
		args = append(args, string(f.State))
	}
	if f.Type != "" {
		query += ` AND type = ?`
		args = append(args, f.Type)
	}
	if f.Subject != "" {
		query += ` AND subject = ?`
		args = append(args, f.Subject)
	}
	query += ` ORDER BY seq LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.R.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}

// CountEvents counts events in state ("" = all).
func (s *DB) CountEvents(ctx context.Context, state store.EventState) (int64, error) {
	var n int64
	var err error
	if state == "" {
		err = s.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&n)
	} else {
		err = s.R.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM events WHERE state = ?`), string(state)).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("count events %s: %w", state, err)
	}
	return n, nil
}

// PruneEvents deletes delivered events last updated before cutoff, with
// their attempts, and returns how many events it deleted.
func (s *DB) PruneEvents(ctx context.Context, deliveredBefore time.Time) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		cut := toNS(deliveredBefore)
		if _, err := s.txExec(ctx, tx, `DELETE FROM event_attempts WHERE event_id IN
			(SELECT id FROM events WHERE state = 'delivered' AND updated_at < ?)`, cut); err != nil {
			return err
		}
		res, err := s.txExec(ctx, tx, `DELETE FROM events WHERE state = 'delivered' AND updated_at < ?`, cut)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune events before %s: %w", deliveredBefore.Format(time.RFC3339), err)
	}
	return int(n), nil
}

// EventAttempts lists the attempts of an event.
func (s *DB) EventAttempts(ctx context.Context, id string) ([]store.Attempt, error) {
	rows, err := s.R.QueryContext(ctx, s.q(`SELECT event_id, n, worker, started, finished, ok, error FROM event_attempts WHERE event_id = ? ORDER BY id`), id)
	if err != nil {
		return nil, fmt.Errorf("attempts of event %s: %w", id, err)
	}
	defer rows.Close()
	var out []store.Attempt
	for rows.Next() {
		var a store.Attempt
		var st, fin int64
		var ok int
		if err := rows.Scan(&a.EventID, &a.N, &a.Worker, &st, &fin, &ok, &a.Error); err != nil {
			return nil, fmt.Errorf("attempts of event %s: %w", id, err)
		}
		a.Started, a.Finished, a.OK = fromNS(st), fromNS(fin), ok != 0
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("attempts of event %s: %w", id, err)
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// KV

func checkKV(ns, key string) error {
	if err := checkName("kv namespace", ns); err != nil {
		return err
	}
	return checkName("kv key", key)
}

// KVGet returns an unexpired value.
func (s *DB) KVGet(ctx context.Context, ns, key string) (string, bool, error) {
	if err := checkKV(ns, key); err != nil {
		return "", false, fmt.Errorf("kv get: %w", err)
	}
	var v string
	err := s.R.QueryRowContext(ctx, s.q(`SELECT value FROM kv WHERE ns = ? AND k = ? AND (expires_at = 0 OR expires_at > ?)`),
		ns, key, toNS(time.Now())).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("kv get %s/%s: %w", ns, key, err)
	}
	return v, true, nil
}

// KVSet stores a value; ttl 0 keeps it forever.
func (s *DB) KVSet(ctx context.Context, ns, key, value string, ttl time.Duration) error {
	if err := checkKV(ns, key); err != nil {
		return fmt.Errorf("kv set: %w", err)
	}
	if ttl < 0 {
		return fmt.Errorf("kv set %s/%s: %w: negative ttl", ns, key, store.ErrInvalid)
	}
	if len(value) > maxKVValue {
		return fmt.Errorf("kv set %s/%s: %w: %d bytes", ns, key, store.ErrTooLarge, len(value))
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("kv set %s/%s: %w: value is not UTF-8", ns, key, store.ErrInvalid)
	}
	var exp int64
	if ttl > 0 {
		exp = toNS(time.Now().Add(ttl))
	}
	sweep := s.kvSets.Add(1)%kvSweepEvery == 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, `INSERT INTO kv (ns, k, value, expires_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (ns, k) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`, ns, key, value, exp)
		if err == nil && sweep {
			// Expired entries are invisible already; now and then delete them.
			_, err = s.txExec(ctx, tx, `DELETE FROM kv WHERE expires_at <> 0 AND expires_at <= ?`, toNS(time.Now()))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("kv set %s/%s: %w", ns, key, err)
	}
	return nil
}

// KVDelete removes a key (missing is not an error).
func (s *DB) KVDelete(ctx context.Context, ns, key string) error {
	if err := checkKV(ns, key); err != nil {
		return fmt.Errorf("kv delete: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, `DELETE FROM kv WHERE ns = ? AND k = ?`, ns, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("kv delete %s/%s: %w", ns, key, err)
	}
	return nil
}

// KVIncr adds delta to an integer value (missing or expired = 0). An
// unexpired value keeps its expiry.
func (s *DB) KVIncr(ctx context.Context, ns, key string, delta int64) (int64, error) {
	if err := checkKV(ns, key); err != nil {
		return 0, fmt.Errorf("kv incr: %w", err)
	}
	var out int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.txExec(ctx, tx, `INSERT INTO kv (ns, k, value, expires_at) VALUES (?, ?, '0', 0) ON CONFLICT (ns, k) DO NOTHING`, ns, key); err != nil {
			return err
		}
		var v string
		var exp int64
		if err := s.txQueryRow(ctx, tx, `SELECT value, expires_at FROM kv WHERE ns = ? AND k = ?`+s.D.RowLock, ns, key).Scan(&v, &exp); err != nil {
			return err
		}
		now := toNS(time.Now())
		var cur int64
		if exp != 0 && exp <= now {
			exp = 0
		} else {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return fmt.Errorf("%w: %q", store.ErrNotInteger, truncate(v, 40))
			}
			cur = n
		}
		if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
			return fmt.Errorf("%w: overflow", store.ErrInvalid)
		}
		out = cur + delta
		_, err := s.txExec(ctx, tx, `UPDATE kv SET value = ?, expires_at = ? WHERE ns = ? AND k = ?`, strconv.FormatInt(out, 10), exp, ns, key)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("kv incr %s/%s: %w", ns, key, err)
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Plugin state

// StateGet returns a plugin's value and version; missing is (nil, 0, nil).
func (s *DB) StateGet(ctx context.Context, plugin, key string) ([]byte, int64, error) {
	if err := checkName("plugin", plugin); err != nil {
		return nil, 0, fmt.Errorf("state get: %w", err)
	}
	if err := checkName("state key", key); err != nil {
		return nil, 0, fmt.Errorf("state get %s: %w", plugin, err)
	}
	var v []byte
	var ver int64
	err := s.R.QueryRowContext(ctx, s.q(`SELECT value, version FROM plugin_state WHERE plugin = ? AND k = ?`), plugin, key).Scan(&v, &ver)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("state get %s/%s: %w", plugin, key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, ver, nil
}

// StatePut stores value if the current version equals version (0: must not
// exist) and returns the new version; store.ErrConflict otherwise.
func (s *DB) StatePut(ctx context.Context, plugin, key string, value []byte, version int64) (int64, error) {
	if err := checkName("plugin", plugin); err != nil {
		return 0, fmt.Errorf("state put: %w", err)
	}
	if err := checkName("state key", key); err != nil {
		return 0, fmt.Errorf("state put %s: %w", plugin, err)
	}
	if version < 0 {
		return 0, fmt.Errorf("state put %s/%s: %w: version %d", plugin, key, store.ErrInvalid, version)
	}
	if len(value) > maxStateVal {
		return 0, fmt.Errorf("state put %s/%s: %w: %d bytes", plugin, key, store.ErrTooLarge, len(value))
	}
	if value == nil {
		value = []byte{}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if version == 0 {
			_, err := s.txExec(ctx, tx, `INSERT INTO plugin_state (plugin, k, value, version, updated_at) VALUES (?, ?, ?, 1, ?)`,
				plugin, key, value, toNS(time.Now()))
			return s.conflict(err)
		}
		res, err := s.txExec(ctx, tx, `UPDATE plugin_state SET value = ?, version = version + 1, updated_at = ?
			WHERE plugin = ? AND k = ? AND version = ?`, value, toNS(time.Now()), plugin, key, version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: version %d is not current", store.ErrConflict, version)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("state put %s/%s: %w", plugin, key, err)
	}
	return version + 1, nil
}

// NextSequence returns the next value (from 1) of a named counter.
func (s *DB) NextSequence(ctx context.Context, plugin, name string) (int64, error) {
	if err := checkName("plugin", plugin); err != nil {
		return 0, fmt.Errorf("next sequence: %w", err)
	}
	if err := checkName("sequence name", name); err != nil {
		return 0, fmt.Errorf("next sequence %s: %w", plugin, err)
	}
	var v int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.txQueryRow(ctx, tx, `INSERT INTO sequences (plugin, name, value) VALUES (?, ?, 1)
			ON CONFLICT (plugin, name) DO UPDATE SET value = sequences.value + 1 RETURNING value`, plugin, name).Scan(&v)
	})
	if err != nil {
		return 0, fmt.Errorf("next sequence %s/%s: %w", plugin, name, err)
	}
	return v, nil
}

// ---------------------------------------------------------------------------
// Schedules

// StartRun records a run; store.ErrConflict when that due time already has
// a run or a run of the schedule is unfinished.
func (s *DB) StartRun(ctx context.Context, schedule string, scheduled time.Time, instance string, now time.Time) (int64, error) {
	if err := checkName("schedule", schedule); err != nil {
		return 0, fmt.Errorf("start run: %w", err)
	}
	if scheduled.IsZero() || now.IsZero() {
		return 0, fmt.Errorf("start run %s: %w: zero time", schedule, store.ErrInvalid)
	}
	var id int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.txQueryRow(ctx, tx, `INSERT INTO schedule_runs (schedule, scheduled, started, finished, ok, summary, error, instance)
			VALUES (?, ?, ?, 0, 0, '', '', ?) RETURNING id`, schedule, toNS(scheduled), toNS(now), truncate(instance, maxName)).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("start run %s at %s: %w", schedule, scheduled.Format(time.RFC3339), s.conflict(err))
	}
	return id, nil
}

// FinishRun records the end of a run; ErrConflict if already finished.
func (s *DB) FinishRun(ctx context.Context, id int64, ok bool, summary, errText string, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE schedule_runs SET finished = ?, ok = ?, summary = ?, error = ? WHERE id = ? AND finished = 0`,
			toNS(now), b2i(ok), truncate(summary, maxErrorText), truncate(errText, maxErrorText), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var c int
			if err := s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM schedule_runs WHERE id = ?`, id).Scan(&c); err != nil {
				return err
			}
			if c == 0 {
				return store.ErrNotFound
			}
			return fmt.Errorf("%w: already finished", store.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish run %d: %w", id, err)
	}
	return nil
}

const runCols = `id, schedule, scheduled, started, finished, ok, summary, error, instance`

func scanRun(r scanner) (store.Run, error) {
	var run store.Run
	var sch, st, fin int64
	var ok int
	err := r.Scan(&run.ID, &run.Schedule, &sch, &st, &fin, &ok, &run.Summary, &run.Error, &run.Instance)
	run.Scheduled, run.Started, run.Finished, run.OK = fromNS(sch), fromNS(st), fromNS(fin), ok != 0
	return run, err
}

// LastRun returns the run with the latest due time.
func (s *DB) LastRun(ctx context.Context, schedule string) (*store.Run, error) {
	run, err := scanRun(s.R.QueryRowContext(ctx, s.q(`SELECT `+runCols+` FROM schedule_runs WHERE schedule = ? ORDER BY scheduled DESC, id DESC LIMIT 1`), schedule))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("last run of %s: %w", schedule, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("last run of %s: %w", schedule, err)
	}
	return &run, nil
}

// ListRuns lists the latest runs of a schedule ("" = all), newest first.
func (s *DB) ListRuns(ctx context.Context, schedule string, limit int) ([]store.Run, error) {
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	query := `SELECT ` + runCols + ` FROM schedule_runs`
	var args []any
	if schedule != "" {
		query += ` WHERE schedule = ?`
		args = append(args, schedule)
	}
	query += ` ORDER BY scheduled DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.R.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list runs of %s: %w", schedule, err)
	}
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs of %s: %w", schedule, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs of %s: %w", schedule, err)
	}
	return out, nil
}

// AbandonRuns fails unfinished runs started before cutoff.
func (s *DB) AbandonRuns(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE schedule_runs SET finished = ?, ok = 0, error = 'abandoned: the instance running it stopped'
			WHERE finished = 0 AND started < ?`, toNS(time.Now()), toNS(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("abandon runs before %s: %w", before.Format(time.RFC3339), err)
	}
	return int(n), nil
}

// AbandonInstanceRuns marks every unfinished run started by instance as
// failed. A process calls it at start: instance names are unique per
// process, so such runs belong to a predecessor that died (kill -9).
func (s *DB) AbandonInstanceRuns(ctx context.Context, instance string) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE schedule_runs SET finished = ?, ok = 0, error = 'abandoned: the process running it died'
			WHERE finished = 0 AND instance = ?`, toNS(time.Now()), instance)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("abandon runs of %s: %w", instance, err)
	}
	return int(n), nil
}

// ---------------------------------------------------------------------------
// IDs

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var (
	idMu   sync.Mutex
	lastMS int64
	lastR  [10]byte
)

// NewID returns a 26-character ULID-style id: 48 bits of milliseconds then
// 80 random bits, Crockford base32, monotonic within one process.
func NewID(t time.Time) string {
	ms := t.UnixMilli()
	idMu.Lock()
	var r [10]byte
	if ms <= lastMS {
		ms = lastMS
		r = lastR
		for i := 9; i >= 0; i-- { // increment the random part
			r[i]++
			if r[i] != 0 {
				break
			}
		}
	} else {
		_, _ = rand.Read(r[:])
	}
	lastMS, lastR = ms, r
	idMu.Unlock()

	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(ms)<<16)
	copy(b[6:], r[:])
	// 128 bits -> 26 base32 chars (first char holds 3 bits).
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
