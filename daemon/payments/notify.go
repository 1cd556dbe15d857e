package payments

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/acquit/acquit/internal/unixms"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/ulid"
	"github.com/acquit/acquit/sdk"
)

// ErrRateLimited is returned by HandleNotification when the client address
// sent more notifications than Config.NotifyRate allows: nothing stored.
var ErrRateLimited = errors.New("rate limited")

// ErrRawNotStored is returned by HandleNotification when the raw input could
// not be committed: nothing was acted on, the sender should retry.
var ErrRawNotStored = errors.New("raw input not stored")

// NotificationResult says what became of one notification.
type NotificationResult struct {
	RawID   int64
	Gateway string
	Channel sdk.Channel
	Verdict Verdict
	// RejectCode is the gateway's reject code (Verdict rejected), or
	// "too_large", "unavailable" for rejections by acquit itself.
	RejectCode string
	// Reference is our reference of the payment, when known.
	Reference string
	// State is the payment's stored state after processing, when known.
	State State
	// Outcome is the verified outcome the notification stated, if verified.
	Outcome  sdk.Outcome
	AskLater bool
	// ProviderReference and TransactionDate name the payment as the
	// verified notification did.
	ProviderReference string
	TransactionDate   string
	// SuccessURL and FailureURL are the payment's return URLs, when known.
	SuccessURL string
	FailureURL string

	remoteAddr string // the client address, for the log lines
}

