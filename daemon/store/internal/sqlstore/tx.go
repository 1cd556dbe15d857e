package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/ulid"
	"github.com/acquit/acquit/internal/unixms"
)

// Tx is store.Tx on a database/sql transaction.
type Tx struct {
	tx *sql.Tx
	s  *DB
	// view: a read-only transaction on the reader pool (DB.View): no
	// statement cache (it holds the writer's statements) and no write.
	view bool
}

// Emit adds an event to the outbox.
func (t *Tx) Emit(ctx context.Context, ev store.NewEvent) (store.Event, error) {
	if t.view {
		return store.Event{}, fmt.Errorf("emit %s: %w", ev.Type, store.ErrReadOnly)
	}
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
		if _, err := t.tx.ExecContext(t.s.stmtCtx(ctx), t.s.q(t.s.D.SubjectLock), ev.Subject); err != nil {
			return store.Event{}, fmt.Errorf("emit %s: lock subject: %w", ev.Type, err)
		}
	}
	now := time.Now().UTC()
	e := store.Event{
		ID: ulid.New(now), Type: ev.Type, Subject: ev.Subject, Payload: payload,
		State: store.EventPending, NextAttempt: now, CreatedAt: now, UpdatedAt: now,
	}
	var err error
	e.Seq, err = t.s.insertID(ctx, t.tx, `INSERT INTO events
		(id, type, subject, payload, state, attempts, next_attempt, last_error, created_at, updated_at, locked_by, locked_until)
		VALUES (?, ?, ?, ?, 'pending', 0, ?, '', ?, ?, '', 0)`, "seq",
		e.ID, e.Type, e.Subject, string(payload), unixms.From(now), unixms.From(now), unixms.From(now))
	if err != nil {
		return store.Event{}, fmt.Errorf("emit %s: %w", ev.Type, t.s.conflict(err))
	}
	return e, nil
}

// AddVerdict appends a verdict to a raw input.
func (t *Tx) AddVerdict(ctx context.Context, rawID int64, v store.Verdict) error {
	if t.view {
		return fmt.Errorf("verdict for raw %d: %w", rawID, store.ErrReadOnly)
	}
	return addVerdict(ctx, t.s, t.tx, rawID, v)
}

func addVerdict(ctx context.Context, s *DB, tx *sql.Tx, rawID int64, v store.Verdict) error {
	if err := checkName("verdict code", v.Code); err != nil {
		return fmt.Errorf("verdict for raw %d: %w", rawID, err)
	}
	if v.At.IsZero() {
		v.At = time.Now()
	}
	if s.D.IsForeignKey == nil {
		var n int
		if err := s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM raw_inputs WHERE id = ?`, rawID).Scan(&n); err != nil {
			return fmt.Errorf("verdict for raw %d: %w", rawID, err)
		}
		if n == 0 {
			return fmt.Errorf("verdict for raw %d: %w", rawID, store.ErrNotFound)
		}
	}
	_, err := s.txExec(ctx, tx, `INSERT INTO raw_verdicts (raw_id, verified, code, message, subject, at)
		VALUES (?, ?, ?, ?, ?, ?)`, rawID, b2i(v.Verified), v.Code, truncate(v.Message, maxErrorText), truncate(v.Subject, maxName), unixms.From(v.At))
	if err != nil {
		if s.D.IsForeignKey != nil && s.D.IsForeignKey(err) {
			// raw_verdicts.raw_id is the table's only foreign key.
			return fmt.Errorf("verdict for raw %d: %w", rawID, store.ErrNotFound)
		}
		return fmt.Errorf("verdict for raw %d: %w", rawID, err)
	}
	return nil
}

// RecordHistory appends a state transition.
func (t *Tx) RecordHistory(ctx context.Context, h store.History) error {
	if t.view {
		return fmt.Errorf("history %s %s: %w", h.Entity, h.ID, store.ErrReadOnly)
	}
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
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, h.Entity, h.ID, h.From, h.To, h.Cause, raw, string(h.Details), unixms.From(h.At))
	if err != nil {
		return fmt.Errorf("history %s %s: %w", h.Entity, h.ID, err)
	}
	return nil
}

// Exec runs a statement with ? placeholders and returns the rows affected.
// A unique violation is wrapped as store.ErrConflict.
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if t.view {
		res, err = t.tx.ExecContext(ctx, t.s.q(query), args...)
	} else {
		res, err = t.s.txExec(ctx, t.tx, query, args...)
	}
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
	if t.view {
		return row{t.tx.QueryRowContext(ctx, t.s.q(query), args...)}
	}
	return row{t.s.txQueryRow(ctx, t.tx, query, args...)}
}

// Query runs a query.
func (t *Tx) Query(ctx context.Context, query string, args ...any) (store.Rows, error) {
	if t.view {
		rows, err := t.tx.QueryContext(ctx, t.s.q(query), args...)
		if err != nil {
			return nil, err
		}
		return rows, nil
	}
	rows, err := t.s.txQuery(ctx, t.tx, query, args...)
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
