// Package sim is a Worldline Direct simulator for tests and demos: the API
// endpoints acquit calls (CreateHostedCheckout, GetHostedCheckout,
// GetPayment(Details), and RefundPayment to make later operations happen),
// each checked for a GCS v1HMAC signature and a Date within the allowed
// skew as the platform does (401 otherwise); a hosted payment page; and
// signed webhooks (X-GCS-Signature, X-GCS-KeyId) with injectable faults:
// drops, duplicates, reordering and delays.
package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acquit/acquit/plugins/worldline/direct"
)

// Merchant is one account the simulator knows.
type Merchant struct {
	ID string // PSPID
	// APIKeys maps API key id to secret.
	APIKeys map[string]string
	// WebhookKeyID and WebhookSecret sign the webhooks.
	WebhookKeyID, WebhookSecret string
	// WebhookURL receives the webhooks ("" = none sent).
	WebhookURL string
}

// Faults are the injectable webhook faults.
type Faults struct {
	Drop      float64       `json:"drop"`      // each webhook never sent
	Duplicate float64       `json:"duplicate"` // each webhook sent twice (same event id and body)
	Reorder   float64       `json:"reorder"`   // a payment's webhooks sent in reverse order
	MaxDelay  time.Duration `json:"max_delay"` // each webhook delayed by up to this
	// Uncertain is the share of accepted payments that first report 92
	// (payment uncertain) before 9 (captured).
	Uncertain float64 `json:"uncertain"`
}

// Config configures a simulator.
type Config struct {
	Merchants []Merchant
	Seed      uint64
	Faults    Faults
	// HTTPClient sends the webhooks (nil: 10s timeout client).
	HTTPClient *http.Client
	// MaxSkew is the Date skew accepted on API requests (default 5m).
	MaxSkew time.Duration
	// ExpireAfter, when set, replaces the sessionTimeout of every checkout
	// (tests): a checkout without a payment is unknown (404) after it.
	ExpireAfter time.Duration
	// Attempts is how many times a webhook is tried when acquit does not
	// answer 2xx (default 1).
	Attempts int
	// Listen is the address (default 127.0.0.1:0).
	Listen string
	Now    func() time.Time
}

// Stats counts what happened.
type Stats struct {
	Checkouts, Paid, Refunds                   int64
	WebhooksPlanned, Sent, Dropped, Duplicated int64
	Reordered, Delivered2xx, Failed            int64
	AuthRefused                                int64
}

type payment struct {
	id, base  string
	opSeq     int
	status    string
	code      int
	category  string
	amount    int64
	currency  string
	ops       []direct.Operation
	authCode  string
	paymentAt time.Time
}

type checkout struct {
	id, mac, ref, merchant string
	returnURL              string
	amount                 int64
	currency               string
	created                time.Time
	expires                time.Time
	authMode               string
	cancelled              bool
	pay                    *payment
	outcome                string // acquit's expected outcome once chosen
}

// Sim is a running simulator.
type Sim struct {
	cfg   Config
	srv   *http.Server
	ln    net.Listener
	base  string
	httpc *http.Client

	mu        sync.Mutex
	merchants map[string]*Merchant
	faults    Faults
	rng       *mrand.Rand
	checkouts map[string]*checkout
	byRef     map[string]*checkout
	byPayment map[string]*checkout
	idem      map[string]string // merchant|idempotence key -> checkout id
	delivered map[string]int    // reference -> webhooks answered 2xx
	nextID    int64
	stats     Stats
	inflight  sync.WaitGroup
	inflightN atomic.Int64
}

// New builds a simulator; Start serves it.
func New(cfg Config) *Sim {
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 5 * time.Minute
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sim{cfg: cfg, merchants: map[string]*Merchant{}, faults: cfg.Faults,
		rng:       mrand.New(mrand.NewPCG(cfg.Seed, 0x57a1)),
		checkouts: map[string]*checkout{}, byRef: map[string]*checkout{}, byPayment: map[string]*checkout{},
		idem: map[string]string{}, delivered: map[string]int{}, nextID: 3066019730}
	for i := range cfg.Merchants {
		m := cfg.Merchants[i]
		s.merchants[m.ID] = &m
	}
	s.httpc = cfg.HTTPClient
	if s.httpc == nil {
		s.httpc = &http.Client{Timeout: 10 * time.Second}
	}
	return s
}

// Start listens and serves.
func (s *Sim) Start() error {
	addr := s.cfg.Listen
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("worldline sim: listen: %w", err)
	}
	s.ln = ln
	s.base = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// URL is the simulator's base URL (the plugin's api_url).
func (s *Sim) URL() string { return s.base }

