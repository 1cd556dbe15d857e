package payments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/boundedre"
	"github.com/acquit/acquit/internal/ulid"
	"github.com/acquit/acquit/internal/unixms"
	"github.com/acquit/acquit/sdk"
)

// StartRequest is the shop's request to start a payment.
type StartRequest struct {
	Gateway       string            `json:"gateway,omitempty"`  // "" = Config.DefaultGateway
	Merchant      string            `json:"merchant,omitempty"` // "" = the gateway's default account
	OrderID       string            `json:"order_id"`
	Amount        int64             `json:"amount"`   // minor units
	Currency      string            `json:"currency"` // ISO 4217 alpha-3
	CustomerID    string            `json:"customer_id,omitempty"`
	CustomerEmail string            `json:"customer_email,omitempty"`
	Locale        string            `json:"locale,omitempty"`
	SuccessURL    string            `json:"success_url"`
	FailureURL    string            `json:"failure_url"`
	Extra         map[string]string `json:"extra,omitempty"`
}

// Started is what the shop shows the customer.
type Started struct {
	Reference         string            `json:"reference"`
	ProviderReference string            `json:"provider_reference"`
	Gateway           string            `json:"gateway"`
	RedirectURL       string            `json:"redirect_url"`
	Method            string            `json:"method"`
	Fields            map[string]string `json:"fields"`
	// HTML is a complete page that posts Fields to RedirectURL by itself.
	HTML string `json:"html"`
	// Attempt is the payment's number among its order's payments.
	Attempt int64 `json:"attempt"`
	// Existing says the start returned the order's existing payment (same
	// Idempotency-Key, or the order held by a pending, unknown or accepted
	// payment) instead of creating one.
	Existing bool `json:"existing,omitempty"`
}

var (
	reCurrency = regexp.MustCompile(`^[A-Z]{3}$`)
	reGateway  = boundedre.MustCompile(`^[a-z0-9][a-z0-9_-]*$`, 1, 32)
	reOrderID  = boundedre.MustCompile(`^[A-Za-z0-9._:/-]*$`, 1, 64)
)

// validate checks a StartRequest; every error is a *ValidationError.
func (r *StartRequest) validate() error {
	if r.Amount <= 0 {
		return &ValidationError{Field: "amount", Message: "must be > 0 (minor units)"}
	}
	if r.Amount > 99_999_999_999 {
		return &ValidationError{Field: "amount", Message: "too large"}
	}
	r.Currency = strings.ToUpper(strings.TrimSpace(r.Currency))
	if !reCurrency.MatchString(r.Currency) {
		return &ValidationError{Field: "currency", Message: "must be an ISO 4217 alphabetic code such as EUR"}
	}
	if !reOrderID.MatchString(r.OrderID) {
		return &ValidationError{Field: "order_id", Message: "must be 1-64 characters of A-Z a-z 0-9 . _ : / -"}
	}
	if !reGateway.MatchString(r.Gateway) {
		return &ValidationError{Field: "gateway", Message: "unknown or malformed gateway name"}
	}
	for _, u := range []struct{ name, v string }{{"success_url", r.SuccessURL}, {"failure_url", r.FailureURL}} {
		if err := checkURL(u.v); err != nil {
			return &ValidationError{Field: u.name, Message: err.Error()}
		}
	}
	if len(r.CustomerID) > 64 || len(r.CustomerEmail) > 254 || len(r.Locale) > 16 || len(r.Merchant) > 64 {
		return &ValidationError{Field: "customer", Message: "customer_id, customer_email, locale or merchant too long"}
	}
	if r.CustomerEmail != "" && (!strings.Contains(r.CustomerEmail, "@") || strings.ContainsAny(r.CustomerEmail, " \r\n<>")) {
		return &ValidationError{Field: "customer_email", Message: "not an e-mail address"}
	}
	if len(r.Extra) > 32 {
		return &ValidationError{Field: "extra", Message: "at most 32 entries"}
	}
	return nil
}

func checkURL(v string) error {
	if v == "" {
		return fmt.Errorf("required")
	}
	if len(v) > 2048 {
		return fmt.Errorf("longer than 2048 characters")
	}
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme must be http or https")
	}
	if u.Host == "" {
		return fmt.Errorf("host missing")
	}
	if u.User != nil {
		return fmt.Errorf("credentials in URL not allowed")
	}
	return nil
}