// HandleNotification stores, verifies and applies one notification received
// on the public listener. The result is never nil. The error is non-nil when
// gateway names no configured gateway (wraps ErrUnknownGateway: nothing is
// stored), when the raw input could not be stored (wraps ErrRawNotStored) or when it was
// stored but could not be verified or applied now (wraps ErrUnavailable);
// rejections are not errors (see Verdict and RejectCode), unless their
// verdict could not be written (wraps ErrRawNotStored).
func (s *Service) HandleNotification(ctx context.Context, gateway string, channel sdk.Channel, r *http.Request) (*NotificationResult, error) {
	start := time.Now()
	defer func() { s.m.duration.WithLabelValues(string(channel)).Observe(time.Since(start).Seconds()) }()
	res := &NotificationResult{Gateway: gateway, Channel: channel}
	now := s.now()
	// The client address as the public listener computed it (trusted
	// proxies); only recorded, never used to filter: the seal is the
	// authority.
	client := httpapi.ClientIP(r)
	res.remoteAddr = client

	// A name that is no configured gateway cannot be a bank's input: not
	// stored, answered 404 (issue 9).
	gw, gwErr := s.gateway(gateway)
	if gwErr != nil && isUnknownGateway(gwErr) {
		res.Verdict, res.RejectCode = VerdictRejected, "unknown_gateway"
		s.m.rejects.WithLabelValues("", "unknown_gateway").Inc()
		s.log.Warn().Str("gateway", gateway).Str("channel", string(channel)).Str("remote", client).
			Msg("notification for an unknown gateway refused, not stored")
		return res, fmt.Errorf("notification %s/%s: %w", clipName(gateway), channel, ErrUnknownGateway)
	}

	// One client address sending more than its share: 429, not stored
	// (issue 9: unauthenticated bodies must not fill the disk).
	if ok, logIt := s.limit.allow(client, time.Now()); !ok {
		res.Verdict, res.RejectCode = VerdictRejected, "rate_limited"
		s.m.rateLimited.Inc()
		if logIt {
			s.log.Warn().Str("gateway", gateway).Str("channel", string(channel)).Str("remote", client).
				Float64("rate", s.cfg.NotifyRate).Int("burst", s.cfg.NotifyBurst).
				Msg("notifications from this address over the rate limit: refused with 429, not stored (logged once a minute per address)")
		}
		return res, fmt.Errorf("notification %s/%s from %s: %w", gateway, channel, client, ErrRateLimited)
	}

	body, readErr := readLimited(r.Body, s.cfg.MaxBodyBytes)
	// A body refused before verification (oversized, not UTF-8) cannot be
	// the provider's: only its first RefusedBodyKeep bytes are kept.
	var refusal *sdk.RejectError
	switch {
	case readErr != nil && errors.Is(readErr, errTooLarge):
		refusal = &sdk.RejectError{Code: "too_large", Message: readErr.Error()}
	case readErr != nil:
		refusal = &sdk.RejectError{Code: "read_error", Message: readErr.Error()}
	case !utf8.Valid(body):
		// Sips Data is ASCII (or base64); anything else is not from the
		// provider. Refuse before handing it to the plugin.
		refusal = &sdk.RejectError{Code: "bad_encoding", Message: fmt.Sprintf("body is not valid UTF-8 (%d bytes)", len(body))}
	}
	kept := body
	if refusal != nil && int64(len(kept)) > s.cfg.RefusedBodyKeep {
		kept = kept[:s.cfg.RefusedBodyKeep]
		refusal.Message += fmt.Sprintf("; first %d bytes kept", len(kept))
	}
	// DeferSync: every path below commits again (the verdict, or the
	// transition with its timeline row) before the sender is answered, and
	// that commit's flush covers this one; until then the raw input is safe
	// from a kill -9 of acquit (the kernel holds the write). One fsync per
	// notification instead of two.
	raw := store.RawInput{
		Source: gateway, Channel: string(channel), RemoteAddr: client, Method: r.Method,
		Path: r.URL.RequestURI(), Headers: sanitizeHeaders(r.Header), Body: kept, ReceivedAt: now.UTC(),
		DeferSync: true,
	}
	rawID, err := s.st.RecordRaw(ctx, raw)
	if err != nil {
		res.Verdict = VerdictError
		s.count(res)
		s.log.Error().Err(err).Str("gateway", gateway).Str("channel", string(channel)).Int("bytes", len(body)).
			Msg("notification not stored")
		return res, fmt.Errorf("notification %s/%s: %w: %w", gateway, channel, ErrRawNotStored, err)
	}
	res.RawID = rawID
	if refusal != nil {
		return s.reject(ctx, res, refusal)
	}
	if err := gwErr; err != nil {
		err = s.failVerdict(ctx, rawID, store.Verdict{Code: "unavailable", Message: err.Error(), At: s.now().UTC()}, err)
		res.Verdict, res.RejectCode = VerdictError, "unavailable"
		s.count(res)
		s.log.Error().Err(err).Int64("raw_id", rawID).Str("gateway", gateway).Msg(failMsg(err, "gateway unavailable"))
		return res, fmt.Errorf("notification %d: gateway %s: %w: %w", rawID, gateway, ErrUnavailable, err)
	}
	pr, err := gw.VerifyNotification(ctx, sdk.Notification{
		Channel: channel, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Headers: raw.Headers, Body: body, RemoteAddr: client, ReceivedAt: now,
	})
	if err != nil {
		var rej *sdk.RejectError
		if errors.As(err, &rej) {
			return s.reject(ctx, res, rej)
		}
		err = s.failVerdict(ctx, rawID, store.Verdict{Code: "verify_error", Message: err.Error(), At: s.now().UTC()}, err)
		res.Verdict, res.RejectCode = VerdictError, "verify_error"
		s.count(res)
		s.log.Error().Err(err).Int64("raw_id", rawID).Str("gateway", gateway).Msg(failMsg(err, "verification failed"))
		return res, fmt.Errorf("notification %d: verify: %w: %w", rawID, ErrUnavailable, err)
	}
	if pr == nil {
		return s.reject(ctx, res, &sdk.RejectError{Code: "empty_result", Message: "gateway returned no result"})
	}
	res.Outcome, res.AskLater = pr.Outcome, pr.AskLater
	res.ProviderReference, res.TransactionDate = pr.Reference, pr.TransactionDate
	a, err := s.apply(ctx, gateway, channel, rawID, pr, "")
	if err != nil {
		// The input passed verification: a verified verdict keeps it from
		// raw retention (store.PruneRaw deletes only inputs nobody
		// verified), so the bank's word stays on record for the operator
		// and the reconciler, whatever failed after.
		err = s.failVerdict(ctx, rawID, store.Verdict{Verified: true, Code: "apply_error", Message: err.Error(), At: s.now().UTC()}, err)
		res.Verdict = VerdictError
		s.count(res)
		s.log.Error().Err(err).Int64("raw_id", rawID).Str("gateway", gateway).Str("provider_reference", pr.Reference).
			Msg(failMsg(err, "verified, not applied"))
		return res, fmt.Errorf("notification %d: apply: %w: %w", rawID, ErrUnavailable, err)
	}
	res.Verdict = a.verdict
	if a.payment != nil {
		res.Reference, res.State = a.payment.Reference, a.payment.State
		res.SuccessURL, res.FailureURL = a.payment.SuccessURL, a.payment.FailureURL
	}
	s.count(res)
	ev := s.log.Info()
	if a.verdict == VerdictConflict || a.verdict == VerdictMismatch || a.verdict == VerdictUnknownReference {
		ev = s.log.Warn()
	}
	ev.Int64("raw_id", rawID).Str("gateway", gateway).Str("channel", string(channel)).Str("remote", client).
		Str("reference", res.Reference).Str("provider_reference", pr.Reference).Str("outcome", string(pr.Outcome)).
		Str("response_code", pr.ResponseCode).Str("verdict", string(a.verdict)).Str("state", string(res.State)).
		Str("reason", a.reason).Msg("notification applied")
	return res, nil
}