// Close stops serving.
func (s *Sim) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// SetWebhookURL sets where a merchant's webhooks go.
func (s *Sim) SetWebhookURL(merchantID, u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.merchants[merchantID]; ok {
		m.WebhookURL = u
	}
}

// SetFaults replaces the faults.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Stats returns the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Decided maps each merchantReference whose customer chose on the hosted
// page to the outcome acquit must record: accepted, refused, cancelled,
// or unknown (left uncertain for good). References not listed were never
// paid: acquit must expire them.
func (s *Sim) Decided() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for ref, c := range s.byRef {
		if c.outcome != "" {
			out[ref] = c.outcome
		}
	}
	return out
}

// Delivered maps each merchantReference to the webhooks acquit answered
// with 2xx.
func (s *Sim) Delivered() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.delivered))
	for k, v := range s.delivered {
		out[k] = v
	}
	return out
}

// PaymentID returns the payment id created for a merchantReference.
func (s *Sim) PaymentID(ref string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byRef[ref]
	if !ok || c.pay == nil {
		return "", false
	}
	return c.pay.id, true
}

// WaitDeliveries waits until no webhook is being sent or waiting.
func (s *Sim) WaitDeliveries(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("worldline sim: %d webhooks still in flight: %w", s.inflightN.Load(), ctx.Err())
	}
}

// Handler serves the API, the hosted page and the admin routes.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/{merchant}/hostedcheckouts", s.api(s.createCheckout))
	mux.HandleFunc("GET /v2/{merchant}/hostedcheckouts/{id}", s.api(s.getCheckout))
	mux.HandleFunc("GET /v2/{merchant}/payments/{id}", s.api(s.getPayment))
	mux.HandleFunc("GET /v2/{merchant}/payments/{id}/details", s.api(s.getPayment))
	mux.HandleFunc("POST /v2/{merchant}/payments/{id}/refund", s.api(s.refund))
	mux.HandleFunc("GET /hostedcheckout/{id}", s.page)
	mux.HandleFunc("POST /hostedcheckout/{id}", s.choose)
	mux.HandleFunc("GET /sim/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Stats()) })
	mux.HandleFunc("GET /sim/decided", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Decided()) })
	mux.HandleFunc("GET /sim/faults", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		f := s.faults
		s.mu.Unlock()
		writeJSON(w, 200, f)
	})
	mux.HandleFunc("PUT /sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.SetFaults(f)
		writeJSON(w, 200, f)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, id, msg string) {
	writeJSON(w, status, direct.ErrorResponse{ErrorID: randHex(16), Errors: []direct.APIError{{
		Code: code, ID: id, Category: "DIRECT_PLATFORM_ERROR", HTTPStatusCode: status, Message: msg}}})
}

// api wraps an endpoint with the platform's request authentication: the
// key must be one of the merchant's, the Date within MaxSkew, the v1HMAC
// signature right.
func (s *Sim) api(h func(http.ResponseWriter, *http.Request, *Merchant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		m, ok := s.merchants[r.PathValue("merchant")]
		s.mu.Unlock()
		if !ok {
			s.mu.Lock()
			s.stats.AuthRefused++
			s.mu.Unlock()
			apiError(w, http.StatusForbidden, "9007", "ACCESS_TO_MERCHANT_NOT_ALLOWED", "unknown merchant")
			return
		}
		if _, err := direct.VerifyRequest(r, func(k string) (string, bool) { v, ok := m.APIKeys[k]; return v, ok }, s.cfg.Now(), s.cfg.MaxSkew); err != nil {
			s.mu.Lock()
			s.stats.AuthRefused++
			s.mu.Unlock()
			apiError(w, http.StatusUnauthorized, "9002", "MISSING_OR_INVALID_AUTHORIZATION", err.Error())
			return
		}
		h(w, r, m)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Sim) createCheckout(w http.ResponseWriter, r *http.Request, m *Merchant) {
	var req direct.CreateHostedCheckoutRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "1099", "INVALID_JSON", err.Error())
		return
	}
	o := req.Order
	switch {
	case o.AmountOfMoney.Amount <= 0:
		apiError(w, 400, "1000", "PARAMETER_NOT_FOUND_IN_REQUEST", "order.amountOfMoney.amount")
		return
	case len(o.AmountOfMoney.CurrencyCode) != 3:
		apiError(w, 400, "1000", "PARAMETER_NOT_FOUND_IN_REQUEST", "order.amountOfMoney.currencyCode")
		return
	case req.HostedCheckoutSpecificInput.ReturnURL == "":
		apiError(w, 400, "1000", "PARAMETER_NOT_FOUND_IN_REQUEST", "hostedCheckoutSpecificInput.returnUrl")
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := r.Header.Get("X-GCS-Idempotence-Key"); k != "" {
		if id, ok := s.idem[m.ID+"|"+k]; ok {
			c := s.checkouts[id]
			w.Header().Set("X-GCS-Idempotence-Request-Timestamp", strconv.FormatInt(c.created.UnixMilli(), 10))
			writeJSON(w, http.StatusCreated, s.created(c))
			return
		}
	}
	s.nextID++
	c := &checkout{id: strconv.FormatInt(s.nextID, 10), mac: randHex(18), ref: o.References.MerchantReference, merchant: m.ID,
		returnURL: req.HostedCheckoutSpecificInput.ReturnURL, amount: o.AmountOfMoney.Amount, currency: o.AmountOfMoney.CurrencyCode,
		created: now, authMode: "SALE"}
	if req.CardPaymentMethodSpecificInput != nil && req.CardPaymentMethodSpecificInput.AuthorizationMode != "" {
		c.authMode = req.CardPaymentMethodSpecificInput.AuthorizationMode
	}
	timeout := time.Duration(req.HostedCheckoutSpecificInput.SessionTimeout) * time.Minute
	if timeout <= 0 {
		timeout = 180 * time.Minute
	}
	if s.cfg.ExpireAfter > 0 {
		timeout = s.cfg.ExpireAfter
	}
	c.expires = now.Add(timeout)
	s.checkouts[c.id] = c
	if c.ref != "" {
		s.byRef[c.ref] = c
	}
	if k := r.Header.Get("X-GCS-Idempotence-Key"); k != "" {
		s.idem[m.ID+"|"+k] = c.id
	}
	s.stats.Checkouts++
	writeJSON(w, http.StatusCreated, s.created(c))
}

