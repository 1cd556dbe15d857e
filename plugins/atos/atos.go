// Package atos is acquit's Atos / Worldline Sips 2.0 payment gateway
// plugin (Worldline Sips and the bank brands built on it: Mercanet,
// Sogenactif, Sherlock's, Scellius). It builds Paypage POST or Paypage
// JSON requests, verifies the automatic and manual responses (seal, key
// version, merchant) and asks Sips Office (getTransactionData) about a
// transaction. The protocol itself is in package sips; a simulator for
// tests and demos is in package sim.
package atos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/plugins/atos/sips"
	"github.com/acquit/acquit/sdk"
)

// Name and Version are what the plugin reports in Describe.
const (
	Name    = "atos"
	Version = "1.0.0"
)

// Compile-time guard.
var _ sdk.PaymentGateway = (*Plugin)(nil)

// ErrNotConfigured is returned before the first successful Configure.
var ErrNotConfigured = errors.New("atos: not configured")

// Plugin is the Sips payment gateway. Its zero value is not usable: call
// New.
type Plugin struct {
	mu     sync.RWMutex
	cfg    *config
	host   sdk.Host
	client *sips.Client

	log        zerolog.Logger
	now        func() time.Time
	httpClient *http.Client
	paris      *time.Location
}

// Option configures a Plugin.
type Option func(*Plugin)

// WithLogger sets the logger (default: JSON to stderr; a plugin must never
// write to stdout).
func WithLogger(l zerolog.Logger) Option { return func(p *Plugin) { p.log = l } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(p *Plugin) { p.now = now } }

// WithHTTPClient sets the HTTP client used to call Sips.
func WithHTTPClient(c *http.Client) Option { return func(p *Plugin) { p.httpClient = c } }

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
	if loc, err := time.LoadLocation("Europe/Paris"); err == nil {
		p.paris = loc
	} else {
		p.paris = time.UTC
	}
	return p
}

// Describe reports the plugin's name, version, kind and settings schema.
// Reconciliation is the daemon's "atos.reconcile" job, which calls
// QueryTransaction: the plugin offers no job of its own.
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
	client := &sips.Client{HTTP: p.httpClient, Timeout: c.timeout, MaxResponse: c.settings.MaxResponseBytes}
	p.mu.Lock()
	p.cfg, p.host, p.client = c, host, client
	p.mu.Unlock()
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	p.log.Info().Strs("merchants", names).Str("default", c.def.Name).Msg("atos configured")
	return nil
}

// Health reports whether the plugin is configured.
func (p *Plugin) Health(ctx context.Context) error {
	if c, _, _ := p.snapshot(); c == nil {
		return ErrNotConfigured
	}
	return nil
}

func (p *Plugin) snapshot() (*config, sdk.Host, *sips.Client) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cfg, p.host, p.client
}

func (c *config) merchant(name string) (*merchant, error) {
	if name == "" {
		return c.def, nil
	}
	m, ok := c.byName[name]
	if !ok {
		return nil, fmt.Errorf("atos: unknown merchant %q", name)
	}
	return m, nil
}

// allowedExtra lists PaymentRequest.Extra keys passed to Sips as is.
var allowedExtra = map[string]bool{"templateName": true, "returnContext": true, "statementReference": true, "paymentPattern": true}