func (s *Service) count(res *NotificationResult) {
	s.m.notifications.WithLabelValues(res.Gateway, string(res.Channel), string(res.Verdict)).Inc()
}

// reject records a rejection verdict; nothing else stored changes. When
// the verdict cannot be written it returns an error wrapping
// ErrRawNotStored, as failVerdict does: that commit is the one that makes
// the raw input (committed with DeferSync) durable, and a refusal is
// evidence too (a bank's genuine message refused after a key rotation or a
// configuration change), so the sender is asked to retry (500) rather than
// told it was refused for good (400).
func (s *Service) reject(ctx context.Context, res *NotificationResult, rej *sdk.RejectError) (*NotificationResult, error) {
	res.Verdict, res.RejectCode = VerdictRejected, rej.Code
	s.m.rejects.WithLabelValues(res.Gateway, rej.Code).Inc()
	if err := s.writeVerdict(ctx, res.RawID, store.Verdict{Verified: false, Code: rej.Code, Message: rej.Message, At: s.now().UTC()}); err != nil {
		res.Verdict = VerdictError
		s.count(res)
		s.log.Error().Err(err).Int64("raw_id", res.RawID).Str("gateway", res.Gateway).Str("channel", string(res.Channel)).
			Str("remote", res.remoteAddr).Str("code", rej.Code).Msg(failMsg(err, "rejected"))
		return res, fmt.Errorf("notification %d: rejected (%s): %w", res.RawID, rej.Code, err)
	}
	s.count(res)
	s.log.Warn().Int64("raw_id", res.RawID).Str("gateway", res.Gateway).Str("channel", string(res.Channel)).
		Str("remote", res.remoteAddr).Str("code", rej.Code).Str("reason", rej.Message).Msg("notification rejected")
	return res, nil
}

// writeVerdict records a notification's verdict; its error wraps
// ErrRawNotStored: that commit is the one whose flush makes the raw input
// (committed with DeferSync) durable before the sender is answered, so
// without it the sender is answered as if nothing was stored (500, retry).
func (s *Service) writeVerdict(ctx context.Context, rawID int64, v store.Verdict) error {
	if err := s.addVerdict(ctx, rawID, v); err != nil {
		return fmt.Errorf("%w: verdict: %w", ErrRawNotStored, err)
	}
	return nil
}

// failVerdict records the verdict of a notification that could not be
// verified or applied and returns err, with writeVerdict's error as well
// when the verdict could not be written (500 rather than "stored, retry",
// 503).
func (s *Service) failVerdict(ctx context.Context, rawID int64, v store.Verdict, err error) error {
	if verr := s.writeVerdict(ctx, rawID, v); verr != nil {
		return fmt.Errorf("%w (%w)", err, verr)
	}
	return err
}