func (s *Sim) created(c *checkout) direct.CreateHostedCheckoutResponse {
	return direct.CreateHostedCheckoutResponse{RETURNMAC: c.mac, HostedCheckoutID: c.id, MerchantReference: c.ref,
		PartialRedirectURL: strings.TrimPrefix(s.base, "http://") + "/hostedcheckout/" + c.id,
		RedirectURL:        s.base + "/hostedcheckout/" + c.id}
}

// paymentJSON renders a payment as the API shows it (lock held).
func (c *checkout) paymentJSON() *direct.Payment {
	p := c.pay
	return &direct.Payment{ID: p.id, Status: p.status,
		StatusOutput: &direct.StatusOutput{StatusCode: p.code, StatusCategory: p.category, IsAuthorized: p.code == 5 || p.code == 9 || p.code == 91},
		PaymentOutput: &direct.PaymentOutput{AmountOfMoney: &direct.AmountOfMoney{Amount: p.amount, CurrencyCode: p.currency},
			References: &direct.References{MerchantReference: c.ref}, PaymentMethod: "card",
			CardPaymentMethodSpecificOutput: &direct.CardOutput{PaymentProductID: 1, AuthorisationCode: p.authCode}},
		HostedCheckoutSpecificOutput: &direct.HostedCheckoutSpecificOutput{HostedCheckoutID: c.id}}
}

func (s *Sim) getCheckout(w http.ResponseWriter, r *http.Request, m *Merchant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.checkouts[r.PathValue("id")]
	if !ok || c.merchant != m.ID || (c.pay == nil && !c.cancelled && s.cfg.Now().After(c.expires)) {
		apiError(w, http.StatusNotFound, "1002", "UNKNOWN_HOSTED_CHECKOUT_ID", "hosted checkout not found")
		return
	}
	resp := direct.GetHostedCheckoutResponse{Status: direct.CheckoutInProgress}
	switch {
	case c.cancelled:
		resp.Status = direct.CheckoutCancelledByConsumer
	case c.pay != nil:
		resp.Status = direct.CheckoutPaymentCreated
		resp.CreatedPaymentOutput = &direct.CreatedPaymentOutput{Payment: c.paymentJSON(), PaymentStatusCategory: c.pay.category}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Sim) getPayment(w http.ResponseWriter, r *http.Request, m *Merchant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byPayment[r.PathValue("id")]
	if !ok || c.merchant != m.ID {
		apiError(w, http.StatusNotFound, "1003", "UNKNOWN_PAYMENT_ID", "payment not found")
		return
	}
	d := direct.PaymentDetails{Payment: *c.paymentJSON(), Operations: append([]direct.Operation(nil), c.pay.ops...)}
	d.ID = r.PathValue("id")
	writeJSON(w, http.StatusOK, d)
}

func (s *Sim) refund(w http.ResponseWriter, r *http.Request, m *Merchant) {
	s.mu.Lock()
	c, ok := s.byPayment[r.PathValue("id")]
	if !ok || c.merchant != m.ID {
		s.mu.Unlock()
		apiError(w, http.StatusNotFound, "1003", "UNKNOWN_PAYMENT_ID", "payment not found")
		return
	}
	p := c.pay
	if p.code != 9 && p.code != 8 {
		s.mu.Unlock()
		apiError(w, http.StatusConflict, "300450", "ACTION_NOT_ALLOWED_ON_TARGET", "payment not captured")
		return
	}
	p.opSeq++
	opID := p.base + "_" + strconv.Itoa(p.opSeq)
	p.status, p.code, p.category = "REFUNDED", 8, "REFUNDED"
	p.ops = append(p.ops, direct.Operation{ID: opID, Status: "REFUNDED", StatusOutput: &direct.StatusOutput{StatusCode: 8, StatusCategory: "REFUNDED"},
		AmountOfMoney: &direct.AmountOfMoney{Amount: p.amount, CurrencyCode: p.currency}})
	s.stats.Refunds++
	pj := c.paymentJSON()
	pj.ID = opID
	evs := []event{{typ: "payment.refunded", pay: pj}}
	s.scheduleLocked(c, m, evs)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"id": opID, "status": "REFUNDED", "statusOutput": pj.StatusOutput})
}

