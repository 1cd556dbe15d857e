package payments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/acquit/acquit/internal/unixms"
	"strconv"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/pluginhost"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

// Reconcile is the schedule job "<gateway>.reconcile" (atos.reconcile): it
// asks the provider about every undecided payment (pending, or unknown past
// the deadline) created more than ReconcileAfter ago and due for a check,
// and applies each answer through the same exactly-once transition as the
// notifications (channel reconciliation). NotFound expires the payment; a
// non-final answer schedules the next check with exponential backoff, and a
// payment still pending at FinalDeadline moves to unknown (payment.unknown,
// once).
//
// params: "gateway" restricts to one gateway; "limit" caps the payments
// checked in this pass (default 5000).
//
// A failure to get an answer about one payment is confined to that payment
// (issue 9): the provider refusing the query for it (a *sdk.RejectError,
// e.g. Sips Office 03, 12, 30, 34, 40) or any other error of the call is
// recorded on its timeline, its next check is moved with the same backoff
// as a non-final answer (and never past its final deadline), past the
// deadline it moves to unknown like any other, it is counted in
// acquit_payments_reconcile_results_total{result="rejected"|"error"}, and
// the pass goes on with the next payment. The pass stops (with an error)
// only when no further answer can be had: the gateway plugin is not
// running, the job's context is done, the store fails, or
// maxConsecutiveErrors calls in a row failed (the provider looks down; the
// payments asked so far got their backoff, the others are unchanged).
func (s *Service) Reconcile(ctx context.Context, params map[string]string) (string, error) {
	limit := 5000
	if v := params["limit"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return "", &ValidationError{Field: "limit", Message: "must be 1..1000000"}
		}
		limit = n
	}
	gwFilter := params["gateway"]
	now := s.now().UTC()
	var due []*Payment
	err := s.st.InTx(ctx, func(tx store.Tx) error {
		due = due[:0]
		q := `SELECT ` + paymentCols + ` FROM payments WHERE state IN ('pending', 'unknown') AND next_check_at <= ?
			AND created_at <= ?`
		args := []any{unixms.From(now), unixms.From(now.Add(-s.cfg.ReconcileAfter))}
		if gwFilter != "" {
			q += ` AND gateway = ?`
			args = append(args, gwFilter)
		}
		q += ` ORDER BY next_check_at, reference LIMIT ?`
		args = append(args, limit)
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
			due = append(due, p)
		}
		return rows.Err()
	})
	if err != nil {
		return "", fmt.Errorf("reconcile: list due payments: %w", err)
	}
	counts := map[string]int{}
	checked, consecutive := 0, 0
	var passErr error
	for _, p := range due {
		if err := ctx.Err(); err != nil {
			passErr = fmt.Errorf("reconcile: %w", err)
			break
		}
		result, err := s.reconcileOne(ctx, p, now)
		if err != nil {
			passErr = fmt.Errorf("reconcile %s: %w", p.Reference, err)
			s.m.reconcile.WithLabelValues("stopped").Inc()
			break
		}
		checked++
		counts[result]++
		s.m.reconcile.WithLabelValues(result).Inc()
		if result != "error" {
			consecutive = 0
			continue
		}
		if consecutive++; consecutive >= maxConsecutiveErrors {
			passErr = fmt.Errorf("reconcile: %d queries in a row failed, the provider looks unreachable: %w", consecutive, ErrUnavailable)
			break
		}
	}
	s.refreshPending(ctx)
	summary := summarize(checked, counts)
	if passErr != nil {
		s.log.Error().Err(passErr).Str("summary", summary).Msg("reconcile pass stopped")
		return summary, passErr
	}
	s.log.Info().Int("checked", checked).Str("summary", summary).Msg("reconcile pass done")
	return summary, nil
}

var summaryOrder = []string{"accepted", "refused", "cancelled", "failed", "expired", "duplicate", "conflict",
	"mismatch", "rejected", "error", "unknown", "still pending"}

// maxConsecutiveErrors is how many failed queries in a row (not answers,
// not rejections: errors) stop a reconcile pass.
const maxConsecutiveErrors = 3

