// Package sim is a Worldline Sips 2.0 simulator for tests and demos, on
// loopback: Paypage POST (/paymentInit) and Paypage JSON
// (/rs-services/v2/paymentInit) checking seal, required fields and
// interface version and refusing what Sips refuses with its codes; a
// payment page a test drives without a browser (Browser) and a person can
// use; the automatic response POSTed to automaticResponseUrl and the
// manual response as an auto-submitting form to normalReturnUrl; Office
// getTransactionData answering from the simulator's own record (25 when it
// never saw the transaction); and faults set per run.
//
// Behaviour choices, documented:
//   - Sips sends the automatic response once; a failure (connection error,
//     timeout, non-2xx status) is only recorded, visible in Office as
//     automaticResponseStatus=FAILED. The simulator does the same by
//     default; Config.AutomaticAttempts makes it retry (RetryDelay apart)
//     for tests of a receiver answering 500.
//   - A refused request gets an HTML error page with HTTP 400 and the Sips
//     code in the X-Sips-Response-Code header; no response is sent to the
//     shop, as Sips does for a request it cannot trust.
//   - A test card's last two digits pick the responseCode, as in Sips'
//     simulation environment; 03, 12, 30, 34 and 40 chosen this way create
//     no transaction (Office answers 25), like a request Sips refuses.
//   - Faults.OfficeErrors makes Office answer a business error (sealed
//     responseCode 03, 12, 30, 34, 40...) for chosen transactions only, as
//     Sips does for a query it refuses; the others are answered normally.
//   - Decided() holds, for every transaction the simulator received, the
//     outcome the simulator knows to be true: the decided one, or
//     "expired" while the customer has not paid (Office answers 25 for it,
//     which acquit turns into expired).
package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/plugins/atos/sips"
	"github.com/acquit/acquit/sdk"
)

// Merchant is a merchant account known to the simulator.
type Merchant struct {
	ID string
	// Keys maps keyVersion to secret key.
	Keys map[string]string
	// SealAlgorithm is used when a request does not say (default
	// HMAC-SHA-256).
	SealAlgorithm sips.SealAlgorithm
}

// Faults are the misbehaviours of one run. Shares are 0..1, drawn from the
// seeded generator in the order payments are decided.
type Faults struct {
	// DropAutomatic is the share of automatic responses never sent.
	DropAutomatic float64
	// AutomaticDelay sends automatic responses late.
	AutomaticDelay time.Duration
	// AutomaticTwice is the share of automatic responses sent twice.
	AutomaticTwice float64
	// AutomaticAfterManual holds each automatic response until the
	// customer's browser has posted the manual one (Browser.Return), or
	// Config.ManualWait has passed.
	AutomaticAfterManual bool
	// CustomerNeverReturns is the share of payments whose result page has
	// no form back to the shop (the customer closed the browser).
	CustomerNeverReturns float64
	// OfficeDelay makes Office answer late.
	OfficeDelay time.Duration
	// OfficeDown makes Office answer HTTP 503.
	OfficeDown bool
	// OfficeErrors makes Office answer a business error for one
	// transaction: transaction reference (or s10 id) -> the responseCode
	// answered (sealed), e.g. "03", "12", "30", "34", "40"; the other
	// transactions are answered normally.
	OfficeErrors map[string]string
}