// failMsg is the log message of a notification that failed or was refused
// after its raw input was recorded (err from failVerdict or
// writeVerdict): stored, unless the verdict
// could not be written either, whose commit is the one that makes the raw
// input durable.
func failMsg(err error, what string) string {
	if errors.Is(err, ErrRawNotStored) {
		return "notification not durably stored, " + what
	}
	return "notification stored, " + what
}

// verdictTimeout bounds the writing of a verdict, which does not stop with
// the request's own budget.
const verdictTimeout = 10 * time.Second

// addVerdict appends a verdict in its own transaction. The request's
// context may be over (a verification that took the whole budget): the
// verdict is written anyway, so the raw input says why it was not applied.
func (s *Service) addVerdict(ctx context.Context, rawID int64, v store.Verdict) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), verdictTimeout)
	defer cancel()
	err := s.st.InTx(ctx, func(tx store.Tx) error { return tx.AddVerdict(ctx, rawID, v) })
	if err != nil {
		s.log.Error().Err(err).Int64("raw_id", rawID).Str("code", v.Code).Msg("verdict not stored")
	}
	return err
}

var errTooLarge = errors.New("body too large")

// clipName bounds a name taken from a request for an error message.
func clipName(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// readLimited reads at most limit bytes; a longer body returns the first
// limit bytes and errTooLarge.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		// The listener's own limit (http.MaxBytesReader) is smaller.
		return b, fmt.Errorf("%w: more than %d bytes", errTooLarge, mbe.Limit)
	}
	if err != nil {
		return b, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		return b[:limit], fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
	}
	return b, nil
}

// applied is the outcome of apply.
type applied struct {
	from    State // state before a decision
	verdict Verdict
	payment *Payment // state after, when the payment is known
	reason  string
	enc     *encodedResult // made before the transaction; nil: encode inside
}

// encodedResult holds the JSON a verified result gives every transaction
// applying it, encoded before the transaction begins: on SQLite the
// transaction runs on the single writer goroutine, which should only run
// statements.
type encodedResult struct {
	history json.RawMessage // the decision's history details
	record  json.RawMessage // the timeline details when there is no reason
}

func encodeResult(pr *sdk.PaymentResult) *encodedResult {
	if pr == nil {
		return nil
	}
	return &encodedResult{history: decisionDetails(pr), record: responseDetails(pr, "")}
}

// decisionDetails is the details of the history row of a decision.
func decisionDetails(pr *sdk.PaymentResult) json.RawMessage {
	det, _ := json.Marshal(map[string]string{"response_code": pr.ResponseCode, "acquirer_response_code": pr.AcquirerResponseCode})
	return det
}

const paymentCols = `reference, gateway, merchant, provider_reference, transaction_date, order_id,
	amount, currency, customer_id, customer_email, success_url, failure_url, state, decided_channel, decided_at,
	decided_raw_id, response_code, acquirer_response_code, authorisation_id, explanation, created_at, updated_at,
	next_check_at, check_count, version, attempt`

func scanPayment(row store.Row) (*Payment, error) {
	var p Payment
	var state string
	var decidedAt, createdAt, updatedAt, nextCheck int64
	if err := row.Scan(&p.Reference, &p.Gateway, &p.Merchant, &p.ProviderReference, &p.TransactionDate,
		&p.OrderID, &p.Amount, &p.Currency, &p.CustomerID, &p.CustomerEmail, &p.SuccessURL,
		&p.FailureURL, &state, &p.DecidedChannel, &decidedAt, &p.DecidedRawID, &p.ResponseCode,
		&p.AcquirerResponseCode, &p.AuthorisationID, &p.Explanation, &createdAt, &updatedAt, &nextCheck,
		&p.CheckCount, &p.Version, &p.Attempt); err != nil {
		return nil, err
	}
	p.State = State(state)
	p.DecidedAt, p.CreatedAt, p.UpdatedAt, p.NextCheckAt = unixms.Time(decidedAt), unixms.Time(createdAt), unixms.Time(updatedAt), unixms.Time(nextCheck)
	return &p, nil
}