// InitPayment builds the Paypage request: the form to post to Paypage
// (post mode) or the redirection returned by paymentInit (json mode).
// automaticResponseUrl is req.AutomaticURL and normalReturnUrl is
// req.ManualURL.
func (p *Plugin) InitPayment(ctx context.Context, req sdk.PaymentRequest) (*sdk.PaymentInit, error) {
	c, host, client := p.snapshot()
	if c == nil {
		return nil, ErrNotConfigured
	}
	m, err := c.merchant(req.Merchant)
	if err != nil {
		return nil, sdk.Reject("unknown_merchant", "%v", err) // the shop's request is wrong, not Sips
	}
	cur, ok := sips.CurrencyNumeric(req.Currency)
	if !ok {
		return nil, sdk.Reject("unsupported_currency", "atos init %s: currency %q is not supported by Sips", req.Reference, req.Currency)
	}
	if req.Amount <= 0 || req.Amount > 999_999_999_999 {
		return nil, sdk.Reject("bad_amount", "atos init %s: amount %d out of range", req.Reference, req.Amount)
	}
	if req.AutomaticURL == "" || req.ManualURL == "" {
		return nil, fmt.Errorf("atos init %s: automatic and manual URLs are required", req.Reference)
	}
	if err := checkShopFields(req); err != nil {
		return nil, err
	}
	ref := sips.Reference{}
	init := &sdk.PaymentInit{Merchant: m.Name, Method: http.MethodPost, Raw: map[string]string{"mode": m.Mode, "keyVersion": m.KeyVersion}}
	switch m.ReferenceStyle {
	case StyleS10:
		id, date, err := p.dailyTransactionID(ctx, host, m)
		if err != nil {
			return nil, fmt.Errorf("atos init %s: %w", req.Reference, err)
		}
		ref.S10TransactionID, ref.S10TransactionIDDate = id, date
		init.Reference, init.TransactionDate = id, date
	default:
		if !validTransactionReference(req.Reference) {
			return nil, sdk.Reject("bad_reference", "atos init: reference %q must be 1-35 letters or digits", req.Reference)
		}
		ref.TransactionReference = req.Reference
		init.Reference = req.Reference
	}
	fields := map[string]string{
		"amount":               strconv.FormatInt(req.Amount, 10),
		"currencyCode":         cur,
		"normalReturnUrl":      req.ManualURL,
		"automaticResponseUrl": req.AutomaticURL,
		"orderChannel":         m.OrderChannel,
		"captureMode":          m.CaptureMode,
	}
	if m.captureDay != "" {
		fields["captureDay"] = m.captureDay
	}
	if req.OrderID != "" {
		fields["orderId"] = req.OrderID
	}
	if req.CustomerID != "" {
		fields["customerId"] = req.CustomerID
	}
	if req.CustomerEmail != "" {
		fields["customerContact.email"] = req.CustomerEmail
	}
	if lang := language(req.Locale); lang != "" {
		fields["customerLanguage"] = lang
	}
	for k, v := range req.Extra {
		if allowedExtra[k] {
			fields[k] = v
		} else {
			p.log.Debug().Str("reference", req.Reference).Str("extra", k).Msg("extra field not passed to Sips")
		}
	}
	if m.Mode == "json" {
		return p.initJSON(ctx, client, m, ref, fields, init)
	}
	if ref.TransactionReference != "" {
		fields["transactionReference"] = ref.TransactionReference
	} else {
		fields["s10TransactionReference.s10TransactionId"] = ref.S10TransactionID
		fields["s10TransactionReference.s10TransactionIdDate"] = ref.S10TransactionIDDate
	}
	if len(m.PaymentMeans) > 0 {
		fields["paymentMeanBrandList"] = strings.Join(m.PaymentMeans, ",")
	}
	if m.Encode != "" {
		fields["responseEncoding"] = m.Encode
	}
	form, err := sips.BuildPost(m.acc, m.KeyVersion, fields, m.Encode, m.InterfaceVersion)
	if err != nil {
		return nil, fmt.Errorf("atos init %s: %w", init.Reference, err)
	}
	data, _ := form.DecodedData()
	init.RedirectURL = m.paypage + sips.PathPaymentInitPost
	init.Fields = form.Map()
	init.Raw["Data"] = data
	p.log.Debug().Str("merchant", m.Name).Str("reference", init.Reference).Str("mode", "post").Msg("payment request built")
	return init, nil
}

func (p *Plugin) initJSON(ctx context.Context, client *sips.Client, m *merchant, ref sips.Reference, fields map[string]string, init *sdk.PaymentInit) (*sdk.PaymentInit, error) {
	msg := map[string]any{"interfaceVersion": m.InterfaceVersion}
	for k, v := range fields {
		if strings.HasPrefix(k, "customerContact.") {
			cc, _ := msg["customerContact"].(map[string]any)
			if cc == nil {
				cc = map[string]any{}
				msg["customerContact"] = cc
			}
			cc[strings.TrimPrefix(k, "customerContact.")] = v
			continue
		}
		msg[k] = v
	}
	if ref.TransactionReference != "" {
		msg["transactionReference"] = ref.TransactionReference
	} else {
		msg["s10TransactionReference"] = map[string]any{"s10TransactionId": ref.S10TransactionID, "s10TransactionIdDate": ref.S10TransactionIDDate}
	}
	if len(m.PaymentMeans) > 0 {
		msg["paymentMeanBrandList"] = append([]string(nil), m.PaymentMeans...)
	}
	r, err := client.PaymentInit(ctx, m.paypage+sips.PathPaymentInitJSON, m.acc, m.KeyVersion, msg)
	if err != nil {
		return nil, fmt.Errorf("atos init %s: %w", init.Reference, err)
	}
	init.RedirectURL = r.URL
	init.Fields = r.FormFields()
	init.Raw["redirectionVersion"] = r.Version
	p.log.Debug().Str("merchant", m.Name).Str("reference", init.Reference).Str("mode", "json").Msg("payment initialised")
	return init, nil
}