// Config configures a simulator.
type Config struct {
	// Listen is the address (default 127.0.0.1:0).
	Listen    string
	Merchants []Merchant
	// Seed seeds the fault generator (default 1).
	Seed   uint64
	Faults Faults
	// AutomaticAttempts is how many times an automatic response is tried
	// (default 1, as Sips).
	AutomaticAttempts int
	// RetryDelay separates attempts (default 100ms).
	RetryDelay time.Duration
	// ManualWait bounds AutomaticAfterManual's wait (default 10s).
	ManualWait time.Duration
	// HTTPClient posts automatic responses (default: 10s timeout).
	HTTPClient *http.Client
	// Logger logs what the simulator does (default: discard).
	Logger *zerolog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Automatic response states, as Office reports them.
const (
	AutoUndefined = "UNDEFINED" // no automaticResponseUrl
	AutoPending   = "PENDING"   // not sent yet
	AutoSent      = "SENT"
	AutoFailed    = "FAILED"
)

// Transaction is the simulator's record of one payment.
type Transaction struct {
	ID                   string
	MerchantID           string
	KeyVersion           string
	SealAlgorithm        sips.SealAlgorithm
	TransactionReference string
	S10TransactionID     string
	S10TransactionIDDate string
	Amount               int64
	CurrencyCode         string
	AutomaticURL         string
	NormalReturnURL      string
	CaptureMode          string
	CaptureDay           string
	Mode                 string // post or json
	ResponseEncoding     string
	Echo                 map[string]string // request fields echoed in responses
	CreatedAt            time.Time

	Decided              bool
	ResponseCode         string
	AcquirerResponseCode string
	AuthorisationID      string
	Status               string // Office transactionStatus, "" = no transaction at Sips
	Outcome              sdk.Outcome
	DecidedAt            time.Time

	AutomaticStatus   string
	AutomaticAttempts int
	AutomaticDropped  bool
	AutomaticTwice    bool
	NeverReturns      bool
	ManualReturned    bool
}

// Reference returns the key of the transaction in Decided.
func (t *Transaction) Reference() string {
	if t.TransactionReference != "" {
		return t.TransactionReference
	}
	return t.S10TransactionID
}

// Stats counts what the simulator did.
type Stats struct {
	Initialised       int
	Refused           int // requests refused (error page)
	Decided           int
	AutomaticSent     int // deliveries answered 2xx (a twice-sent one counts twice)
	AutomaticFailed   int // deliveries that failed (error or non-2xx)
	AutomaticDropped  int
	ManualForms       int
	ManualNone        int
	ManualReturned    int
	OfficeQueries     int
	OfficeNotFound    int
	OfficeErrors      int // business errors answered because of Faults.OfficeErrors
	OfficeUnavailable int
}

// Sim is a running (or startable) simulator.
type Sim struct {
	cfg  Config
	log  zerolog.Logger
	http *http.Client

	mu       sync.Mutex
	faults   Faults
	rng      *mrand.Rand
	txs      map[string]*Transaction // by id
	byRef    map[string]*Transaction // merchantId|ref|date
	byToken  map[string]*Transaction // JSON redirectionData
	returned map[string]chan struct{}
	stats    Stats

	srv      *http.Server
	ln       net.Listener
	base     string
	ctx      context.Context
	cancel   context.CancelFunc
	deliver  sync.WaitGroup
	merchant map[string]Merchant
}

// New builds a simulator; Start runs it.
func New(cfg Config) *Sim {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.AutomaticAttempts <= 0 {
		cfg.AutomaticAttempts = 1
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 100 * time.Millisecond
	}
	if cfg.ManualWait <= 0 {
		cfg.ManualWait = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sim{
		cfg:      cfg,
		log:      zerolog.Nop(),
		http:     cfg.HTTPClient,
		faults:   cfg.Faults,
		rng:      mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)),
		txs:      map[string]*Transaction{},
		byRef:    map[string]*Transaction{},
		byToken:  map[string]*Transaction{},
		returned: map[string]chan struct{}{},
		merchant: map[string]Merchant{},
	}
	if cfg.Logger != nil {
		s.log = cfg.Logger.With().Str("component", "atos-sim").Logger()
	}
	if s.http == nil {
		s.http = &http.Client{Timeout: 10 * time.Second}
	}
	for _, m := range cfg.Merchants {
		if m.SealAlgorithm == "" {
			m.SealAlgorithm = sips.HMACSHA256
		}
		s.merchant[m.ID] = m
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Start listens and serves in the background.
func (s *Sim) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("atos sim: listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.base = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	s.log.Info().Str("url", s.base).Msg("atos simulator listening")
	return nil
}

// URL is the simulator's base URL (Paypage and Office base URL alike).
func (s *Sim) URL() string { return s.base }

// Close stops the server and the pending automatic responses.
func (s *Sim) Close() error {
	s.cancel()
	var err error
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.srv.Shutdown(ctx)
	}
	s.deliver.Wait()
	return err
}

// WaitDeliveries waits until every scheduled automatic response has been
// sent, dropped or has failed, or ctx is done.
func (s *Sim) WaitDeliveries(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.deliver.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetFaults replaces the faults for what happens next.
func (s *Sim) SetFaults(f Faults) {
	f.OfficeErrors = maps.Clone(f.OfficeErrors)
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Faults returns the faults in force.
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Stats returns the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Decided returns, by reference (transactionReference, or the 6-digit
// s10TransactionId: unique per day only), the outcome the simulator knows
// to be true for every transaction it received.
func (s *Sim) Decided() map[string]sdk.Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]sdk.Outcome, len(s.txs))
	for _, t := range s.txs {
		if t.Decided {
			out[t.Reference()] = t.Outcome
		} else {
			out[t.Reference()] = sdk.OutcomeExpired
		}
	}
	return out
}

// Transactions returns a copy of every transaction, oldest first.
func (s *Sim) Transactions() []Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Transaction, 0, len(s.txs))
	for _, t := range s.txs {
		c := *t
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].ID < out[j].ID
		}
		return out[i].CreatedAt.Before(out[j].CreatedAt)
	})
	return out
}