func getPayment(ctx context.Context, tx store.Tx, ref string) (*Payment, error) {
	p, err := scanPayment(tx.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE reference = ?`, ref))
	if err != nil {
		if isNoRows(err) {
			return nil, fmt.Errorf("payment %s: %w", ref, store.ErrNotFound)
		}
		return nil, fmt.Errorf("payment %s: %w", ref, err)
	}
	return p, nil
}

// isNoRows recognises "no rows" from either driver without importing them.
func isNoRows(err error) bool {
	if errors.Is(err, store.ErrNotFound) {
		return true
	}
	if errors.Is(err, sql.ErrNoRows) {
		return true
	}
	return strings.Contains(err.Error(), "no rows in result set")
}

// findByProvider finds the payment a verified result names: by the
// provider's reference, narrowed by transaction date when both sides have
// one (legacy references are unique per day only).
func findByProvider(ctx context.Context, tx store.Tx, gateway string, pr *sdk.PaymentResult) (*Payment, string, error) {
	// No ORDER BY: one candidate is the payment, several are ambiguous.
	rows, err := tx.Query(ctx, `SELECT `+paymentCols+` FROM payments WHERE gateway = ? AND provider_reference = ?`,
		gateway, pr.Reference)
	if err != nil {
		return nil, "", fmt.Errorf("find %s: %w", pr.Reference, err)
	}
	defer rows.Close()
	var cands []*Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, "", fmt.Errorf("find %s: %w", pr.Reference, err)
		}
		if pr.TransactionDate != "" && p.TransactionDate != "" && pr.TransactionDate != p.TransactionDate {
			continue
		}
		cands = append(cands, p)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("find %s: %w", pr.Reference, err)
	}
	switch len(cands) {
	case 0:
		return nil, "no payment with this provider reference", store.ErrNotFound
	case 1:
		return cands[0], "", nil
	}
	return nil, "ambiguous: several payments with this provider reference and no transaction date", store.ErrNotFound
}

// mismatch says how a verified result differs from the started payment.
func mismatch(p *Payment, pr *sdk.PaymentResult) string {
	var diffs []string
	if pr.Merchant != "" && p.Merchant != "" && pr.Merchant != p.Merchant {
		diffs = append(diffs, fmt.Sprintf("merchant %q, started with %q", pr.Merchant, p.Merchant))
	}
	if pr.Amount != p.Amount {
		diffs = append(diffs, fmt.Sprintf("amount %d, started with %d", pr.Amount, p.Amount))
	}
	if !strings.EqualFold(pr.Currency, p.Currency) {
		diffs = append(diffs, fmt.Sprintf("currency %q, started with %q", pr.Currency, p.Currency))
	}
	return strings.Join(diffs, "; ")
}

// apply runs the exactly-once transition for a verified result, in one
// transaction. ref, when set, names our payment directly (reconciliation);
// otherwise the payment is found by the provider's reference.
func (s *Service) apply(ctx context.Context, gateway string, channel sdk.Channel, rawID int64, pr *sdk.PaymentResult, ref string) (*applied, error) {
	var out *applied
	now := s.now().UTC()
	enc := encodeResult(pr)
	err := s.st.InTx(ctx, func(tx store.Tx) error {
		var err error
		out, err = s.applyTx(ctx, tx, gateway, channel, rawID, pr, ref, enc, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.verdict == VerdictDecided && out.payment != nil {
		s.m.transitions.WithLabelValues(string(out.payment.State), string(channel)).Inc()
		if out.from == StatePending {
			s.m.pending.Dec()
		}
	}
	return out, nil
}

func (s *Service) applyTx(ctx context.Context, tx store.Tx, gateway string, channel sdk.Channel, rawID int64, pr *sdk.PaymentResult, ref string, enc *encodedResult, now time.Time) (*applied, error) {
	out := &applied{enc: enc}
	var p *Payment
	var err error
	if ref != "" {
		p, err = getPayment(ctx, tx, ref)
	} else {
		p, out.reason, err = findByProvider(ctx, tx, gateway, pr)
	}
	if errors.Is(err, store.ErrNotFound) {
		out.verdict = VerdictUnknownReference
		if out.reason == "" {
			out.reason = "no such payment"
		}
		return out, s.record(ctx, tx, pr.Reference, gateway, rawID, channel, pr, out, now)
	}
	if err != nil {
		return nil, err
	}
	// PostgreSQL: take the payment's row lock so that concurrent responses
	// for one payment are applied one after the other, then read its
	// current state. SQLite has one writer and this transaction began
	// IMMEDIATE: the row just read is current and nobody else can change
	// it before the commit, so the lock and the second read are skipped.
	if !s.serialWriter {
		if _, err := tx.Exec(ctx, `UPDATE payments SET version = version WHERE reference = ?`, p.Reference); err != nil {
			return nil, fmt.Errorf("payment %s: lock: %w", p.Reference, err)
		}
		if p, err = getPayment(ctx, tx, p.Reference); err != nil {
			return nil, err
		}
	}
	out.payment = p
	if d := mismatch(p, pr); d != "" {
		out.verdict, out.reason = VerdictMismatch, d
		if err := s.emit(ctx, tx, "payment.mismatch", p, channel, rawID, pr, d); err != nil {
			return nil, err
		}
		return out, s.record(ctx, tx, p.Reference, gateway, rawID, channel, pr, out, now)
	}
	if !pr.Outcome.Final() || pr.AskLater {
		out.verdict = VerdictNotFinal
		if channel != sdk.ChannelReconciliation && p.State.Decidable() {
			// Ask the provider soon rather than at the usual time.
			soon := now.Add(s.cfg.RecheckEvery)
			if _, err := tx.Exec(ctx, `UPDATE payments SET next_check_at = ?, updated_at = ?
				WHERE reference = ? AND state IN ('pending', 'unknown') AND next_check_at > ?`,
				unixms.From(soon), unixms.From(now), p.Reference, unixms.From(soon)); err != nil {
				return nil, fmt.Errorf("payment %s: schedule check: %w", p.Reference, err)
			}
		}
		return out, s.record(ctx, tx, p.Reference, gateway, rawID, channel, pr, out, now)
	}
	newState := State(pr.Outcome)
	if p.State.Decidable() {
		n, err := tx.Exec(ctx, `UPDATE payments SET state = ?, decided_channel = ?, decided_at = ?, decided_raw_id = ?,
			response_code = ?, acquirer_response_code = ?, authorisation_id = ?, explanation = ?, updated_at = ?,
			version = version + 1 WHERE reference = ? AND state IN ('pending', 'unknown')`,
			string(newState), string(channel), unixms.From(now), rawID, pr.ResponseCode, pr.AcquirerResponseCode,
			pr.AuthorisationID, pr.Explanation, unixms.From(now), p.Reference)
		if err != nil {
			return nil, fmt.Errorf("payment %s: decide: %w", p.Reference, err)
		}
		if n == 1 {
			from := p.State
			out.from = from
			p.State, p.DecidedChannel, p.DecidedAt, p.DecidedRawID = newState, string(channel), now, rawID
			p.ResponseCode, p.AcquirerResponseCode, p.AuthorisationID, p.Explanation = pr.ResponseCode, pr.AcquirerResponseCode, pr.AuthorisationID, pr.Explanation
			p.UpdatedAt, p.Version = now, p.Version+1
			return out, s.decided(ctx, tx, out, gateway, channel, rawID, pr, now)
		}
		// Another transaction decided it between our read and our update
		// (PostgreSQL, read committed): read what it decided.
		if p, err = getPayment(ctx, tx, p.Reference); err != nil {
			return nil, err
		}
		out.payment = p
	}
	if p.State == newState {
		out.verdict = VerdictDuplicate
		added, err := s.applyOperation(ctx, tx, p, channel, rawID, pr, now)
		if err != nil {
			return nil, err
		}
		if added {
			out.verdict = VerdictOperation
		}
		return out, s.record(ctx, tx, p.Reference, gateway, rawID, channel, pr, out, now)
	}
	out.verdict = VerdictConflict
	out.reason = fmt.Sprintf("%s says %s, payment already %s by %s", channel, newState, p.State, p.DecidedChannel)
	// One payment.conflict per distinct contradicting outcome: a repeat of
	// a contradiction already raised (the same response sent again, or the
	// other channel saying the same) is on the timeline, not raised again.
	// The payment's row lock taken above serialises this check.
	var seen int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM payment_responses WHERE reference = ? AND verdict = ? AND outcome = ?`,
		p.Reference, string(VerdictConflict), string(pr.Outcome)).Scan(&seen); err != nil {
		return nil, fmt.Errorf("payment %s: earlier conflicts: %w", p.Reference, err)
	}
	if seen == 0 {
		if err := s.emit(ctx, tx, "payment.conflict", p, channel, rawID, pr, out.reason); err != nil {
			return nil, err
		}
	} else {
		out.reason += " (already raised)"
	}
	return out, s.record(ctx, tx, p.Reference, gateway, rawID, channel, pr, out, now)
}

