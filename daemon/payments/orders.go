package payments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/acquit/acquit/internal/unixms"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// ErrIdempotencyMismatch is returned when an Idempotency-Key is reused with
// another request body (HTTP 409).
var ErrIdempotencyMismatch = errors.New("this Idempotency-Key was used with a different request")

// ErrOrderHeld is returned when a start names an order whose live payment
// is for another amount or currency (HTTP 409): the shop must let that
// payment end (or cancel it) before asking for a different amount.
var ErrOrderHeld = errors.New("the order already has a live payment for another amount")

// MaxIdempotencyKey bounds the Idempotency-Key header.
const MaxIdempotencyKey = 255

// errLostRace says another start for the same order or key committed first.
var errLostRace = errors.New("a concurrent start won")

// holds reports whether a payment in state st holds its order: no second
// payment page may exist while the first could still be (or has been) paid.
func holds(st State) bool {
	return st == StatePending || st == StateUnknown || st == StateAccepted
}

// requestHash fingerprints a validated start request (defaults applied), so
// that a retry with the same Idempotency-Key can be told from a reuse.
func requestHash(req StartRequest) string {
	b, _ := json.Marshal(req) // struct fields marshal in a fixed order; map keys sorted
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func validIdempotencyKey(k string) error {
	if len(k) > MaxIdempotencyKey {
		return &ValidationError{Field: "Idempotency-Key", Message: fmt.Sprintf("longer than %d characters", MaxIdempotencyKey)}
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e {
			return &ValidationError{Field: "Idempotency-Key", Message: "only visible ASCII characters"}
		}
	}
	return nil
}

// existingStart answers a start from the store when its Idempotency-Key is
// known or its order is held by a live payment; nil when a new attempt must
// be made. A known key is recorded for the holder it was answered with.
func (s *Service) existingStart(ctx context.Context, req StartRequest, key, hash string) (*Started, error) {
	var ans *Started
	err := s.st.InTx(ctx, func(tx store.Tx) error {
		ans = nil
		if key != "" {
			var sha, ref string
			err := tx.QueryRow(ctx, `SELECT request_sha, reference FROM payment_idempotency WHERE idem_key = ?`, key).Scan(&sha, &ref)
			switch {
			case err == nil && sha != hash:
				return fmt.Errorf("Idempotency-Key %q: %w", key, ErrIdempotencyMismatch)
			case err == nil:
				a, err := answerOf(ctx, tx, ref)
				ans = a
				return err
			case !noRows(err):
				return err
			}
		}
		var ref string
		err := tx.QueryRow(ctx, `SELECT reference FROM payment_orders WHERE gateway = ? AND merchant = ? AND order_id = ?`,
			req.Gateway, req.Merchant, req.OrderID).Scan(&ref)
		if noRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := getPayment(ctx, tx, ref)
		if err != nil {
			return err
		}
		if !holds(p.State) {
			return nil
		}
		if p.Amount != req.Amount || p.Currency != req.Currency {
			return fmt.Errorf("order %s: payment %s is %s for %d %s: %w", req.OrderID, p.Reference, p.State, p.Amount, p.Currency, ErrOrderHeld)
		}
		if key != "" {
			if _, err := tx.Exec(ctx, `INSERT INTO payment_idempotency (idem_key, request_sha, reference, created_at)
				VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, key, hash, ref, unixms.From(s.now())); err != nil {
				return err
			}
		}
		a, err := answerOf(ctx, tx, ref)
		ans = a
		return err
	})
	if err != nil {
		if errors.Is(err, ErrIdempotencyMismatch) || errors.Is(err, ErrOrderHeld) {
			return nil, err
		}
		return nil, fmt.Errorf("payment start for order %s: %w: %w", req.OrderID, ErrUnavailable, err)
	}
	if ans != nil {
		s.m.startRepeated.WithLabelValues(req.Gateway).Inc()
		s.log.Info().Str("reference", ans.Reference).Str("order_id", req.OrderID).Bool("idempotency_key", key != "").
			Msg("payment start repeated: the order's payment answered again")
	}
	return ans, nil
}

// answerOf rebuilds the answer given when payment ref was started.
func answerOf(ctx context.Context, tx store.Tx, ref string) (*Started, error) {
	var raw string
	var attempt int64
	if err := tx.QueryRow(ctx, `SELECT s.start_answer, p.attempt FROM payments p
		JOIN payment_starts s ON s.reference = p.reference WHERE p.reference = ?`, ref).Scan(&raw, &attempt); err != nil {
		return nil, fmt.Errorf("payment %s: %w", ref, err)
	}
	var st Started
	if raw != "" {
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			return nil, fmt.Errorf("payment %s: stored answer: %w", ref, err)
		}
	}
	st.Reference, st.Attempt, st.Existing = ref, attempt, true
	page, err := renderPage(st.Method, st.RedirectURL, st.Fields)
	if err != nil {
		return nil, err
	}
	st.HTML = page
	return &st, nil
}

// claimOrder makes payment ref the holder of its order inside the start's
// transaction and returns its attempt number; errLostRace when a live
// payment holds the order or the key was taken meanwhile.
func claimOrder(ctx context.Context, tx store.Tx, req StartRequest, ref, key, hash string, now time.Time) (int64, error) {
	if key != "" {
		n, err := tx.Exec(ctx, `INSERT INTO payment_idempotency (idem_key, request_sha, reference, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, key, hash, ref, unixms.From(now))
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errLostRace
		}
	}
	var holder string
	var attempts int64
	err := tx.QueryRow(ctx, `SELECT reference, attempts FROM payment_orders WHERE gateway = ? AND merchant = ? AND order_id = ?`,
		req.Gateway, req.Merchant, req.OrderID).Scan(&holder, &attempts)
	if noRows(err) {
		n, err := tx.Exec(ctx, `INSERT INTO payment_orders (gateway, merchant, order_id, reference, attempts)
			VALUES (?, ?, ?, ?, 1) ON CONFLICT DO NOTHING`, req.Gateway, req.Merchant, req.OrderID, ref)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errLostRace
		}
		return 1, nil
	}
	if err != nil {
		return 0, err
	}
	p, err := getPayment(ctx, tx, holder)
	if err != nil {
		return 0, err
	}
	if holds(p.State) {
		return 0, errLostRace
	}
	// A new attempt after a refusal, cancellation, failure or expiry. The
	// reference in the WHERE makes a concurrent claim lose.
	n, err := tx.Exec(ctx, `UPDATE payment_orders SET reference = ?, attempts = attempts + 1
		WHERE gateway = ? AND merchant = ? AND order_id = ? AND reference = ?`, ref, req.Gateway, req.Merchant, req.OrderID, holder)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errLostRace
	}
	return attempts + 1, nil
}

// orderAttempts lists every payment of p's order, oldest first.
func orderAttempts(ctx context.Context, tx store.Tx, p *Payment) ([]Payment, error) {
	rows, err := tx.Query(ctx, `SELECT `+paymentCols+` FROM payments WHERE gateway = ? AND order_id = ? ORDER BY attempt, created_at, reference`,
		p.Gateway, p.OrderID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		q, err := scanPayment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *q)
	}
	return out, rows.Err()
}

// noRows reports a "no rows" error (false for nil).
func noRows(err error) bool { return err != nil && isNoRows(err) }