// dailyTransactionID allocates the legacy 6-digit s10TransactionId, unique
// per merchant and per Sips day (Europe/Paris), from the plugin's durable
// counter in the daemon's Host: a Sips rule the daemon knows nothing about.
// The "s10:" counter names are kept as they are, so ids already handed out
// today are never handed out again.
func (p *Plugin) dailyTransactionID(ctx context.Context, host sdk.Host, m *merchant) (id, date string, err error) {
	if host == nil {
		return "", "", errors.New("s10 references need the daemon's Host (a durable per-day counter); none was configured")
	}
	date = p.now().In(p.paris).Format("20060102")
	seq, err := host.NextSequence(ctx, "s10:"+m.MerchantID+":"+date)
	if err != nil {
		return "", "", fmt.Errorf("s10 sequence: %w", err)
	}
	if seq < 1 || seq > 899999 {
		return "", "", fmt.Errorf("s10 sequence %d out of 1..899999 for %s on %s", seq, m.MerchantID, date)
	}
	return fmt.Sprintf("%06d", seq), date, nil
}

func validTransactionReference(s string) bool {
	if s == "" || len(s) > 35 {
		return false
	}
	for _, r := range s {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return false
		}
	}
	return true
}

// checkShopFields refuses, as the shop's mistake (a *sdk.RejectError
// "bad_field" whose message starts with the request's field name), a value
// passed to Sips that Sips cannot carry (see sips.ValueProblem), in both
// modes: the responses come back as Data whatever the request's mode.
func checkShopFields(req sdk.PaymentRequest) error {
	for _, f := range []struct{ name, v string }{{"order_id", req.OrderID}, {"customer_id", req.CustomerID},
		{"customer_email", req.CustomerEmail}} {
		if p := sips.ValueProblem(f.v); p != "" {
			return sdk.Reject("bad_field", "%s %s", f.name, p)
		}
	}
	for k, v := range req.Extra {
		if !allowedExtra[k] {
			continue
		}
		if p := sips.ValueProblem(v); p != "" {
			return sdk.Reject("bad_field", "extra.%s %s", k, p)
		}
	}
	return nil
}

// language turns a locale ("fr-FR", "en_GB", "de") into Sips'
// customerLanguage (two lower-case letters), "" when it cannot.
func language(locale string) string {
	if len(locale) < 2 {
		return ""
	}
	l := strings.ToLower(locale[:2])
	if l[0] < 'a' || l[0] > 'z' || l[1] < 'a' || l[1] > 'z' {
		return ""
	}
	if len(locale) > 2 && locale[2] != '-' && locale[2] != '_' {
		return ""
	}
	return l
}

// VerifyNotification verifies an automatic or manual response (the raw
// form POST) and decodes it. Untrusted input gives a *sdk.RejectError with
// one of the sips.Reject* codes.
func (p *Plugin) VerifyNotification(ctx context.Context, n sdk.Notification) (*sdk.PaymentResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, _, _ := p.snapshot()
	if c == nil {
		return nil, ErrNotConfigured
	}
	if n.Method != "" && !strings.EqualFold(n.Method, http.MethodPost) {
		return nil, p.rejected(n, sdk.Reject(sips.RejectMalformed, "method %s: Sips responses are POSTed", clip(n.Method, 10)))
	}
	form, err := sips.ParsePostForm(n.Body)
	if err != nil {
		return nil, p.rejected(n, err)
	}
	resp, err := sips.VerifyPost(form, func(id string) (*sips.Account, bool) {
		m, ok := c.byID[id]
		if !ok {
			return nil, false
		}
		return m.acc, true
	})
	if err != nil {
		return nil, p.rejected(n, err)
	}
	m := c.byID[resp.MerchantID]
	ref, date := resp.Reference()
	currency := resp.CurrencyCode
	if a, ok := sips.CurrencyAlpha(currency); ok {
		currency = a
	}
	fields := make(map[string]string, len(resp.Fields))
	for k, v := range resp.Fields {
		fields[k] = v
	}
	res := &sdk.PaymentResult{
		Merchant:             m.Name,
		Reference:            ref,
		TransactionDate:      date,
		Amount:               resp.Amount,
		Currency:             currency,
		Outcome:              resp.Interpretation.Outcome,
		ResponseCode:         resp.ResponseCode,
		AcquirerResponseCode: resp.AcquirerResponseCode,
		AskLater:             resp.Interpretation.AskLater,
		Explanation:          resp.Interpretation.Explanation,
		AuthorisationID:      resp.AuthorisationID,
		KeyVersion:           resp.KeyVersion,
		Fields:               fields,
	}
	ev := p.log.Debug()
	if resp.ResponseCode == "34" {
		ev = p.log.Warn()
	}
	ev.Str("channel", string(n.Channel)).Str("merchant", m.Name).Str("reference", ref).
		Str("response_code", resp.ResponseCode).Str("outcome", string(res.Outcome)).Bool("ask_later", res.AskLater).
		Str("key_version", resp.KeyVersion).Msg("notification verified")
	return res, nil
}