// decided records what follows a decision of out.payment (already
// updated, out.from its previous state): its history row, its event, a
// later operation the result reports, its timeline row and raw verdict.
func (s *Service) decided(ctx context.Context, tx store.Tx, out *applied, gateway string, channel sdk.Channel, rawID int64, pr *sdk.PaymentResult, now time.Time) error {
	p := out.payment
	var det json.RawMessage
	if out.enc != nil {
		det = out.enc.history
	} else {
		det = decisionDetails(pr)
	}
	if err := tx.RecordHistory(ctx, store.History{Entity: "payment", ID: p.Reference, From: string(out.from),
		To: string(p.State), Cause: string(channel), RawID: rawID, Details: det, At: now}); err != nil {
		return fmt.Errorf("payment %s: history: %w", p.Reference, err)
	}
	if err := s.emit(ctx, tx, "payment."+string(p.State), p, channel, rawID, pr, ""); err != nil {
		return err
	}
	out.verdict = VerdictDecided
	if _, err := s.applyOperation(ctx, tx, p, channel, rawID, pr, now); err != nil {
		return err
	}
	return s.record(ctx, tx, p.Reference, gateway, rawID, channel, pr, out, now)
}

// operationEvents names the event of each operation kind once done; a
// refused operation emits payment.operation_refused, a pending one none.
var operationEvents = map[string]string{
	sdk.OperationCapture: "payment.captured",
	sdk.OperationRefund:  "payment.refunded",
	sdk.OperationCancel:  "payment.voided",
}

