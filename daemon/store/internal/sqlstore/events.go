package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/unixms"
)

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
	e.NextAttempt, e.CreatedAt, e.UpdatedAt, e.LockedUntil = unixms.Time(next), unixms.Time(cre), unixms.Time(upd), unixms.Time(lockedU)
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
	nowMS := unixms.From(now)
	until := unixms.Ceil(now.Add(lease))
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
				ORDER BY e.seq LIMIT ?`+s.D.ClaimLock, nowMS, limit)
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
				locked_by = ?, locked_until = ?, updated_at = ? WHERE seq = ? RETURNING `+eventCols, worker, until, nowMS, c.seq))
			if err != nil {
				return err
			}
			if c.state == string(store.EventRunning) {
				if _, err := s.txExec(ctx, tx, `UPDATE event_attempts SET finished = ?, ok = 0, error = ?
					WHERE event_id = ? AND finished = 0`, nowMS, store.AttemptLeaseExpired, e.ID); err != nil {
					return err
				}
			}
			if _, err := s.txExec(ctx, tx, `INSERT INTO event_attempts (event_id, n, worker, started, finished, ok, error)
				VALUES (?, ?, ?, ?, 0, 0, '')`, e.ID, e.Attempts, worker, nowMS); err != nil {
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
	now := unixms.From(time.Now())
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
	now := unixms.From(time.Now())
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
	now := unixms.From(time.Now())
	state := store.EventPending
	if dead {
		state = store.EventDead
	}
	errText = truncate(errText, maxErrorText)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE events SET state = ?, next_attempt = ?, last_error = ?, locked_by = '', locked_until = 0, updated_at = ?
			WHERE id = ? AND state = 'running' AND locked_by = ?`, string(state), unixms.From(next), errText, now, id, worker)
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
			unixms.Ceil(until), id, worker)
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
			AND substr(locked_by, 1, ?) = ? AND locked_until > ?`, unixms.From(now), keep, len(prefix), prefix, unixms.From(now))
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
	now := unixms.From(time.Now())
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
		cut := unixms.From(deliveredBefore)
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
		a.Started, a.Finished, a.OK = unixms.Time(st), unixms.Time(fin), ok != 0
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("attempts of event %s: %w", id, err)
	}
	return out, nil
}
