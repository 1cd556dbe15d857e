// Package worldline is acquit's Worldline Direct payment gateway plugin,
// the successor of Sips 2.0 for Worldline's own brand. It creates hosted
// checkouts, verifies webhooks (X-GCS-Signature with key rotation by
// X-GCS-KeyId) and the customer's return (RETURNMAC, then a
// GetHostedCheckout call: the return itself proves nothing), and answers
// reconciliation through GetHostedCheckout and GetPaymentDetails. The
// protocol is in package direct; a simulator is in package sim.
package worldline

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/internal/boundedre"
	"github.com/acquit/acquit/plugins/worldline/direct"
	"github.com/acquit/acquit/sdk"
)

// Name and Version are what the plugin reports in Describe.
const (
	Name    = "worldline"
	Version = "1.0.0"
)

// Compile-time guard.
var _ sdk.PaymentGateway = (*Plugin)(nil)

// ErrNotConfigured is returned before the first successful Configure.
var ErrNotConfigured = errors.New("worldline: not configured")

// Reject codes, stable for metrics.
const (
	RejectMalformed       = "malformed"         // not JSON, not a query, trailing data, wrong method
	RejectMissingField    = "missing_field"     // a field acquit needs is absent
	RejectTooLarge        = "too_large"         // body over max_webhook_bytes
	RejectMissingSig      = "missing_signature" // X-GCS-Signature or X-GCS-KeyId absent or repeated
	RejectUnknownKeyID    = "unknown_key_id"    // no secret for that X-GCS-KeyId
	RejectBadSignature    = "bad_signature"     // X-GCS-Signature does not match the body
	RejectWrongMerchant   = "wrong_merchant"    // merchantId is not the key's account
	RejectEventReused     = "event_id_reused"   // an event id already seen with another body
	RejectUnsupported     = "unsupported_event" // not a payment.* event
	RejectUnknownCheckout = "unknown_checkout"  // a return or query naming no checkout of ours
	RejectBadReturnMAC    = "bad_returnmac"     // RETURNMAC does not match the checkout's
	RejectBadPaymentID    = "bad_payment_id"    // payment.id is not paymentid_operationid
	RejectUnknownMerchant = "unknown_merchant"  // InitPayment for an account not configured
	RejectBadRequest      = "bad_request"       // InitPayment arguments Worldline would refuse
)

// Plugin is the Worldline Direct payment gateway. Its zero value is not
// usable: call New.
type Plugin struct {
	mu     sync.RWMutex
	cfg    *config
	host   sdk.Host
	client *direct.Client

	log        zerolog.Logger
	now        func() time.Time
	httpClient *http.Client
}

// Option configures a Plugin.
type Option func(*Plugin)

// WithLogger sets the logger (default: JSON to stderr; a plugin must never
// write to stdout).
func WithLogger(l zerolog.Logger) Option { return func(p *Plugin) { p.log = l } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(p *Plugin) { p.now = now } }

// WithHTTPClient sets the HTTP client used to call Worldline.
func WithHTTPClient(c *http.Client) Option { return func(p *Plugin) { p.httpClient = c } }

// Silent returns an Option that discards logs (tests, benchmarks).
func Silent() Option { return WithLogger(zerolog.New(io.Discard)) }