// applyOperation records a later operation the verified result reports on
// an accepted payment (capture, refund, cancellation of the authorisation),
// once per operation id and status, and emits its event. It reports
// whether the status was new. Operations on a payment that is not
// accepted are not recorded: the decision part of the result already
// raised payment.conflict.
func (s *Service) applyOperation(ctx context.Context, tx store.Tx, p *Payment, channel sdk.Channel, rawID int64, pr *sdk.PaymentResult, now time.Time) (bool, error) {
	op := pr.Operation
	if op == nil || p.State != StateAccepted {
		return false, nil
	}
	n, err := tx.Exec(ctx, `INSERT INTO payment_operations (reference, operation_id, status, kind, amount, currency,
		channel, raw_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reference, operation_id, status) DO NOTHING`,
		p.Reference, op.ID, op.Status, op.Kind, op.Amount, op.Currency, string(channel), rawID, unixms.From(now))
	if err != nil {
		return false, fmt.Errorf("payment %s: operation %s: %w", p.Reference, op.ID, err)
	}
	if n == 0 {
		return false, nil
	}
	typ := ""
	switch op.Status {
	case sdk.OperationDone:
		typ = operationEvents[op.Kind]
	case sdk.OperationRefused:
		typ = "payment.operation_refused"
	}
	det, _ := json.Marshal(map[string]any{"operation_id": op.ID, "kind": op.Kind, "status": op.Status, "amount": op.Amount})
	if err := tx.RecordHistory(ctx, store.History{Entity: "payment", ID: p.Reference, From: string(p.State),
		To: string(p.State), Cause: "operation:" + op.Kind + ":" + op.Status, RawID: rawID, Details: det, At: now}); err != nil {
		return false, fmt.Errorf("payment %s: history: %w", p.Reference, err)
	}
	if typ != "" {
		if err := s.emit(ctx, tx, typ, p, channel, rawID, pr, ""); err != nil {
			return false, err
		}
		s.m.operations.WithLabelValues(op.Kind, op.Status).Inc()
	}
	return true, nil
}

