package payments

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/acquit/acquit/internal/unixms"

	"github.com/acquit/acquit/daemon/store"
)

// ListFilter selects payments for List.
type ListFilter struct {
	State   State  // "" = any
	Gateway string // "" = any
	OrderID string // "" = any
	// Verdict keeps the payments with at least one response of that
	// verdict on their timeline (e.g. conflict, mismatch); "" = any.
	Verdict Verdict
	Limit   int // 0 = 100, at most 10000
}

var validStates = map[State]bool{StatePending: true, StateAccepted: true, StateRefused: true, StateCancelled: true,
	StateFailed: true, StateExpired: true, StateUnknown: true}

var validVerdicts = map[Verdict]bool{VerdictDecided: true, VerdictDuplicate: true, VerdictConflict: true, VerdictNotFinal: true,
	VerdictMismatch: true, VerdictRejected: true, VerdictUnknownReference: true, VerdictError: true}

// States lists every payment state, in the order of a payment's life.
func States() []State {
	return []State{StatePending, StateAccepted, StateRefused, StateCancelled, StateFailed, StateExpired, StateUnknown}
}

// CountByState counts the payments in each state (states with none are
// absent).
func (s *Service) CountByState(ctx context.Context) (map[State]int64, error) {
	out := map[State]int64{}
	err := s.st.View(ctx, func(tx store.Tx) error {
		byKey, err := store.CountGroups(ctx, tx, `SELECT state, COUNT(*) FROM payments GROUP BY state`)
		clear(out)
		for k, n := range byKey {
			out[State(k)] = n
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("count payments: %w", err)
	}
	return out, nil
}

// History returns a payment's state transitions, oldest first.
func (s *Service) History(ctx context.Context, ref string) ([]store.History, error) {
	if !ValidReference(ref) {
		return nil, &ValidationError{Field: "reference", Message: "must be 1-35 alphanumerics"}
	}
	var out []store.History
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		out, err = store.ReadHistory(ctx, tx, "payment", ref)
		return err
	})
	return out, err
}

// List returns payments, newest first.
func (s *Service) List(ctx context.Context, f ListFilter) ([]Payment, error) {
	if f.State != "" && !validStates[f.State] {
		return nil, &ValidationError{Field: "state", Message: fmt.Sprintf("unknown state %q", f.State)}
	}
	if f.Verdict != "" && !validVerdicts[f.Verdict] {
		return nil, &ValidationError{Field: "verdict", Message: fmt.Sprintf("unknown verdict %q", f.Verdict)}
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.Limit < 1 || f.Limit > 10000 {
		return nil, &ValidationError{Field: "limit", Message: "must be 1..10000"}
	}
	q := `SELECT ` + paymentCols + ` FROM payments WHERE 1 = 1`
	var args []any
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, string(f.State))
	}
	if f.Gateway != "" {
		q += ` AND gateway = ?`
		args = append(args, f.Gateway)
	}
	if f.OrderID != "" {
		q += ` AND order_id = ?`
		args = append(args, f.OrderID)
	}
	if f.Verdict != "" {
		q += ` AND reference IN (SELECT reference FROM payment_responses WHERE verdict = ?)`
		args = append(args, string(f.Verdict))
	}
	q += ` ORDER BY created_at DESC, reference DESC LIMIT ?`
	args = append(args, f.Limit)
	out := []Payment{}
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPayment(rows)
			if err != nil {
				return err
			}
			out = append(out, *p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list payments: %w", err)
	}
	return out, nil
}

// Get returns one payment with the timeline of every response received
// about it; a missing payment returns an error wrapping store.ErrNotFound.
func (s *Service) Get(ctx context.Context, ref string) (*Detail, error) {
	if !ValidReference(ref) {
		return nil, &ValidationError{Field: "reference", Message: "must be 1-35 alphanumerics"}
	}
	var d Detail
	err := s.st.View(ctx, func(tx store.Tx) error {
		p, err := getPayment(ctx, tx, ref)
		if err != nil {
			return err
		}
		d = Detail{Payment: *p, Timeline: []Response{}}
		if d.Attempts, err = orderAttempts(ctx, tx, p); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, reference, gateway, raw_id, channel, outcome, response_code,
			acquirer_response_code, verdict, at, details FROM payment_responses WHERE reference = ? ORDER BY n, at, id`,
			p.Reference)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var rr Response
			var verdict, det string
			var at int64
			if err := rows.Scan(&rr.ID, &rr.Reference, &rr.Gateway, &rr.RawID, &rr.Channel, &rr.Outcome,
				&rr.ResponseCode, &rr.AcquirerResponseCode, &verdict, &at, &det); err != nil {
				return err
			}
			rr.Verdict, rr.At, rr.Details = Verdict(verdict), unixms.Time(at), json.RawMessage(det)
			d.Timeline = append(d.Timeline, rr)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("get payment %s: %w", ref, err)
	}
	return &d, nil
}