var pageTmpl = template.Must(template.New("p").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Worldline simulator</title></head><body>
<p>Pay {{.Amount}} {{.Currency}} for {{.Ref}}</p>
<form method="POST" action="/hostedcheckout/{{.ID}}">
<button name="outcome" value="accepted">Pay</button>
<button name="outcome" value="refused">Card refused</button>
<button name="outcome" value="uncertain">Acquirer does not answer</button>
<button name="outcome" value="cancelled">Cancel</button>
</form></body></html>
`))

func (s *Sim) page(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c, ok := s.checkouts[r.PathValue("id")]
	var data struct {
		ID, Ref, Currency string
		Amount            int64
	}
	if ok {
		data.ID, data.Ref, data.Currency, data.Amount = c.id, c.ref, c.currency, c.amount
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTmpl.Execute(w, data)
}

type event struct {
	typ string
	pay *direct.Payment
}

// choose is the customer's choice on the hosted page; the answer is a 303
// to the returnUrl with hostedCheckoutId and RETURNMAC.
func (s *Sim) choose(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	outcome := r.PostForm.Get("outcome")
	s.mu.Lock()
	c, ok := s.checkouts[r.PathValue("id")]
	if !ok {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	if c.pay != nil || c.cancelled {
		s.mu.Unlock()
		http.Error(w, "already paid", http.StatusConflict)
		return
	}
	if s.cfg.Now().After(c.expires) {
		s.mu.Unlock()
		http.Error(w, "session expired", http.StatusGone)
		return
	}
	m := s.merchants[c.merchant]
	var evs []event
	if outcome == "cancelled" {
		c.cancelled, c.outcome = true, "cancelled"
	} else {
		s.nextID++
		base := strconv.FormatInt(s.nextID*10+7, 10)
		p := &payment{base: base, id: base + "_0", amount: c.amount, currency: c.currency, paymentAt: s.cfg.Now()}
		c.pay = p
		s.byPayment[p.id] = c
		s.stats.Paid++
		set := func(status string, code int, cat string) *direct.Payment {
			p.status, p.code, p.category = status, code, cat
			return c.paymentJSON()
		}
		switch outcome {
		case "accepted":
			p.authCode = strconv.Itoa(100000 + s.rng.IntN(899999))
			c.outcome = "accepted"
			if s.rng.Float64() < s.faults.Uncertain {
				evs = append(evs, event{"payment.capture_requested", set("CAPTURE_REQUESTED", 92, "PENDING_CONNECT_OR_3RD_PARTY")})
			}
			if c.authMode == "SALE" {
				evs = append(evs, event{"payment.capture_requested", set("CAPTURE_REQUESTED", 91, "PENDING_CONNECT_OR_3RD_PARTY")})
				evs = append(evs, event{"payment.captured", set("CAPTURED", 9, "COMPLETED")})
			} else {
				evs = append(evs, event{"payment.pending_capture", set("PENDING_CAPTURE", 5, "PENDING_MERCHANT")})
			}
		case "uncertain":
			c.outcome = "unknown"
			evs = append(evs, event{"payment.capture_requested", set("CAPTURE_REQUESTED", 92, "PENDING_CONNECT_OR_3RD_PARTY")})
		default:
			c.outcome = "refused"
			evs = append(evs, event{"payment.rejected", set("REJECTED", 2, "UNSUCCESSFUL")})
		}
	}
	s.scheduleLocked(c, m, evs)
	target := c.returnURL
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	target += sep + "hostedCheckoutId=" + url.QueryEscape(c.id) + "&RETURNMAC=" + url.QueryEscape(c.mac)
	s.mu.Unlock()
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// scheduleLocked sends a payment's webhooks with the faults (lock held).
func (s *Sim) scheduleLocked(c *checkout, m *Merchant, evs []event) {
	if m == nil || m.WebhookURL == "" || len(evs) == 0 {
		return
	}
	f := s.faults
	type delivery struct {
		body  []byte
		delay time.Duration
		times int
	}
	var ds []delivery
	for _, ev := range evs {
		s.stats.WebhooksPlanned++
		body, _ := json.Marshal(direct.WebhookEvent{APIVersion: "v1", ID: uuid(s.rng), Created: s.cfg.Now().Format("2006-01-02T15:04:05.000-0700"),
			MerchantID: m.ID, Type: ev.typ, Payment: ev.pay})
		if s.rng.Float64() < f.Drop {
			s.stats.Dropped++
			continue
		}
		d := delivery{body: body, times: 1}
		if f.MaxDelay > 0 {
			d.delay = time.Duration(s.rng.Int64N(int64(f.MaxDelay)))
		}
		if s.rng.Float64() < f.Duplicate {
			d.times = 2
			s.stats.Duplicated++
		}
		ds = append(ds, d)
	}
	if len(ds) > 1 && s.rng.Float64() < f.Reorder {
		for i, j := 0, len(ds)-1; i < j; i, j = i+1, j-1 {
			ds[i], ds[j] = ds[j], ds[i]
		}
		s.stats.Reordered++
	}
	url, keyID, secret, ref := m.WebhookURL, m.WebhookKeyID, m.WebhookSecret, c.ref
	s.inflight.Add(1)
	s.inflightN.Add(1)
	go func() {
		defer s.inflightN.Add(-1)
		defer s.inflight.Done()
		for _, d := range ds {
			if d.delay > 0 {
				time.Sleep(d.delay)
			}
			for k := 0; k < d.times; k++ {
				s.send(url, keyID, secret, ref, d.body)
			}
		}
	}()
}

func (s *Sim) send(u, keyID, secret, ref string, body []byte) {
	for attempt := 0; attempt < s.cfg.Attempts; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
		}
		req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(direct.HeaderSignature, direct.WebhookSignature(secret, body))
		req.Header.Set(direct.HeaderKeyID, keyID)
		s.mu.Lock()
		s.stats.Sent++
		s.mu.Unlock()
		resp, err := s.httpc.Do(req)
		ok := err == nil && resp.StatusCode/100 == 2
		if resp != nil {
			resp.Body.Close()
		}
		s.mu.Lock()
		if ok {
			s.stats.Delivered2xx++
			s.delivered[ref]++
		} else {
			s.stats.Failed++
		}
		s.mu.Unlock()
		if ok {
			return
		}
	}
}

func uuid(r *mrand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ErrNoReturn is returned by Browser.Pay when the page gave no way back.
var ErrNoReturn = errors.New("hosted page gave no return URL")

// Browser plays a customer on the hosted page.
type Browser struct {
	Client *http.Client // nil: a 30s client that does not follow redirects
}

func (b *Browser) client() *http.Client {
	if b.Client != nil {
		return b.Client
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Pay opens the hosted page at redirectURL and chooses outcome (accepted,
// refused, uncertain, cancelled). It returns the URL the customer's
// browser is sent back to (returnUrl with hostedCheckoutId and RETURNMAC),
// without following it.
func (b *Browser) Pay(ctx context.Context, redirectURL, outcome string) (string, error) {
	hc := b.client()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, redirectURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("open hosted page: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("open hosted page: HTTP %d", resp.StatusCode)
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, redirectURL, strings.NewReader(url.Values{"outcome": {outcome}}.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	nc := *hc
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = nc.Do(req)
	if err != nil {
		return "", fmt.Errorf("choose on hosted page: %w", err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc == "" {
		return "", fmt.Errorf("choose on hosted page: HTTP %d: %w", resp.StatusCode, ErrNoReturn)
	}
	return loc, nil
}

// Return follows the return URL as the customer's browser does (GET,
// redirects not followed). The caller closes the body.
func (b *Browser) Return(ctx context.Context, returnURL string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, returnURL, nil)
	if err != nil {
		return nil, err
	}
	nc := *b.client()
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return nc.Do(req)
}