// Start validates the request, allocates a reference, asks the gateway to
// build the provider request and stores the payment as pending. It is
// StartIdempotent without a key: an order held by a live payment still gets
// that payment back.
func (s *Service) Start(ctx context.Context, req StartRequest) (*Started, error) {
	return s.StartIdempotent(ctx, req, "")
}

// StartIdempotent starts a payment at most once per order and per key:
//   - the same Idempotency-Key with the same request returns the first
//     answer; with another request it fails with ErrIdempotencyMismatch;
//   - an order (gateway, merchant, order id) whose payment is pending,
//     unknown or accepted returns that payment (Existing), so a customer
//     can never get two payment pages for one order;
//   - after a refusal, cancellation, failure or expiry a new attempt is
//     created and linked to the order (Attempt 2, 3, ...).
//
// Both rules hold across instances: the claim of the order and of the key
// commits in the same transaction as the payment, and a concurrent loser
// answers with the winner's payment.
func (s *Service) StartIdempotent(ctx context.Context, req StartRequest, key string) (*Started, error) {
	if req.Gateway == "" {
		req.Gateway = s.cfg.DefaultGateway
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	if err := validIdempotencyKey(key); err != nil {
		return nil, err
	}
	hash := requestHash(req)
	if st, err := s.existingStart(ctx, req, key, hash); err != nil || st != nil {
		return st, err
	}
	gw, err := s.gateway(req.Gateway)
	if err != nil {
		return nil, &ValidationError{Field: "gateway", Message: err.Error()}
	}
	now := s.now()
	ref := NewReference(now)
	base := s.cfg.PublicBaseURL + "/notify/" + req.Gateway
	init, err := gw.InitPayment(ctx, sdk.PaymentRequest{
		Merchant:      req.Merchant,
		Reference:     ref,
		OrderID:       req.OrderID,
		Amount:        req.Amount,
		Currency:      req.Currency,
		CustomerID:    req.CustomerID,
		CustomerEmail: req.CustomerEmail,
		Locale:        req.Locale,
		AutomaticURL:  base + "/automatic",
		ManualURL:     base + "/manual",
		Extra:         req.Extra,
	})
	if err != nil {
		var rej *sdk.RejectError
		if errors.As(err, &rej) {
			// The gateway refuses the request itself (unknown merchant,
			// a field Sips would refuse): the shop's mistake, not an outage.
			return nil, &ValidationError{Field: "request", Message: rej.Error()}
		}
		return nil, fmt.Errorf("payment %s: %s init: %w: %w", ref, req.Gateway, ErrUnavailable, err)
	}
	if init.RedirectURL == "" || checkURL(init.RedirectURL) != nil {
		return nil, fmt.Errorf("payment %s: %s init returned an invalid redirect URL %q", ref, req.Gateway, init.RedirectURL)
	}
	provRef := init.Reference
	if provRef == "" {
		provRef = ref
	}
	merchant := init.Merchant
	if merchant == "" {
		merchant = req.Merchant
	}
	method := strings.ToUpper(init.Method)
	if method != "GET" {
		method = "POST"
	}
	initRaw, _ := json.Marshal(init.Raw)
	fields := init.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	answer := &Started{Reference: ref, ProviderReference: provRef, Gateway: req.Gateway,
		RedirectURL: init.RedirectURL, Method: method, Fields: fields}
	p := Payment{
		Reference: ref, Gateway: req.Gateway, Merchant: merchant, ProviderReference: provRef,
		TransactionDate: init.TransactionDate, OrderID: req.OrderID,
		Amount: req.Amount, Currency: req.Currency, CustomerID: req.CustomerID, CustomerEmail: req.CustomerEmail,
		SuccessURL: req.SuccessURL, FailureURL: req.FailureURL, State: StatePending,
		CreatedAt: now.UTC(), UpdatedAt: now.UTC(), NextCheckAt: now.Add(min(s.cfg.ReconcileAfter, s.cfg.FinalDeadline)).UTC(), Version: 1,
	}
	err = s.st.InTx(ctx, func(tx store.Tx) error {
		attempt, err := claimOrder(ctx, tx, req, ref, key, hash, now)
		if err != nil {
			return err
		}
		p.Attempt, answer.Attempt = attempt, attempt
		answerJSON, _ := json.Marshal(answer)
		if _, err := tx.Exec(ctx, `INSERT INTO payments (reference, gateway, merchant, provider_reference,
			transaction_date, order_id, amount, currency, customer_id, customer_email,
			success_url, failure_url, state, created_at, updated_at, next_check_at, check_count, version, attempt)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1, ?)`,
			p.Reference, p.Gateway, p.Merchant, p.ProviderReference, p.TransactionDate,
			p.OrderID, p.Amount, p.Currency, p.CustomerID, p.CustomerEmail, p.SuccessURL, p.FailureURL,
			string(p.State), unixms.From(now), unixms.From(now), unixms.From(p.NextCheckAt), attempt); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		// Written once, read only by a repeated start: beside the row a
		// response updates, not in it (migration 112).
		if _, err := tx.Exec(ctx, `INSERT INTO payment_starts (reference, init_raw, start_answer) VALUES (?, ?, ?)`,
			p.Reference, string(initRaw), string(answerJSON)); err != nil {
			return fmt.Errorf("insert start: %w", err)
		}
		det, _ := json.Marshal(map[string]any{"order_id": p.OrderID, "amount": p.Amount, "currency": p.Currency, "provider_reference": provRef})
		return tx.RecordHistory(ctx, store.History{Entity: "payment", ID: ref, From: "", To: string(StatePending),
			Cause: "start", Details: det, At: now.UTC()})
	})
	if errors.Is(err, errLostRace) {
		// Another start of this order or key committed first: answer with
		// its payment (the provider request built above is never shown).
		st, err := s.existingStart(ctx, req, key, hash)
		if err == nil && st == nil {
			err = fmt.Errorf("payment start for order %s: lost a race but found no winner: %w", req.OrderID, ErrUnavailable)
		}
		return st, err
	}
	if err != nil {
		return nil, fmt.Errorf("payment %s: store: %w: %w", ref, ErrUnavailable, err)
	}
	crashPoint("after-start-commit")
	s.m.started.WithLabelValues(req.Gateway).Inc()
	s.m.pending.Inc()
	page, err := renderPage(method, init.RedirectURL, init.Fields)
	if err != nil {
		return nil, fmt.Errorf("payment %s: page: %w", ref, err)
	}
	s.log.Info().Str("reference", ref).Str("gateway", req.Gateway).Str("order_id", req.OrderID).
		Int64("amount", req.Amount).Str("currency", req.Currency).Msg("payment started")
	answer.HTML = page
	return answer, nil
}

// pageTmpl is parsed at the first payment start, not at package
// initialisation: a daemon that starts no payment does not run
// html/template's parser (issue 12, idle daemon). The text is a constant,
// so Must cannot fail at run time once a test has rendered a page.
var pageTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("page").Parse(pageText))
})

