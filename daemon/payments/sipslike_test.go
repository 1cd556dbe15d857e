package payments

// A Sips-like provider for the service's own tests (newEnv): a loopback
// HTTP server (paypage + office) and an in-process sdk.PaymentGateway that
// seals and verifies Sips 2.0 POST style messages (Data "k=v|k=v", Seal =
// hex HMAC-SHA-256(Data, key chosen by keyVersion)). It keeps the service's
// tests apart from the Atos plugin's rules and lets them steer the provider
// directly (office down, forged office answers, query count). The real
// Atos plugin and Sips simulator are exercised in atos_test.go and
// crash_test.go.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/acquit/acquit/sdk"
)

const (
	simMerchant = "002001000000001"
	simKeyV1    = "002001000000001_KEY1"
	simKeyV2    = "002001000000001_KEY2"
)

func seal(data string, key string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(data))
	return hex.EncodeToString(m.Sum(nil))
}

func encodeData(f map[string]string) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+f[k])
	}
	return strings.Join(parts, "|")
}

func decodeData(d string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range strings.Split(d, "|") {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("malformed Data element %q", p)
		}
		out[k] = v
	}
	return out, nil
}

// simTx is one transaction the provider knows.
type simTx struct {
	fields map[string]string
	code   string // decided responseCode, "" = on the paypage
}

// simProvider is the loopback provider.
type simProvider struct {
	srv         *httptest.Server
	keys        map[string]string
	mu          sync.Mutex
	txs         map[string]*simTx
	officeDown  atomic.Bool
	officeForge atomic.Bool // answer with a wrong seal
	queries     atomic.Int64
}

func newSimProvider(t testing.TB) *simProvider {
	p := &simProvider{keys: map[string]string{"1": simKeyV1, "2": simKeyV2}, txs: map[string]*simTx{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /paypage", p.paypage)
	mux.HandleFunc("POST /office", p.office)
	p.srv = httptest.NewUnstartedServer(mux)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.srv.Listener = l
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

func (p *simProvider) paypage(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", 400)
		return
	}
	data, s := r.PostForm.Get("Data"), r.PostForm.Get("Seal")
	f, err := decodeData(data)
	if err != nil {
		http.Error(w, "bad data", 400)
		return
	}
	key, ok := p.keys[f["keyVersion"]]
	if !ok || !hmac.Equal([]byte(seal(data, key)), []byte(s)) || f["merchantId"] != simMerchant {
		http.Error(w, "34 bad seal", 400)
		return
	}
	p.mu.Lock()
	if _, dup := p.txs[f["transactionReference"]]; dup {
		p.mu.Unlock()
		http.Error(w, "94 duplicate", 400)
		return
	}
	p.txs[f["transactionReference"]] = &simTx{fields: f}
	p.mu.Unlock()
	w.WriteHeader(200)
	_, _ = io.WriteString(w, "<html>paypage</html>")
}

// decide has the customer finish on the paypage with responseCode code and
// returns the sealed response form (what both responses carry).
func (p *simProvider) decide(t testing.TB, ref, code string) url.Values {
	t.Helper()
	p.mu.Lock()
	tx := p.txs[ref]
	if tx == nil {
		p.mu.Unlock()
		t.Fatalf("sim: no transaction %s", ref)
	}
	tx.code = code
	f := map[string]string{}
	for _, k := range []string{"amount", "currencyCode", "merchantId", "transactionReference", "orderId"} {
		f[k] = tx.fields[k]
	}
	p.mu.Unlock()
	f["responseCode"] = code
	f["acquirerResponseCode"] = code
	f["keyVersion"] = "1"
	if code == "00" {
		f["authorisationId"] = "A" + ref[len(ref)-5:]
	}
	return p.sealed(f, simKeyV1)
}

func (p *simProvider) sealed(f map[string]string, key string) url.Values {
	data := encodeData(f)
	return url.Values{"Data": {data}, "Seal": {seal(data, key)}, "InterfaceVersion": {"HP_2.20"}, "Encode": {""}}
}

func (p *simProvider) office(w http.ResponseWriter, r *http.Request) {
	p.queries.Add(1)
	if p.officeDown.Load() {
		http.Error(w, "down", 503)
		return
	}
	var q map[string]string
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
		http.Error(w, "bad json", 400)
		return
	}
	p.mu.Lock()
	tx := p.txs[q["transactionReference"]]
	out := map[string]string{"merchantId": q["merchantId"], "transactionReference": q["transactionReference"], "keyVersion": "1"}
	switch {
	case tx == nil:
		out["responseCode"] = "25"
	case tx.code == "":
		out["responseCode"] = "00"
		out["transactionStatus"] = "PENDING"
		out["amount"], out["currencyCode"] = tx.fields["amount"], tx.fields["currencyCode"]
	default:
		out["responseCode"] = "00"
		out["amount"], out["currencyCode"] = tx.fields["amount"], tx.fields["currencyCode"]
		out["acquirerResponseCode"] = tx.code
		switch tx.code {
		case "00":
			out["transactionStatus"] = "CAPTURED"
		case "17":
			out["transactionStatus"] = "ABORTED"
		default:
			out["transactionStatus"] = "REFUSED"
		}
	}
	p.mu.Unlock()
	out["seal"] = seal(encodeData(out), simKeyV1)
	if p.officeForge.Load() {
		out["seal"] = seal(encodeData(out), "not the key")
	}
	_ = json.NewEncoder(w).Encode(out)
}

// simGateway is the in-process sdk.PaymentGateway for simProvider.
type simGateway struct {
	p      *simProvider
	client *http.Client
}

var _ sdk.PaymentGateway = (*simGateway)(nil)

func (g *simGateway) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "sim", Version: "test", Kind: sdk.KindPaymentGateway}, nil
}
func (g *simGateway) Configure(context.Context, []byte, sdk.Host) error { return nil }
func (g *simGateway) Health(context.Context) error                      { return nil }