// gatewayDown reports whether err says the gateway plugin itself cannot be
// called now (its process is not running): then nothing can be learnt about
// any payment and the pass stops without touching the one being asked
// about.
func gatewayDown(err error) bool {
	var un *pluginhost.UnavailableError
	if errors.As(err, &un) {
		return true
	}
	var re *pluginrpc.RemoteError
	return errors.As(err, &re) && re.Unavailable()
}

func summarize(checked int, counts map[string]int) string {
	var parts []string
	for _, k := range summaryOrder {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("checked %d", checked)
	}
	return fmt.Sprintf("checked %d: %s", checked, strings.Join(parts, ", "))
}

// reconcileOne asks about one payment and applies the answer; it returns the
// summary bucket.
func (s *Service) reconcileOne(ctx context.Context, p *Payment, now time.Time) (string, error) {
	gw, err := s.gateway(p.Gateway)
	if err != nil {
		return "", fmt.Errorf("gateway %s: %w: %w", p.Gateway, ErrUnavailable, err)
	}
	res, queryErr := gw.QueryTransaction(ctx, sdk.TransactionQuery{Merchant: p.Merchant, Reference: p.ProviderReference,
		TransactionDate: p.TransactionDate})
	var rej *sdk.RejectError
	if queryErr != nil && !errors.As(queryErr, &rej) {
		if gatewayDown(queryErr) || ctx.Err() != nil {
			return "", fmt.Errorf("query %s: %w: %w", p.Gateway, ErrUnavailable, queryErr)
		}
	}
	// Keep the provider's answer (or the failure) as a raw input, for the
	// timeline.
	var body []byte
	switch {
	case rej != nil:
		body, _ = json.Marshal(map[string]string{"reject_code": rej.Code, "reject": rej.Message})
	case queryErr != nil:
		body, _ = json.Marshal(map[string]string{"error": queryErr.Error()})
	case res != nil:
		body, _ = json.Marshal(res)
	}
	rawID, err := s.st.RecordRaw(ctx, store.RawInput{Source: p.Gateway, Channel: string(sdk.ChannelReconciliation),
		Method: "QUERY", Path: p.ProviderReference, Body: body, ReceivedAt: now})
	if err != nil {
		return "", fmt.Errorf("record answer: %w", err)
	}
	if queryErr != nil && rej == nil {
		// No answer about this payment: confined to it (backoff, unknown
		// past the deadline), the pass goes on.
		s.log.Warn().Err(queryErr).Str("reference", p.Reference).Str("gateway", p.Gateway).Int64("raw_id", rawID).
			Int64("checks", p.CheckCount+1).Msg("reconciliation query failed for this payment, asked again later")
		if err := s.recheck(ctx, p, rawID, nil, now, VerdictError, "query_error"); err != nil {
			return "", err
		}
		return "error", nil
	}
	if rej != nil || res == nil {
		code, msg := "empty_result", "gateway returned no result"
		if rej != nil {
			code, msg = rej.Code, rej.Message
		}
		s.m.rejects.WithLabelValues(p.Gateway, code).Inc()
		s.log.Warn().Str("reference", p.Reference).Str("code", code).Str("reason", msg).Msg("reconciliation answer rejected")
		if err := s.recheck(ctx, p, rawID, nil, now, VerdictRejected, code); err != nil {
			return "", err
		}
		return "rejected", nil
	}
	if res.Outcome == sdk.OutcomeNotFound {
		// The provider never saw it: the customer abandoned before paying.
		r := *res
		r.Outcome, r.AskLater = sdk.OutcomeExpired, false
		r.Merchant, r.Amount, r.Currency = p.Merchant, p.Amount, p.Currency
		if r.Explanation == "" {
			r.Explanation = "the provider has no such transaction: abandoned before payment"
		}
		res = &r
	}
	if !res.Outcome.Final() || res.AskLater {
		// Check the answer is about our payment before acting on it.
		if d := mismatch(p, res); d != "" && res.Amount != 0 {
			a, err := s.apply(ctx, p.Gateway, sdk.ChannelReconciliation, rawID, res, p.Reference)
			if err != nil {
				return "", err
			}
			return string(a.verdict), nil
		}
		if err := s.recheck(ctx, p, rawID, res, now, VerdictNotFinal, ""); err != nil {
			return "", err
		}
		if now.Sub(p.CreatedAt) >= s.cfg.FinalDeadline {
			return "unknown", nil
		}
		return "still pending", nil
	}
	a, err := s.apply(ctx, p.Gateway, sdk.ChannelReconciliation, rawID, res, p.Reference)
	if err != nil {
		return "", err
	}
	if a.verdict == VerdictDecided {
		return string(a.payment.State), nil
	}
	return string(a.verdict), nil
}