// emit adds a payment event to the outbox.
func (s *Service) emit(ctx context.Context, tx store.Tx, typ string, p *Payment, channel sdk.Channel, rawID int64, pr *sdk.PaymentResult, reason string) error {
	pl := EventPayload{Payment: *p, Channel: string(channel), RawID: rawID, Reason: reason}
	if pr != nil {
		pl.Outcome, pl.ResponseCode, pl.AcquirerResponseCode = string(pr.Outcome), pr.ResponseCode, pr.AcquirerResponseCode
		pl.AuthorisationID, pl.Explanation, pl.Fields = pr.AuthorisationID, pr.Explanation, pr.Fields
		if op := pr.Operation; op != nil && isOperationEvent(typ) {
			pl.Operation = &OperationInfo{ID: op.ID, Kind: op.Kind, Status: op.Status, Amount: op.Amount, Currency: op.Currency}
		}
	}
	b, err := json.Marshal(pl)
	if err != nil {
		return fmt.Errorf("payment %s: event %s: %w", p.Reference, typ, err)
	}
	if _, err := tx.Emit(ctx, store.NewEvent{Type: typ, Subject: "payment:" + p.Reference, Payload: b}); err != nil {
		return fmt.Errorf("payment %s: emit %s: %w", p.Reference, typ, err)
	}
	return nil
}

func isOperationEvent(typ string) bool {
	if typ == "payment.operation_refused" {
		return true
	}
	for _, t := range operationEvents {
		if t == typ {
			return true
		}
	}
	return false
}

// record appends the timeline row and the raw verdict.
func (s *Service) record(ctx context.Context, tx store.Tx, ref, gateway string, rawID int64, channel sdk.Channel, pr *sdk.PaymentResult, out *applied, now time.Time) error {
	var outcome, code, acq string
	if pr != nil {
		outcome, code, acq = string(pr.Outcome), pr.ResponseCode, pr.AcquirerResponseCode
	}
	var b json.RawMessage
	if out.enc != nil && out.reason == "" {
		b = out.enc.record
	} else {
		b = responseDetails(pr, out.reason)
	}
	if len(ref) > 64 {
		ref = ref[:64]
	}
	if _, err := tx.Exec(ctx, `INSERT INTO payment_responses (id, reference, n, gateway, raw_id, channel, outcome,
		response_code, acquirer_response_code, verdict, at, details) VALUES (?, ?,
		(SELECT COALESCE(MAX(n), 0) + 1 FROM payment_responses WHERE reference = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ulid.New(now), ref, ref, gateway, rawID, string(channel), outcome, code, acq, string(out.verdict), unixms.From(now), string(b)); err != nil {
		return fmt.Errorf("payment %s: timeline: %w", ref, err)
	}
	if rawID == 0 {
		return nil
	}
	subject := ""
	if out.payment != nil {
		subject = "payment:" + out.payment.Reference
	}
	code, verified := string(out.verdict), true
	if (out.verdict == VerdictRejected || out.verdict == VerdictError) && out.reason != "" {
		// A rejected or failed reconciliation query: the reason is the
		// code.
		code, verified = out.reason, false
	}
	if err := tx.AddVerdict(ctx, rawID, store.Verdict{Verified: verified, Code: code, Message: out.reason,
		Subject: subject, At: now}); err != nil {
		return fmt.Errorf("payment %s: raw verdict: %w", ref, err)
	}
	return nil
}

// responseDetails is the details of a timeline row.
func responseDetails(pr *sdk.PaymentResult, reason string) json.RawMessage {
	det := map[string]any{}
	if pr != nil {
		if pr.AskLater {
			det["ask_later"] = true
		}
		if pr.Explanation != "" {
			det["explanation"] = pr.Explanation
		}
		if pr.Amount != 0 {
			det["amount"] = pr.Amount
			det["currency"] = pr.Currency
		}
	}
	if reason != "" {
		det["reason"] = reason
	}
	if pr != nil && pr.Operation != nil {
		det["operation"] = map[string]any{"id": pr.Operation.ID, "kind": pr.Operation.Kind, "status": pr.Operation.Status}
	}
	b, _ := json.Marshal(det)
	return b
}
