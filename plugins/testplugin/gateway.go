// Package testplugin is a small but real payment-gateway plugin used to test
// the daemon's plugin host and the sdk wire layer: notifications are
// HMAC-SHA256 sealed, payments are kept in the daemon's Host state, and
// misbehaviour (crash, hang, panic, garbage on stdout) can be switched on
// through Misbehaviour.
package testplugin

import (
	"bytes"
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/acquit/acquit/sdk"
)

// Name and Version are what the plugin reports in Describe.
const (
	Name    = "test"
	Version = "0.1.0"
)

// MaxNotificationBody is the largest notification body accepted.
const MaxNotificationBody = 64 << 10

// ConfigSchema is the JSON Schema of the settings block.
const ConfigSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["secret", "merchant"],
  "properties": {
    "secret": {"type": "string", "minLength": 16, "description": "HMAC-SHA256 key sealing notifications"},
    "merchant": {"type": "string", "minLength": 1},
    "payment_url": {"type": "string"},
    "provider_url": {"type": "string", "description": "tests only: an http(s) URL QueryTransaction asks (with the call's context) before answering, standing for the provider's status API"}
  }
}`

// Settings is the plugin's settings block.
type Settings struct {
	Secret     string `json:"secret"`
	Merchant   string `json:"merchant"`
	PaymentURL string `json:"payment_url"`
	// ProviderURL, when set, is asked by QueryTransaction before it answers
	// from the Host state (see askProvider): sdk/plugintest points it at a
	// server that never answers to check that a cancelled query abandons
	// its request.
	ProviderURL string `json:"provider_url,omitempty"`
}

// askProvider stands for the request a real plugin makes to its provider:
// a GET of endpoint bound to the call's context, so that a cancelled call
// abandons it. The answer is read (at most 64 KiB) and must be 2xx.
func askProvider(ctx context.Context, endpoint string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("provider: HTTP %d", resp.StatusCode)
	}
	return nil
}

// checkProviderURL accepts "" or an absolute http(s) URL.
func checkProviderURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("provider_url %q is not an http(s) URL", raw)
	}
	return nil
}

// Misbehaviour makes the plugin fail on purpose. Method names are the
// sdk.PaymentGateway method names ("VerifyNotification", ...).
type Misbehaviour struct {
	CrashOn    string // os.Exit(3) when this method is called
	CrashAfter int    // os.Exit(3) on the call after this many payment calls (0: never)
	HangOn     string // block forever (ignoring the context) in this method
	PanicOn    string // panic in this method
	PrintOn    string // write garbage to stdout and a raw line to stderr in this method
}

// Environment variables read by MisbehaviourFromEnv.
const (
	EnvCrashOn       = "ACQUIT_TESTPLUGIN_CRASH_ON"
	EnvCrashAfter    = "ACQUIT_TESTPLUGIN_CRASH_AFTER"
	EnvHangOn        = "ACQUIT_TESTPLUGIN_HANG_ON"
	EnvPanicOn       = "ACQUIT_TESTPLUGIN_PANIC_ON"
	EnvPrintOn       = "ACQUIT_TESTPLUGIN_PRINT_ON"
	EnvStdoutGarbage = "ACQUIT_TESTPLUGIN_STDOUT_GARBAGE" // "1": write garbage to stdout before the handshake
	EnvExitAtStart   = "ACQUIT_TESTPLUGIN_EXIT_AT_START"  // "1": exit(4) before serving
	EnvStartedFile   = "ACQUIT_TESTPLUGIN_STARTED_FILE"   // path: write the pid there at start
	EnvHangAtStart   = "ACQUIT_TESTPLUGIN_HANG_AT_START"  // "1": never complete the handshake
	EnvServe         = "ACQUIT_TESTPLUGIN_SERVE"          // "gateway" (default), "transport" or "both"
	EnvCPUProfile    = "ACQUIT_TESTPLUGIN_CPUPROFILE"     // path: write a CPU profile there until the daemon stops the plugin
)

// MisbehaviourFromEnv reads Misbehaviour from the environment.
func MisbehaviourFromEnv() Misbehaviour {
	n, _ := strconv.Atoi(os.Getenv(EnvCrashAfter))
	return Misbehaviour{
		CrashOn:    os.Getenv(EnvCrashOn),
		CrashAfter: n,
		HangOn:     os.Getenv(EnvHangOn),
		PanicOn:    os.Getenv(EnvPanicOn),
		PrintOn:    os.Getenv(EnvPrintOn),
	}
}

// Gateway is the test payment gateway.
type Gateway struct {
	mis   Misbehaviour
	calls atomic.Int64

	mu       sync.RWMutex
	settings *Settings
	host     sdk.Host
}

var (
	_ sdk.PaymentGateway = (*Gateway)(nil)
	_ sdk.JobRunner      = (*Gateway)(nil)
)

// New returns an unconfigured gateway.
func New(m Misbehaviour) *Gateway { return &Gateway{mis: m} }

// apply crashes, panics or hangs when method is the one configured.
func (m Misbehaviour) apply(method string) {
	if m.CrashOn == method {
		os.Exit(3)
	}
	if m.PrintOn == method {
		fmt.Fprintf(os.Stdout, "garbage on stdout during %s \x00\xff\n", method)
		fmt.Fprintf(os.Stderr, "raw stderr line during %s\n", method)
	}
	if m.PanicOn == method {
		panic("testplugin: panic on " + method)
	}
	if m.HangOn == method {
		select {}
	}
}

// misbehave applies the configured misbehaviour for method; payment calls
// also count towards CrashAfter.
func (g *Gateway) misbehave(method string, payment bool) {
	if payment && g.mis.CrashAfter > 0 && g.calls.Add(1) > int64(g.mis.CrashAfter) {
		os.Exit(3)
	}
	g.mis.apply(method)
}

// ErrNotConfigured is returned by calls made before a successful Configure.
var ErrNotConfigured = errors.New("testplugin: not configured")

func (g *Gateway) current() (*Settings, sdk.Host, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.settings == nil {
		return nil, nil, ErrNotConfigured
	}
	return g.settings, g.host, nil
}

// Describe implements sdk.Plugin.
func (g *Gateway) Describe(context.Context) (sdk.Info, error) {
	g.misbehave("Describe", false)
	return sdk.Info{Name: Name, Version: Version, Kind: sdk.KindPaymentGateway, ConfigSchema: ConfigSchema, Jobs: []string{"reconcile"}}, nil
}

// Configure implements sdk.Plugin.
func (g *Gateway) Configure(_ context.Context, settings []byte, host sdk.Host) error {
	g.misbehave("Configure", false)
	var s Settings
	dec := json.NewDecoder(bytes.NewReader(settings))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("testplugin settings: %w", err)
	}
	if dec.More() {
		return errors.New("testplugin settings: trailing data")
	}
	if len(s.Secret) < 16 {
		return errors.New("testplugin settings: secret shorter than 16 bytes")
	}
	if s.Merchant == "" {
		return errors.New("testplugin settings: merchant missing")
	}
	if err := checkProviderURL(s.ProviderURL); err != nil {
		return fmt.Errorf("testplugin settings: %w", err)
	}
	if host == nil {
		return errors.New("testplugin settings: no host state offered")
	}
	if s.PaymentURL == "" {
		s.PaymentURL = "https://pay.example.invalid/pay"
	}
	g.mu.Lock()
	g.settings, g.host = &s, host
	g.mu.Unlock()
	return nil
}

// Health implements sdk.Plugin.
func (g *Gateway) Health(context.Context) error {
	g.misbehave("Health", false)
	_, _, err := g.current()
	return err
}

// Seal returns the hex HMAC-SHA256 of data under secret.
func Seal(secret, data string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(data))
	return hex.EncodeToString(m.Sum(nil))
}

// EncodeData encodes fields as the "k=v|k=v" Data string (keys sorted).
func EncodeData(fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + fields[k]
	}
	return strings.Join(parts, "|")
}

func decodeData(data string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range strings.Split(data, "|") {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("field %q has no key", p)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("duplicate field %q", k)
		}
		out[k] = v
	}
	return out, nil
}

type record struct {
	Reference string      `json:"reference"`
	Amount    int64       `json:"amount"`
	Currency  string      `json:"currency"`
	Outcome   sdk.Outcome `json:"outcome"`
	Code      string      `json:"code"`
}

func stateKey(ref string) string { return "payment/" + ref }

// InitPayment implements sdk.PaymentGateway: it allocates a transaction id
// from the Host, records the payment as pending and seals the request.
func (g *Gateway) InitPayment(ctx context.Context, req sdk.PaymentRequest) (*sdk.PaymentInit, error) {
	g.misbehave("InitPayment", true)
	s, host, err := g.current()
	if err != nil {
		return nil, err
	}
	if req.Reference == "" || req.Amount <= 0 || len(req.Currency) != 3 {
		return nil, fmt.Errorf("testplugin init payment: bad request (reference %q, amount %d, currency %q)", req.Reference, req.Amount, req.Currency)
	}
	seq, err := host.NextSequence(ctx, "transaction")
	if err != nil {
		return nil, fmt.Errorf("testplugin init payment %s: %w", req.Reference, err)
	}
	rec, _ := json.Marshal(record{Reference: req.Reference, Amount: req.Amount, Currency: req.Currency, Outcome: sdk.OutcomePending})
	if _, err := host.StatePut(ctx, stateKey(req.Reference), rec, 0); err != nil {
		return nil, fmt.Errorf("testplugin init payment %s: %w", req.Reference, err)
	}
	data := EncodeData(map[string]string{
		"merchant": s.Merchant, "reference": req.Reference, "amount": strconv.FormatInt(req.Amount, 10),
		"currency": req.Currency, "transaction": strconv.FormatInt(seq, 10), "automaticUrl": req.AutomaticURL,
	})
	return &sdk.PaymentInit{
		Reference: req.Reference, Merchant: s.Merchant, RedirectURL: s.PaymentURL, Method: "POST",
		Fields: map[string]string{"Data": data, "Seal": Seal(s.Secret, data)},
		Raw:    map[string]string{"transaction": strconv.FormatInt(seq, 10)},
	}, nil
}

// outcomeOf maps the test provider's response codes.
func outcomeOf(code string) (sdk.Outcome, bool, string) {
	switch code {
	case "00":
		return sdk.OutcomeAccepted, false, "authorised"
	case "05":
		return sdk.OutcomeRefused, false, "refused by the issuer"
	case "17":
		return sdk.OutcomeCancelled, false, "cancelled by the customer"
	case "60":
		return sdk.OutcomePending, true, "pending, ask again later"
	}
	return sdk.OutcomeFailed, false, "unknown response code " + code
}

// VerifyNotification implements sdk.PaymentGateway: the body is a form with
// Data and Seal; a bad seal, an unknown merchant or a malformed body is a
// *sdk.RejectError.
func (g *Gateway) VerifyNotification(ctx context.Context, n sdk.Notification) (*sdk.PaymentResult, error) {
	g.misbehave("VerifyNotification", true)
	s, host, err := g.current()
	if err != nil {
		return nil, err
	}
	if len(n.Body) > MaxNotificationBody {
		return nil, sdk.Reject("oversized", "body of %d bytes exceeds %d", len(n.Body), MaxNotificationBody)
	}
	form, err := url.ParseQuery(string(n.Body))
	if err != nil {
		return nil, sdk.Reject("malformed", "body is not a form: %v", err)
	}
	data, seal := form.Get("Data"), form.Get("Seal")
	if data == "" || seal == "" {
		return nil, sdk.Reject("malformed", "Data or Seal missing")
	}
	want := Seal(s.Secret, data)
	if !hmac.Equal([]byte(strings.ToLower(seal)), []byte(want)) {
		return nil, sdk.Reject("bad_seal", "seal does not match")
	}
	fields, err := decodeData(data)
	if err != nil {
		return nil, sdk.Reject("malformed", "Data: %v", err)
	}
	if fields["merchant"] != s.Merchant {
		return nil, sdk.Reject("unknown_merchant", "merchant %q", fields["merchant"])
	}
	amount, err := strconv.ParseInt(fields["amount"], 10, 64)
	if err != nil || amount < 0 {
		return nil, sdk.Reject("malformed", "amount %q", fields["amount"])
	}
	outcome, later, expl := outcomeOf(fields["responseCode"])
	res := &sdk.PaymentResult{
		Merchant: s.Merchant, Reference: fields["reference"], Amount: amount, Currency: fields["currency"],
		Outcome: outcome, ResponseCode: fields["responseCode"], AskLater: later, Explanation: expl,
		AuthorisationID: fields["authorisationId"], KeyVersion: "1", Fields: fields,
	}
	// Remember the outcome for QueryTransaction (compare-and-set).
	old, ver, err := host.StateGet(ctx, stateKey(res.Reference))
	if err != nil {
		return nil, fmt.Errorf("testplugin verify %s: %w", res.Reference, err)
	}
	var rec record
	if ver != 0 {
		if err := json.Unmarshal(old, &rec); err != nil {
			return nil, fmt.Errorf("testplugin verify %s: stored record: %w", res.Reference, err)
		}
	}
	rec.Reference, rec.Amount, rec.Currency, rec.Outcome, rec.Code = res.Reference, res.Amount, res.Currency, res.Outcome, res.ResponseCode
	b, _ := json.Marshal(rec)
	if _, err := host.StatePut(ctx, stateKey(res.Reference), b, ver); err != nil {
		return nil, fmt.Errorf("testplugin verify %s: %w", res.Reference, err)
	}
	return res, nil
}

// QueryTransaction implements sdk.PaymentGateway from the Host state.
func (g *Gateway) QueryTransaction(ctx context.Context, q sdk.TransactionQuery) (*sdk.PaymentResult, error) {
	g.misbehave("QueryTransaction", true)
	s, host, err := g.current()
	if err != nil {
		return nil, err
	}
	if s.ProviderURL != "" {
		if err := askProvider(ctx, s.ProviderURL); err != nil {
			return nil, fmt.Errorf("testplugin query %s: %w", q.Reference, err)
		}
	}
	b, ver, err := host.StateGet(ctx, stateKey(q.Reference))
	if err != nil {
		return nil, fmt.Errorf("testplugin query %s: %w", q.Reference, err)
	}
	if ver == 0 {
		return &sdk.PaymentResult{Merchant: s.Merchant, Reference: q.Reference, Outcome: sdk.OutcomeNotFound}, nil
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("testplugin query %s: stored record: %w", q.Reference, err)
	}
	_, later, expl := outcomeOf(rec.Code)
	return &sdk.PaymentResult{
		Merchant: s.Merchant, Reference: rec.Reference, Amount: rec.Amount, Currency: rec.Currency,
		Outcome: rec.Outcome, ResponseCode: rec.Code, AskLater: later || rec.Outcome == sdk.OutcomePending, Explanation: expl,
	}, nil
}

// RunJob implements sdk.JobRunner; the only job is "reconcile".
func (g *Gateway) RunJob(ctx context.Context, job string, params map[string]string) (string, error) {
	g.misbehave("RunJob", false)
	_, host, err := g.current()
	if err != nil {
		return "", err
	}
	if job != "reconcile" {
		return "", fmt.Errorf("testplugin: unknown job %q", job)
	}
	n, err := host.NextSequence(ctx, "reconcile-runs")
	if err != nil {
		return "", fmt.Errorf("testplugin reconcile: %w", err)
	}
	return fmt.Sprintf("reconcile run %d", n), nil
}