// recheck records a non-final answer, schedules the next check with
// backoff and, past the final deadline, moves a pending payment to unknown.
func (s *Service) recheck(ctx context.Context, p *Payment, rawID int64, res *sdk.PaymentResult, now time.Time, v Verdict, reason string) error {
	shift := p.CheckCount
	if shift > 6 {
		shift = 6
	}
	next := now.Add(s.cfg.RecheckEvery << uint(shift))
	pastDeadline := now.Sub(p.CreatedAt) >= s.cfg.FinalDeadline
	if deadline := p.CreatedAt.Add(s.cfg.FinalDeadline); !pastDeadline && next.After(deadline) {
		// The check that raises payment.unknown happens at the deadline
		// itself, not at the first backoff step after it.
		next = deadline
	}
	var becameUnknown bool
	err := s.st.InTx(ctx, func(tx store.Tx) error {
		becameUnknown = false
		if _, err := tx.Exec(ctx, `UPDATE payments SET check_count = check_count + 1, next_check_at = ?, updated_at = ?
			WHERE reference = ? AND state IN ('pending', 'unknown')`, unixms.From(next), unixms.From(now), p.Reference); err != nil {
			return fmt.Errorf("payment %s: schedule check: %w", p.Reference, err)
		}
		if pastDeadline {
			n, err := tx.Exec(ctx, `UPDATE payments SET state = 'unknown', version = version + 1, updated_at = ?
				WHERE reference = ? AND state = 'pending'`, unixms.From(now), p.Reference)
			if err != nil {
				return fmt.Errorf("payment %s: mark unknown: %w", p.Reference, err)
			}
			if n == 1 {
				becameUnknown = true
				q := *p
				q.State, q.UpdatedAt, q.Version = StateUnknown, now, p.Version+1
				reason := fmt.Sprintf("still undecided %s after creation (%d checks)", now.Sub(p.CreatedAt).Round(time.Second), p.CheckCount+1)
				if err := tx.RecordHistory(ctx, store.History{Entity: "payment", ID: p.Reference, From: string(StatePending),
					To: string(StateUnknown), Cause: "final_deadline", RawID: rawID, At: now}); err != nil {
					return fmt.Errorf("payment %s: history: %w", p.Reference, err)
				}
				if err := s.emit(ctx, tx, "payment.unknown", &q, sdk.ChannelReconciliation, rawID, res, reason); err != nil {
					return err
				}
			}
		}
		out := &applied{verdict: v, payment: p, reason: reason}
		return s.record(ctx, tx, p.Reference, p.Gateway, rawID, sdk.ChannelReconciliation, res, out, now)
	})
	if err != nil {
		return err
	}
	if becameUnknown {
		s.m.transitions.WithLabelValues(string(StateUnknown), string(sdk.ChannelReconciliation)).Inc()
		s.m.pending.Dec()
		s.log.Warn().Str("reference", p.Reference).Msg("payment undecided at final deadline: unknown")
	}
	return nil
}

// refreshPending sets the pending gauge to the exact count.
func (s *Service) refreshPending(ctx context.Context) {
	var n int64
	err := s.st.View(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM payments WHERE state = 'pending'`).Scan(&n)
	})
	if err != nil {
		s.log.Warn().Err(err).Msg("pending gauge not refreshed")
		return
	}
	s.m.pending.Set(float64(n))
}

// RefreshMetrics sets the gauges from the store (call at startup).
func (s *Service) RefreshMetrics(ctx context.Context) { s.refreshPending(ctx) }