var currencies = map[string]string{"EUR": "978", "USD": "840", "GBP": "826"}

func alphaCurrency(num string) string {
	for a, n := range currencies {
		if n == num {
			return a
		}
	}
	return "?" + num
}

func (g *simGateway) InitPayment(_ context.Context, req sdk.PaymentRequest) (*sdk.PaymentInit, error) {
	num, ok := currencies[req.Currency]
	if !ok {
		return nil, fmt.Errorf("currency %s not supported", req.Currency)
	}
	f := map[string]string{
		"amount": strconv.FormatInt(req.Amount, 10), "currencyCode": num, "merchantId": simMerchant,
		"transactionReference": req.Reference, "orderId": req.OrderID, "keyVersion": "1",
		"normalReturnUrl": req.ManualURL, "automaticResponseUrl": req.AutomaticURL,
	}
	data := encodeData(f)
	return &sdk.PaymentInit{Reference: req.Reference, Merchant: "main", RedirectURL: g.p.srv.URL + "/paypage",
		Method: "POST", Fields: map[string]string{"Data": data, "Seal": seal(data, simKeyV1), "InterfaceVersion": "HP_2.20"},
		Raw: map[string]string{"Data": data}}, nil
}

func outcomeOf(code string) (sdk.Outcome, bool, string) {
	switch code {
	case "00":
		return sdk.OutcomeAccepted, false, "authorised"
	case "05", "34", "75":
		return sdk.OutcomeRefused, false, "refused"
	case "17":
		return sdk.OutcomeCancelled, false, "cancelled by the customer"
	case "60", "90", "99", "94":
		return sdk.OutcomePending, true, "not final: ask later"
	case "25":
		return sdk.OutcomeNotFound, false, "unknown transaction"
	}
	return sdk.OutcomeFailed, false, "failed (" + code + ")"
}