const pageText = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Payment</title></head>
<body onload="document.forms[0].submit()">
<form method="{{.Method}}" action="{{.Action}}">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<noscript><p>Please continue to the payment page.</p></noscript>
<button type="submit">Continue to payment</button>
</form>
</body></html>
`

type field struct{ Name, Value string }

func renderPage(method, action string, fields map[string]string) (string, error) {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	fs := make([]field, 0, len(names))
	for _, n := range names {
		fs = append(fs, field{n, fields[n]})
	}
	var buf bytes.Buffer
	if err := pageTmpl().Execute(&buf, struct {
		Method, Action string
		Fields         []field
	}{method, action, fs}); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// ---------------------------------------------------------------------------
// references

// NewReference returns a new payment reference: 26 characters of Crockford
// base32 (upper-case alphanumerics), the first 10 encoding the time in
// milliseconds so references sort by creation, the last 16 random (80
// fresh bits: ulid.Random, not ulid.New, whose next id in the same
// millisecond is the previous one plus one).
func NewReference(now time.Time) string { return ulid.Random(now) }

var reReference = boundedre.MustCompile(`^[0-9A-Za-z]*$`, 1, 35)

// ValidReference reports whether ref has the shape of a reference
// (1-35 alphanumerics).
func ValidReference(ref string) bool { return reReference.MatchString(ref) }