// New returns an unconfigured plugin.
func New(opts ...Option) *Plugin {
	level, err := zerolog.ParseLevel(os.Getenv(sdk.LogLevelEnv))
	if err != nil || level == zerolog.NoLevel {
		level = zerolog.InfoLevel
	}
	p := &Plugin{
		log: zerolog.New(os.Stderr).Level(level).With().Timestamp().Str("plugin", Name).Logger(),
		now: time.Now,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Describe reports the plugin's name, version, kind and settings schema.
// Reconciliation is the daemon's "worldline.reconcile" job, which calls
// QueryTransaction.
func (p *Plugin) Describe(ctx context.Context) (sdk.Info, error) {
	return sdk.Info{Name: Name, Version: Version, Kind: sdk.KindPaymentGateway, ConfigSchema: configSchema}, nil
}

// Configure validates and installs a settings block; on error the previous
// settings stay in force.
func (p *Plugin) Configure(ctx context.Context, settings []byte, host sdk.Host) error {
	c, err := parseSettings(settings)
	if err != nil {
		return err
	}
	client := &direct.Client{HTTP: p.httpClient, Timeout: c.timeout, MaxResponse: c.settings.MaxResponseBytes, Now: p.now}
	p.mu.Lock()
	p.cfg, p.host, p.client = c, host, client
	p.mu.Unlock()
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	p.log.Info().Strs("merchants", names).Str("default", c.def.Name).Int("webhook_keys", len(c.byKeyID)).Msg("worldline configured")
	return nil
}

// Health reports whether the plugin is configured.
func (p *Plugin) Health(ctx context.Context) error {
	if c, _, _ := p.snapshot(); c == nil {
		return ErrNotConfigured
	}
	return nil
}

func (p *Plugin) snapshot() (*config, sdk.Host, *direct.Client) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cfg, p.host, p.client
}

// checkout is what the plugin keeps (in the daemon's store, through the
// Host) about each hosted checkout it created, under "hc:<id>" and
// "ref:<reference>".
type checkout struct {
	ID        string `json:"id"`
	Reference string `json:"reference"`
	Merchant  string `json:"merchant"`
	ReturnMAC string `json:"returnmac"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	Created   int64  `json:"created"` // unix ms
	Timeout   int    `json:"timeout"` // minutes
}

// reReference and reEventID bound their lengths apart (boundedre); the
// few copies of reCurrency's and reLocale's classes cost little.
var (
	reReference = boundedre.MustCompile(`^[0-9A-Za-z]*$`, 1, 40)
	reCurrency  = regexp.MustCompile(`^[A-Z]{3}$`)
	reLocale    = regexp.MustCompile(`^([a-z]{2})(?:[-_]([A-Za-z]{2}))?$`)
	reEventID   = boundedre.MustCompile(`^[0-9A-Za-z-]*$`, 1, 64)
)

// locale turns "fr-FR", "en_gb", "de" into Worldline's "fr_FR", "en_GB",
// "de"; "" when it cannot.
func locale(s string) string {
	m := reLocale.FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	if m[2] == "" {
		return m[1]
	}
	return m[1] + "_" + strings.ToUpper(m[2])
}

// InitPayment creates a hosted checkout (the daemon's reference is the
// merchantReference and the idempotence key) and keeps its id and
// RETURNMAC through the Host before answering, so that the customer's
// return and reconciliation can find it after a crash of either process.
func (p *Plugin) InitPayment(ctx context.Context, req sdk.PaymentRequest) (*sdk.PaymentInit, error) {
	c, host, client := p.snapshot()
	if c == nil {
		return nil, ErrNotConfigured
	}
	if host == nil {
		return nil, errors.New("worldline init: no host to keep the checkout in")
	}
	m, err := c.merchant(req.Merchant)
	if err != nil {
		return nil, sdk.Reject(RejectUnknownMerchant, "%v", err)
	}
	if !reReference.MatchString(req.Reference) {
		return nil, sdk.Reject(RejectBadRequest, "worldline init: reference %q must be 1-40 letters or digits", clip(req.Reference, 50))
	}
	if !reCurrency.MatchString(req.Currency) {
		return nil, sdk.Reject(RejectBadRequest, "worldline init %s: currency %q is not ISO 4217 alphabetic", req.Reference, clip(req.Currency, 10))
	}
	if req.Amount <= 0 || req.Amount > 999_999_999_999 {
		return nil, sdk.Reject(RejectBadRequest, "worldline init %s: amount %d out of range", req.Reference, req.Amount)
	}
	if req.ManualURL == "" {
		return nil, fmt.Errorf("worldline init %s: the return URL is required", req.Reference)
	}
	body := &direct.CreateHostedCheckoutRequest{
		Order: direct.Order{
			AmountOfMoney: direct.AmountOfMoney{Amount: req.Amount, CurrencyCode: req.Currency},
			References:    direct.References{MerchantReference: req.Reference},
		},
		HostedCheckoutSpecificInput: direct.HostedCheckoutSpecificInput{
			ReturnURL: req.ManualURL, Locale: locale(req.Locale), SessionTimeout: m.SessionTimeout, Variant: m.Variant,
		},
		CardPaymentMethodSpecificInput: &direct.CardInput{AuthorizationMode: m.AuthorizationMode},
	}
	if req.CustomerID != "" || req.CustomerEmail != "" {
		cu := &direct.Customer{MerchantCustomerID: req.CustomerID, Locale: locale(req.Locale)}
		if req.CustomerEmail != "" {
			cu.ContactDetails = &direct.ContactDetails{EmailAddress: req.CustomerEmail}
		}
		body.Order.Customer = cu
	}
	resp, err := client.CreateHostedCheckout(ctx, m.ep, body, req.Reference)
	if err != nil {
		p.log.Warn().Str("merchant", m.Name).Str("reference", req.Reference).Err(err).Msg("create hosted checkout failed")
		return nil, fmt.Errorf("worldline init %s: %w", req.Reference, err)
	}
	if resp.MerchantReference != "" && resp.MerchantReference != req.Reference {
		return nil, fmt.Errorf("worldline init %s: the checkout names merchantReference %q", req.Reference, clip(resp.MerchantReference, 50))
	}
	co := checkout{ID: resp.HostedCheckoutID, Reference: req.Reference, Merchant: m.Name, ReturnMAC: resp.RETURNMAC,
		Amount: req.Amount, Currency: req.Currency, Created: p.now().UnixMilli(), Timeout: m.SessionTimeout}
	if err := putCheckout(ctx, host, co); err != nil {
		return nil, fmt.Errorf("worldline init %s: keep checkout %s: %w", req.Reference, co.ID, err)
	}
	p.log.Debug().Str("merchant", m.Name).Str("reference", req.Reference).Str("hosted_checkout_id", co.ID).Msg("hosted checkout created")
	return &sdk.PaymentInit{
		Reference: req.Reference, Merchant: m.Name, RedirectURL: resp.RedirectURL, Method: http.MethodGet,
		Fields: map[string]string{}, Raw: map[string]string{"hostedCheckoutId": co.ID},
	}, nil
}

// putCheckout stores co under both keys. A retried InitPayment gets the
// same checkout back (idempotence key), so an existing identical record is
// fine.
func putCheckout(ctx context.Context, host sdk.Host, co checkout) error {
	b, _ := json.Marshal(co)
	for _, key := range []string{"hc:" + co.ID, "ref:" + co.Reference} {
		if _, err := host.StatePut(ctx, key, b, 0); err != nil {
			if !errors.Is(err, sdk.ErrConflict) {
				return err
			}
			old, err := getCheckout(ctx, host, key)
			if err != nil {
				return err
			}
			if old == nil || old.ID != co.ID || old.Reference != co.Reference {
				return fmt.Errorf("%s already names another checkout", key)
			}
		}
	}
	return nil
}

func getCheckout(ctx context.Context, host sdk.Host, key string) (*checkout, error) {
	b, _, err := host.StateGet(ctx, key)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, nil
	}
	var co checkout
	if err := json.Unmarshal(b, &co); err != nil {
		return nil, fmt.Errorf("checkout record %s: %w", key, err)
	}
	return &co, nil
}

// VerifyNotification verifies a webhook (channel automatic) or the
// customer's return (channel manual). Untrusted input gives a
// *sdk.RejectError; a Worldline or Host call that fails gives a plain
// error (the daemon keeps the input and answers "retry").
func (p *Plugin) VerifyNotification(ctx context.Context, n sdk.Notification) (*sdk.PaymentResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, host, client := p.snapshot()
	if c == nil {
		return nil, ErrNotConfigured
	}
	var res *sdk.PaymentResult
	var err error
	if n.Channel == sdk.ChannelManual {
		res, err = p.verifyReturn(ctx, c, host, client, n)
	} else {
		res, err = p.verifyWebhook(ctx, c, host, n)
	}
	var rej *sdk.RejectError
	if errors.As(err, &rej) {
		// Never the body: it may carry customer data.
		p.log.Warn().Str("channel", string(n.Channel)).Str("remote", n.RemoteAddr).Int("body_bytes", len(n.Body)).
			Str("code", rej.Code).Err(err).Msg("notification rejected")
	}
	return res, err
}

func (p *Plugin) verifyWebhook(ctx context.Context, c *config, host sdk.Host, n sdk.Notification) (*sdk.PaymentResult, error) {
	if n.Method != "" && !strings.EqualFold(n.Method, http.MethodPost) {
		return nil, sdk.Reject(RejectMalformed, "method %s: webhooks are POSTed", clip(n.Method, 10))
	}
	if int64(len(n.Body)) > c.maxWebhook {
		return nil, sdk.Reject(RejectTooLarge, "webhook body of %d bytes, at most %d", len(n.Body), c.maxWebhook)
	}
	keyID, err := direct.VerifyWebhook(n.Headers, n.Body, c.webhookSecret)
	if err != nil {
		var we *direct.WebhookError
		if errors.As(err, &we) {
			return nil, sdk.Reject(we.Code, "%s", we.Message)
		}
		return nil, sdk.Reject(RejectBadSignature, "%v", err)
	}
	m := c.byKeyID[keyID]
	var ev direct.WebhookEvent
	if err := decodeStrict(n.Body, &ev); err != nil {
		return nil, sdk.Reject(RejectMalformed, "webhook body: %v", err)
	}
	if !reEventID.MatchString(ev.ID) {
		return nil, sdk.Reject(RejectMissingField, "webhook event id %q missing or malformed", clip(ev.ID, 70))
	}
	if ev.MerchantID != m.MerchantID {
		return nil, sdk.Reject(RejectWrongMerchant, "event %s: merchantId %q, but key %s belongs to %s", ev.ID, clip(ev.MerchantID, 70), keyID, m.MerchantID)
	}
	if !strings.HasPrefix(ev.Type, "payment.") || ev.Payment == nil {
		return nil, sdk.Reject(RejectUnsupported, "event %s: type %q carries no payment", ev.ID, clip(ev.Type, 70))
	}
	if host != nil {
		// Each event id once: the same body again is a duplicate delivery
		// (the daemon records it as such); another body under a seen id is
		// refused.
		sum := sha256.Sum256(n.Body)
		digest := []byte(hex.EncodeToString(sum[:]))
		if _, err := host.StatePut(ctx, "evt:"+ev.ID, digest, 0); err != nil {
			if !errors.Is(err, sdk.ErrConflict) {
				return nil, fmt.Errorf("event %s: record id: %w", ev.ID, err)
			}
			old, _, err := host.StateGet(ctx, "evt:"+ev.ID)
			if err != nil {
				return nil, fmt.Errorf("event %s: read id: %w", ev.ID, err)
			}
			if !hmac.Equal(old, digest) {
				return nil, sdk.Reject(RejectEventReused, "event id %s already received with another body", ev.ID)
			}
		}
	}
	res, err := p.fromPayment(ctx, host, m, ev.Payment, nil)
	if err != nil {
		return nil, err
	}
	res.KeyVersion = keyID
	res.Fields["event_id"], res.Fields["event_type"], res.Fields["event_created"] = ev.ID, ev.Type, ev.Created
	p.log.Debug().Str("merchant", m.Name).Str("event_id", ev.ID).Str("type", ev.Type).Str("reference", res.Reference).
		Str("status_code", res.ResponseCode).Str("outcome", string(res.Outcome)).Msg("webhook verified")
	return res, nil
}

// decodeStrict decodes one JSON value and refuses trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// fromPayment reads a Worldline payment into a result. co, when known,
// names the checkout (return, reconciliation); otherwise the payment's
// merchantReference does, or its hosted checkout id.
func (p *Plugin) fromPayment(ctx context.Context, host sdk.Host, m *merchant, pay *direct.Payment, co *checkout) (*sdk.PaymentResult, error) {
	if _, _, err := direct.SplitPaymentID(pay.ID); err != nil {
		return nil, sdk.Reject(RejectBadPaymentID, "%v", err)
	}
	if pay.StatusOutput == nil {
		return nil, sdk.Reject(RejectMissingField, "payment %s: no statusOutput", pay.ID)
	}
	out := pay.PaymentOutput
	if out == nil || out.AmountOfMoney == nil {
		return nil, sdk.Reject(RejectMissingField, "payment %s: no paymentOutput.amountOfMoney", pay.ID)
	}
	ref := ""
	if out.References != nil {
		ref = out.References.MerchantReference
	}
	hcID := ""
	if pay.HostedCheckoutSpecificOutput != nil {
		hcID = pay.HostedCheckoutSpecificOutput.HostedCheckoutID
	}
	if ref == "" && co != nil {
		ref = co.Reference
	}
	if ref == "" && hcID != "" && host != nil && direct.ValidCheckoutID(hcID) {
		k, err := getCheckout(ctx, host, "hc:"+hcID)
		if err != nil {
			return nil, fmt.Errorf("payment %s: read checkout %s: %w", pay.ID, hcID, err)
		}
		if k != nil {
			ref = k.Reference
		}
	}
	if ref == "" {
		return nil, sdk.Reject(RejectMissingField, "payment %s: no merchantReference and no known hosted checkout", pay.ID)
	}
	if co != nil && ref != co.Reference {
		return nil, sdk.Reject(RejectUnknownCheckout, "payment %s names %q, the checkout was for %q", pay.ID, clip(ref, 50), co.Reference)
	}
	so := pay.StatusOutput
	in := direct.Interpret(so.StatusCode)
	expl := in.Meaning
	if so.StatusCategory != "" {
		expl += " (" + pay.Status + "/" + so.StatusCategory + ")"
	}
	if len(so.Errors) > 0 {
		expl += ": " + clip(so.Errors[0].Code+" "+so.Errors[0].Message, 200)
	}
	fields := map[string]string{
		"payment_id": pay.ID, "status": pay.Status, "status_code": strconv.Itoa(so.StatusCode),
		"status_category": so.StatusCategory, "is_authorized": strconv.FormatBool(so.IsAuthorized),
	}
	if hcID != "" {
		fields["hosted_checkout_id"] = hcID
	}
	if out.PaymentMethod != "" {
		fields["payment_method"] = out.PaymentMethod
	}
	res := &sdk.PaymentResult{
		Merchant: m.Name, Reference: ref, Amount: out.AmountOfMoney.Amount, Currency: out.AmountOfMoney.CurrencyCode,
		Outcome: in.Outcome, AskLater: in.AskLater, ResponseCode: strconv.Itoa(so.StatusCode), Explanation: expl, Fields: fields,
	}
	if card := out.CardPaymentMethodSpecificOutput; card != nil {
		res.AuthorisationID = card.AuthorisationCode
		if card.PaymentProductID != 0 {
			fields["payment_product_id"] = strconv.Itoa(card.PaymentProductID)
		}
		if card.Card != nil && card.Card.CardNumber != "" {
			fields["masked_card"] = card.Card.CardNumber
		}
	}
	if in.OpKind != "" {
		op := &sdk.Operation{ID: pay.ID, Kind: in.OpKind, Status: in.OpStatus, Amount: out.AmountOfMoney.Amount, Currency: out.AmountOfMoney.CurrencyCode}
		if in.OpKind == sdk.OperationCapture && out.AcquiredAmount != nil && out.AcquiredAmount.Amount > 0 {
			op.Amount = out.AcquiredAmount.Amount
		}
		res.Operation = op
	}
	return res, nil
}

// verifyReturn checks the customer's return: hostedCheckoutId must name a
// checkout of ours and RETURNMAC must be its own; then GetHostedCheckout
// tells what happened (the return itself decides nothing).
func (p *Plugin) verifyReturn(ctx context.Context, c *config, host sdk.Host, client *direct.Client, n sdk.Notification) (*sdk.PaymentResult, error) {
	raw := n.Query
	if strings.EqualFold(n.Method, http.MethodPost) && len(n.Body) > 0 {
		raw = string(n.Body)
	}
	if len(raw) > 4096 {
		return nil, sdk.Reject(RejectTooLarge, "return query of %d bytes", len(raw))
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, sdk.Reject(RejectMalformed, "return query: %v", err)
	}
	ids, macs := q["hostedCheckoutId"], q["RETURNMAC"]
	if len(ids) != 1 || len(macs) != 1 || ids[0] == "" || macs[0] == "" {
		return nil, sdk.Reject(RejectMissingField, "return: want one hostedCheckoutId and one RETURNMAC, got %d and %d", len(ids), len(macs))
	}
	if !direct.ValidCheckoutID(ids[0]) {
		return nil, sdk.Reject(RejectMalformed, "return: hostedCheckoutId %q malformed", clip(ids[0], 70))
	}
	if host == nil {
		return nil, errors.New("worldline return: no host to read the checkout from")
	}
	co, err := getCheckout(ctx, host, "hc:"+ids[0])
	if err != nil {
		return nil, fmt.Errorf("worldline return: read checkout %s: %w", ids[0], err)
	}
	if co == nil {
		return nil, sdk.Reject(RejectUnknownCheckout, "return: hosted checkout %s is not one of ours", ids[0])
	}
	if !hmac.Equal([]byte(co.ReturnMAC), []byte(macs[0])) {
		return nil, sdk.Reject(RejectBadReturnMAC, "return for checkout %s: RETURNMAC does not match", co.ID)
	}
	m, ok := c.byName[co.Merchant]
	if !ok {
		return nil, sdk.Reject(RejectUnknownMerchant, "return for checkout %s: merchant %q no longer configured", co.ID, co.Merchant)
	}
	hc, err := client.GetHostedCheckout(ctx, m.ep, co.ID)
	if err != nil {
		return nil, fmt.Errorf("worldline return %s: %w", co.Reference, err)
	}
	res, err := p.fromCheckout(ctx, client, m, co, hc, false)
	if err != nil {
		return nil, err
	}
	p.log.Debug().Str("merchant", m.Name).Str("reference", co.Reference).Str("checkout_status", hc.Status).
		Str("outcome", string(res.Outcome)).Msg("return verified")
	return res, nil
}

// fromCheckout reads GetHostedCheckout's answer; details asks
// GetPaymentDetails for the payment's current status (reconciliation).
func (p *Plugin) fromCheckout(ctx context.Context, client *direct.Client, m *merchant, co *checkout, hc *direct.GetHostedCheckoutResponse, details bool) (*sdk.PaymentResult, error) {
	base := func(o sdk.Outcome, askLater bool, expl string) *sdk.PaymentResult {
		return &sdk.PaymentResult{Merchant: m.Name, Reference: co.Reference, Amount: co.Amount, Currency: co.Currency,
			Outcome: o, AskLater: askLater, ResponseCode: hc.Status, Explanation: expl,
			Fields: map[string]string{"hosted_checkout_id": co.ID, "checkout_status": hc.Status}}
	}
	switch hc.Status {
	case direct.CheckoutCancelledByConsumer:
		return base(sdk.OutcomeCancelled, false, "the customer cancelled on the hosted page"), nil
	case direct.CheckoutInProgress:
		end := time.UnixMilli(co.Created).Add(time.Duration(co.Timeout)*time.Minute + 10*time.Minute)
		if p.now().After(end) {
			return base(sdk.OutcomeExpired, false, "hosted checkout still in progress after its session timeout: abandoned"), nil
		}
		return base(sdk.OutcomePending, true, "hosted checkout still in progress"), nil
	case direct.CheckoutPaymentCreated:
		if hc.CreatedPaymentOutput == nil || hc.CreatedPaymentOutput.Payment == nil {
			return nil, sdk.Reject(RejectMissingField, "checkout %s: PAYMENT_CREATED without a payment", co.ID)
		}
		pay := hc.CreatedPaymentOutput.Payment
		if details {
			d, err := client.GetPaymentDetails(ctx, m.ep, pay.ID)
			if err != nil {
				return nil, fmt.Errorf("payment details %s: %w", clip(pay.ID, 40), err)
			}
			if d.ID != pay.ID {
				return nil, sdk.Reject(RejectBadPaymentID, "details of %s answered for %s", clip(pay.ID, 40), clip(d.ID, 40))
			}
			pay = &d.Payment
		}
		res, err := p.fromPayment(ctx, nil, m, pay, co)
		if err != nil {
			return nil, err
		}
		res.Fields["checkout_status"] = hc.Status
		return res, nil
	}
	return base(sdk.OutcomePending, true, fmt.Sprintf("hosted checkout status %q unknown to acquit", clip(hc.Status, 40))), nil
}

// QueryTransaction asks Worldline about a payment: GetHostedCheckout for
// the checkout the reference was created with, then GetPaymentDetails for
// the payment it created. A checkout Worldline no longer knows (404: the
// session ended without a payment) gives NotFound.
func (p *Plugin) QueryTransaction(ctx context.Context, q sdk.TransactionQuery) (*sdk.PaymentResult, error) {
	c, host, client := p.snapshot()
	if c == nil {
		return nil, ErrNotConfigured
	}
	if host == nil {
		return nil, errors.New("worldline query: no host to read the checkout from")
	}
	if !reReference.MatchString(q.Reference) {
		return nil, sdk.Reject(RejectBadRequest, "worldline query: reference %q malformed", clip(q.Reference, 50))
	}
	co, err := getCheckout(ctx, host, "ref:"+q.Reference)
	if err != nil {
		return nil, fmt.Errorf("worldline query %s: read checkout: %w", q.Reference, err)
	}
	if co == nil {
		return nil, sdk.Reject(RejectUnknownCheckout, "worldline query: no hosted checkout recorded for %s", q.Reference)
	}
	m, ok := c.byName[co.Merchant]
	if !ok {
		return nil, fmt.Errorf("worldline query %s: merchant %q not configured", q.Reference, co.Merchant)
	}
	hc, err := client.GetHostedCheckout(ctx, m.ep, co.ID)
	if errors.Is(err, direct.ErrNotFound) {
		return &sdk.PaymentResult{Merchant: m.Name, Reference: co.Reference, Amount: co.Amount, Currency: co.Currency,
			Outcome: sdk.OutcomeNotFound, ResponseCode: "404", Explanation: "Worldline no longer knows the hosted checkout: no payment was made",
			Fields: map[string]string{"hosted_checkout_id": co.ID}}, nil
	}
	if err != nil {
		p.log.Warn().Str("merchant", m.Name).Str("reference", q.Reference).Err(err).Msg("get hosted checkout failed")
		return nil, fmt.Errorf("worldline query %s: %w", q.Reference, err)
	}
	res, err := p.fromCheckout(ctx, client, m, co, hc, true)
	if err != nil {
		return nil, fmt.Errorf("worldline query %s: %w", q.Reference, err)
	}
	p.log.Debug().Str("merchant", m.Name).Str("reference", q.Reference).Str("checkout_status", hc.Status).
		Str("outcome", string(res.Outcome)).Msg("worldline answered")
	return res, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