// Transaction returns a copy of one transaction by reference.
func (s *Sim) Transaction(ref string) (Transaction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.txs {
		if t.Reference() == ref {
			return *t, true
		}
	}
	return Transaction{}, false
}

// Abandon marks an undecided transaction as abandoned for good (the
// customer left); Office keeps answering 25 for it.
func (s *Sim) Abandon(ref string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.txs {
		if t.Reference() == ref && !t.Decided {
			t.Decided, t.Outcome, t.DecidedAt = true, sdk.OutcomeExpired, s.cfg.Now()
			return true
		}
	}
	return false
}

func refKey(merchantID, ref, date string) string { return merchantID + "|" + ref + "|" + date }

func newID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// requestError is a request Sips refuses with a responseCode.
type requestError struct {
	code string
	msg  string
}

func (e *requestError) Error() string { return "responseCode " + e.code + ": " + e.msg }

func refuse(code, format string, args ...any) error {
	return &requestError{code: code, msg: fmt.Sprintf(format, args...)}
}

// newTransaction validates the fields of a payment request (already
// authenticated) and records it.
func (s *Sim) newTransaction(m Merchant, keyVersion string, alg sips.SealAlgorithm, f sips.Fields, mode string) (*Transaction, error) {
	t := &Transaction{
		ID: newID(), MerchantID: m.ID, KeyVersion: keyVersion, SealAlgorithm: alg, Mode: mode,
		CreatedAt: s.cfg.Now(), AutomaticStatus: AutoUndefined, Echo: map[string]string{},
	}
	amt := f["amount"]
	if amt == "" {
		return nil, refuse("12", "amount is missing")
	}
	if n, err := strconv.ParseInt(amt, 10, 64); err != nil || n <= 0 || len(amt) > 12 {
		return nil, refuse("30", "amount %q is not a positive number of minor units", amt)
	} else {
		t.Amount = n
	}
	t.CurrencyCode = f["currencyCode"]
	if t.CurrencyCode == "" {
		return nil, refuse("12", "currencyCode is missing")
	}
	if _, ok := sips.CurrencyAlpha(t.CurrencyCode); !ok {
		return nil, refuse("30", "currencyCode %q is not supported", t.CurrencyCode)
	}
	t.NormalReturnURL = f["normalReturnUrl"]
	if t.NormalReturnURL == "" {
		return nil, refuse("12", "normalReturnUrl is missing")
	}
	if !httpURL(t.NormalReturnURL) {
		return nil, refuse("30", "normalReturnUrl is not an http(s) URL")
	}
	if u := f["automaticResponseUrl"]; u != "" {
		if !httpURL(u) {
			return nil, refuse("30", "automaticResponseUrl is not an http(s) URL")
		}
		t.AutomaticURL, t.AutomaticStatus = u, AutoPending
	}
	t.CaptureMode = f["captureMode"]
	switch t.CaptureMode {
	case "":
		t.CaptureMode = "AUTHOR_CAPTURE"
	case "AUTHOR_CAPTURE", "VALIDATION", "IMMEDIATE":
	default:
		return nil, refuse("12", "captureMode %q is not allowed", t.CaptureMode)
	}
	t.CaptureDay = f["captureDay"]
	if t.CaptureDay != "" {
		if n, err := strconv.Atoi(t.CaptureDay); err != nil || n < 0 || n > 99 {
			return nil, refuse("30", "captureDay %q is not 0..99", t.CaptureDay)
		}
	}
	switch enc := f["responseEncoding"]; enc {
	case "", "base64", "base64url":
		t.ResponseEncoding = enc
	default:
		return nil, refuse("30", "responseEncoding %q is not base64 or base64url", enc)
	}
	t.TransactionReference = f["transactionReference"]
	t.S10TransactionID = f["s10TransactionReference.s10TransactionId"]
	t.S10TransactionIDDate = f["s10TransactionReference.s10TransactionIdDate"]
	switch {
	case t.TransactionReference != "" && t.S10TransactionID != "":
		return nil, refuse("12", "both transactionReference and s10TransactionReference are set")
	case t.TransactionReference != "":
		if !alnum(t.TransactionReference, 35) {
			return nil, refuse("30", "transactionReference must be 1-35 letters or digits")
		}
	case t.S10TransactionID != "":
		if !digits(t.S10TransactionID, 6) {
			return nil, refuse("30", "s10TransactionId must be 6 digits")
		}
		if t.S10TransactionIDDate == "" {
			t.S10TransactionIDDate = t.CreatedAt.Format("20060102")
		} else if !digits(t.S10TransactionIDDate, 8) {
			return nil, refuse("30", "s10TransactionIdDate must be YYYYMMDD")
		}
	default:
		return nil, refuse("12", "transactionReference is missing")
	}
	for _, k := range []string{"orderId", "customerId", "returnContext", "statementReference", "customerLanguage"} {
		if v := f[k]; v != "" {
			t.Echo[k] = v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := refKey(m.ID, t.Reference(), t.S10TransactionIDDate)
	if _, dup := s.byRef[key]; dup {
		return nil, refuse("94", "reference %s was already used", t.Reference())
	}
	s.byRef[key] = t
	s.txs[t.ID] = t
	s.returned[t.ID] = make(chan struct{})
	s.stats.Initialised++
	return t, nil
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func alnum(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Choice is what the customer does on the payment page: an Outcome
// (accepted, refused, cancelled, 3ds_failure, pending), a CardNumber whose
// last two digits are the responseCode, or an explicit ResponseCode.
type Choice struct {
	Outcome      string
	CardNumber   string
	ResponseCode string
}

// errAlreadyDecided is returned when a payment page is used twice.
var errAlreadyDecided = errors.New("transaction already decided")

// decide applies a choice to a transaction and schedules the responses.
// It returns the manual response form (nil when the customer never
// returns).
func (s *Sim) decide(id string, c Choice) (*Transaction, *sips.PostForm, error) {
	rc, acq, holder := "", "", ""
	maskedPan := "4100##########00"
	switch {
	case c.ResponseCode != "":
		if !digits(c.ResponseCode, 2) {
			return nil, nil, fmt.Errorf("responseCode %q is not two digits", c.ResponseCode)
		}
		rc = c.ResponseCode
	case c.CardNumber != "":
		pan := strings.ReplaceAll(c.CardNumber, " ", "")
		if len(pan) < 12 || len(pan) > 19 || !digits(pan, len(pan)) {
			return nil, nil, fmt.Errorf("card number must be 12-19 digits")
		}
		rc = pan[len(pan)-2:]
		maskedPan = pan[:4] + strings.Repeat("#", len(pan)-6) + pan[len(pan)-2:]
	default:
		switch c.Outcome {
		case "accepted":
			rc = "00"
		case "refused":
			rc, acq = "05", "05"
		case "cancelled":
			rc = "17"
		case "3ds_failure":
			rc, holder = "05", "FAILURE"
		case "pending":
			rc = "60"
		default:
			return nil, nil, fmt.Errorf("unknown outcome %q (accepted, refused, cancelled, 3ds_failure, pending)", c.Outcome)
		}
	}
	if acq == "" {
		switch rc {
		case "00":
			acq = "00"
		case "02", "05", "14", "51", "54", "63", "75":
			acq = rc
		}
	}
	if holder == "" && rc != "17" {
		holder = "SUCCESS"
	}
	s.mu.Lock()
	t, ok := s.txs[id]
	if !ok {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("no transaction %s", id)
	}
	if t.Decided {
		s.mu.Unlock()
		return t, nil, errAlreadyDecided
	}
	t.Decided, t.DecidedAt = true, s.cfg.Now()
	t.ResponseCode, t.AcquirerResponseCode = rc, acq
	if rc == "00" {
		t.AuthorisationID = fmt.Sprintf("%06d", s.rng.IntN(1000000))
	}
	t.Status = statusFor(rc, t.CaptureMode)
	if t.Status == "" {
		t.Outcome = sips.Interpret(rc, acq).Outcome
	} else {
		t.Outcome = sips.InterpretStatus(t.Status, acq).Outcome
	}
	f := s.faults
	t.AutomaticDropped = s.rng.Float64() < f.DropAutomatic
	t.AutomaticTwice = s.rng.Float64() < f.AutomaticTwice
	t.NeverReturns = s.rng.Float64() < f.CustomerNeverReturns
	s.stats.Decided++
	tc := *t
	s.mu.Unlock()

	fields := responseFields(&tc, holder, maskedPan)
	m := s.merchant[tc.MerchantID]
	acc := &sips.Account{MerchantID: m.ID, Keys: m.Keys, Algorithm: tc.SealAlgorithm}
	iv := "HP_3.4"
	if tc.Mode == "json" {
		iv = "IR_WS_2.58"
	}
	form, err := sips.BuildPost(acc, tc.KeyVersion, fields, tc.ResponseEncoding, iv)
	if err != nil {
		return nil, nil, fmt.Errorf("sealing the response: %w", err)
	}
	s.log.Debug().Str("reference", tc.Reference()).Str("response_code", rc).Str("outcome", string(tc.Outcome)).
		Bool("drop", tc.AutomaticDropped).Bool("twice", tc.AutomaticTwice).Bool("never_returns", tc.NeverReturns).Msg("payment decided")
	if tc.AutomaticURL != "" {
		s.deliver.Add(1)
		go s.sendAutomatic(&tc, form, f)
	}
	s.mu.Lock()
	if tc.NeverReturns {
		s.stats.ManualNone++
	} else {
		s.stats.ManualForms++
	}
	s.mu.Unlock()
	if tc.NeverReturns {
		return &tc, nil, nil
	}
	return &tc, form, nil
}

// statusFor is the Office transactionStatus a responseCode leaves.
func statusFor(rc, captureMode string) string {
	switch rc {
	case "00":
		switch captureMode {
		case "VALIDATION":
			return "TO_VALIDATE"
		case "IMMEDIATE":
			return "CAPTURED"
		}
		return "TO_CAPTURE"
	case "60", "62":
		return "PENDING"
	case "17":
		return "ABORTED"
	case "97":
		return "EXPIRED"
	case "03", "12", "30", "34", "40":
		return ""
	}
	return "REFUSED"
}

func responseFields(t *Transaction, holder, maskedPan string) map[string]string {
	f := map[string]string{
		"amount":              strconv.FormatInt(t.Amount, 10),
		"currencyCode":        t.CurrencyCode,
		"responseCode":        t.ResponseCode,
		"transactionDateTime": t.DecidedAt.Format(time.RFC3339),
		"orderChannel":        "INTERNET",
		"captureMode":         t.CaptureMode,
	}
	if t.CaptureDay != "" {
		f["captureDay"] = t.CaptureDay
	}
	if t.TransactionReference != "" {
		f["transactionReference"] = t.TransactionReference
	} else {
		f["s10TransactionReference.s10TransactionId"] = t.S10TransactionID
		f["s10TransactionReference.s10TransactionIdDate"] = t.S10TransactionIDDate
	}
	if t.AcquirerResponseCode != "" {
		f["acquirerResponseCode"] = t.AcquirerResponseCode
	}
	if t.AuthorisationID != "" {
		f["authorisationId"] = t.AuthorisationID
	}
	if t.ResponseCode != "17" {
		f["paymentMeanBrand"] = "VISA"
		f["paymentMeanType"] = "CARD"
		f["maskedPan"] = maskedPan
	}
	if holder != "" {
		f["holderAuthentStatus"] = holder
	}
	for k, v := range t.Echo {
		f[k] = v
	}
	return f
}

// sendAutomatic delivers one automatic response according to the faults.
func (s *Sim) sendAutomatic(t *Transaction, form *sips.PostForm, f Faults) {
	defer s.deliver.Done()
	if t.AutomaticDropped {
		s.mu.Lock()
		s.txs[t.ID].AutomaticStatus = AutoFailed
		s.stats.AutomaticDropped++
		s.mu.Unlock()
		s.log.Debug().Str("reference", t.Reference()).Msg("automatic response dropped (fault)")
		return
	}
	if f.AutomaticAfterManual {
		s.mu.Lock()
		ch := s.returned[t.ID]
		s.mu.Unlock()
		wait := time.NewTimer(s.cfg.ManualWait)
		select {
		case <-ch:
		case <-wait.C:
		case <-s.ctx.Done():
			wait.Stop()
			return
		}
		wait.Stop()
	}
	if f.AutomaticDelay > 0 {
		select {
		case <-time.After(f.AutomaticDelay):
		case <-s.ctx.Done():
			return
		}
	}
	times := 1
	if t.AutomaticTwice {
		times = 2
	}
	for i := 0; i < times; i++ {
		ok := false
		for attempt := 1; attempt <= s.cfg.AutomaticAttempts && !ok; attempt++ {
			if attempt > 1 {
				select {
				case <-time.After(s.cfg.RetryDelay):
				case <-s.ctx.Done():
					return
				}
			}
			ok = s.postAutomatic(t, form)
			s.mu.Lock()
			tx := s.txs[t.ID]
			tx.AutomaticAttempts++
			if ok {
				tx.AutomaticStatus = AutoSent
				s.stats.AutomaticSent++
			} else {
				if tx.AutomaticStatus != AutoSent {
					tx.AutomaticStatus = AutoFailed
				}
				s.stats.AutomaticFailed++
			}
			s.mu.Unlock()
		}
	}
}

// postAutomatic performs one server-to-server POST.
func (s *Sim) postAutomatic(t *Transaction, form *sips.PostForm) bool {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, t.AutomaticURL, strings.NewReader(form.Values().Encode()))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "atos-sim/1 (Sips automatic response)")
	resp, err := s.http.Do(req)
	if err != nil {
		s.log.Debug().Str("reference", t.Reference()).Err(err).Msg("automatic response failed")
		return false
	}
	resp.Body.Close()
	s.log.Debug().Str("reference", t.Reference()).Int("status", resp.StatusCode).Msg("automatic response sent")
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// markReturned records that the customer's browser posted the manual
// response.
func (s *Sim) markReturned(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.txs[id]
	if !ok {
		return false
	}
	if !t.ManualReturned {
		t.ManualReturned = true
		s.stats.ManualReturned++
		close(s.returned[id])
	}
	return true
}