// rejected logs a refused notification (never its body: it may carry
// card data) and returns err.
func (p *Plugin) rejected(n sdk.Notification, err error) error {
	p.log.Warn().Str("channel", string(n.Channel)).Str("remote", n.RemoteAddr).Int("body_bytes", len(n.Body)).
		Str("code", sips.RejectCode(err)).Err(err).Msg("notification rejected")
	return err
}

// QueryTransaction asks Office (getTransactionData) about a transaction:
// by transactionReference, or by s10TransactionId when q.TransactionDate
// is set and the reference is 6 digits. Sips' 25 gives NotFound; platform
// trouble gives Pending with AskLater; a request Sips refuses (seal 34,
// merchant 03, format 30...) is an error that names the cause.
func (p *Plugin) QueryTransaction(ctx context.Context, q sdk.TransactionQuery) (*sdk.PaymentResult, error) {
	c, _, client := p.snapshot()
	if c == nil {
		return nil, ErrNotConfigured
	}
	m, err := c.merchant(q.Merchant)
	if err != nil {
		return nil, err
	}
	ref := sips.Reference{TransactionReference: q.Reference}
	if q.TransactionDate != "" && len(q.Reference) == 6 && isDigits(q.Reference) {
		ref = sips.Reference{S10TransactionID: q.Reference, S10TransactionIDDate: q.TransactionDate}
	} else if !validTransactionReference(q.Reference) {
		return nil, fmt.Errorf("atos query: reference %q is not a Sips reference", clip(q.Reference, 40))
	}
	td, err := client.GetTransactionData(ctx, sips.OfficeQuery{
		BaseURL: m.office, Account: m.acc, KeyVersion: m.KeyVersion, InterfaceVersion: m.OfficeInterfaceVersion, Ref: ref,
	})
	if err != nil {
		p.log.Warn().Str("merchant", m.Name).Str("reference", ref.String()).Err(err).Msg("office query failed")
		return nil, fmt.Errorf("atos query %s: %w", ref.String(), err)
	}
	currency := td.CurrencyCode
	if a, ok := sips.CurrencyAlpha(currency); ok {
		currency = a
	}
	fields := make(map[string]string, len(td.Fields))
	for k, v := range td.Fields {
		if k != "seal" {
			fields[k] = v
		}
	}
	// Office's 00 only says that Office answered: it is no statement about
	// the payment (a REFUSED transaction is answered 00 too), so it is not
	// passed on as the payment's response code; the transaction's status
	// is in the explanation and in Fields (transactionStatus). Other codes
	// (25: no such transaction, 90/99: ask later) are the answer itself.
	code := td.ResponseCode
	if code == "00" {
		code = ""
	}
	res := &sdk.PaymentResult{
		Merchant:             m.Name,
		Reference:            q.Reference,
		TransactionDate:      q.TransactionDate,
		Amount:               td.Amount,
		Currency:             currency,
		Outcome:              td.Interpretation.Outcome,
		ResponseCode:         code,
		AcquirerResponseCode: td.AcquirerResponseCode,
		AskLater:             td.Interpretation.AskLater,
		Explanation:          td.Interpretation.Explanation,
		AuthorisationID:      td.AuthorisationID,
		KeyVersion:           m.KeyVersion,
		Fields:               fields,
	}
	p.log.Debug().Str("merchant", m.Name).Str("reference", ref.String()).Str("response_code", td.ResponseCode).
		Str("status", td.TransactionStatus).Str("outcome", string(res.Outcome)).Msg("office answered")
	return res, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// discard is a logger for callers that want silence.
var discard = zerolog.New(io.Discard)

// Silent returns an Option that discards logs (tests, benchmarks).
func Silent() Option { return WithLogger(discard) }