func (g *simGateway) verifyFields(data, sl string) (map[string]string, error) {
	if data == "" || sl == "" {
		return nil, sdk.Reject("missing_field", "Data and Seal are required")
	}
	f, err := decodeData(data)
	if err != nil {
		return nil, sdk.Reject("malformed", "%v", err)
	}
	key, ok := g.p.keys[f["keyVersion"]]
	if !ok {
		return nil, sdk.Reject("unknown_key_version", "keyVersion %q", f["keyVersion"])
	}
	if !hmac.Equal([]byte(seal(data, key)), []byte(strings.ToLower(sl))) {
		return nil, sdk.Reject("bad_seal", "seal does not match")
	}
	if f["merchantId"] != simMerchant {
		return nil, sdk.Reject("unknown_merchant", "merchantId %q", f["merchantId"])
	}
	for _, k := range []string{"transactionReference", "responseCode", "amount", "currencyCode"} {
		if f[k] == "" {
			return nil, sdk.Reject("missing_field", "%s missing", k)
		}
	}
	return f, nil
}

func (g *simGateway) VerifyNotification(_ context.Context, n sdk.Notification) (*sdk.PaymentResult, error) {
	form, err := url.ParseQuery(string(n.Body))
	if err != nil {
		return nil, sdk.Reject("malformed", "body is not a form: %v", err)
	}
	f, err := g.verifyFields(form.Get("Data"), form.Get("Seal"))
	if err != nil {
		return nil, err
	}
	amount, err := strconv.ParseInt(f["amount"], 10, 64)
	if err != nil {
		return nil, sdk.Reject("malformed", "amount %q", f["amount"])
	}
	o, later, expl := outcomeOf(f["responseCode"])
	return &sdk.PaymentResult{Merchant: "main", Reference: f["transactionReference"], Amount: amount,
		Currency: alphaCurrency(f["currencyCode"]), Outcome: o, AskLater: later, ResponseCode: f["responseCode"],
		AcquirerResponseCode: f["acquirerResponseCode"], AuthorisationID: f["authorisationId"], Explanation: expl,
		KeyVersion: f["keyVersion"], Fields: f}, nil
}

func (g *simGateway) QueryTransaction(ctx context.Context, q sdk.TransactionQuery) (*sdk.PaymentResult, error) {
	b, _ := json.Marshal(map[string]string{"merchantId": simMerchant, "transactionReference": q.Reference})
	req, _ := http.NewRequestWithContext(ctx, "POST", g.p.srv.URL+"/office", bytes.NewReader(b))
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("office: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("office: HTTP %d", resp.StatusCode)
	}
	var f map[string]string
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&f); err != nil {
		return nil, sdk.Reject("malformed", "office answer: %v", err)
	}
	s := f["seal"]
	delete(f, "seal")
	if !hmac.Equal([]byte(seal(encodeData(f), simKeyV1)), []byte(s)) {
		return nil, sdk.Reject("bad_seal", "office answer seal")
	}
	if f["responseCode"] == "25" {
		return &sdk.PaymentResult{Reference: q.Reference, Outcome: sdk.OutcomeNotFound, ResponseCode: "25", Fields: f}, nil
	}
	amount, _ := strconv.ParseInt(f["amount"], 10, 64)
	r := &sdk.PaymentResult{Merchant: "main", Reference: q.Reference, Amount: amount,
		Currency: alphaCurrency(f["currencyCode"]), ResponseCode: f["responseCode"], Fields: f,
		AcquirerResponseCode: f["acquirerResponseCode"]}
	switch f["transactionStatus"] {
	case "CAPTURED":
		r.Outcome = sdk.OutcomeAccepted
	case "REFUSED":
		r.Outcome = sdk.OutcomeRefused
	case "ABORTED":
		r.Outcome = sdk.OutcomeCancelled
	default:
		r.Outcome, r.AskLater = sdk.OutcomePending, true
	}
	return r, nil
}
