package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/atos/sips"
	"github.com/acquit/acquit/sdk"
)

const (
	mid = "002001000000001"
	key = "002001000000001_KEY1"
)

func acc() *sips.Account {
	return &sips.Account{MerchantID: mid, Keys: map[string]string{"1": key}, Algorithm: sips.HMACSHA256}
}

func startSim(t *testing.T, cfg Config) *Sim {
	t.Helper()
	if cfg.Merchants == nil {
		cfg.Merchants = []Merchant{{ID: mid, Keys: map[string]string{"1": key}}}
	}
	s := New(cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// receiver is a shop endpoint recording the automatic responses it gets.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	status int
	srv    *httptest.Server
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		st := r.status
		r.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func request(ref string, extra map[string]string, autoURL string) map[string]string {
	f := map[string]string{
		"amount": "2500", "currencyCode": "978", "normalReturnUrl": "http://127.0.0.1:1/return",
		"orderChannel": "INTERNET", "transactionReference": ref,
	}
	if autoURL != "" {
		f["automaticResponseUrl"] = autoURL
	}
	for k, v := range extra {
		if v == "" {
			delete(f, k)
		} else {
			f[k] = v
		}
	}
	return f
}

func postForm(t *testing.T, a *sips.Account, kv string, fields map[string]string, iv string) map[string]string {
	t.Helper()
	p, err := sips.BuildPost(a, kv, fields, "", iv)
	if err != nil {
		t.Fatal(err)
	}
	return p.Map()
}

func TestPaypageRefusals(t *testing.T) {
	s := startSim(t, Config{})
	b := NewBrowser()
	ctx := context.Background()
	good := postForm(t, acc(), "1", request("DUP1", nil, ""), "HP_3.4")
	if p, err := b.Open(ctx, "POST", s.URL()+"/paymentInit", good); err != nil || p.Refused() {
		t.Fatalf("good request: %v %+v", err, p)
	}
	wrongKey := &sips.Account{MerchantID: mid, Keys: map[string]string{"1": "not-the-key"}}
	unknownMerchant := &sips.Account{MerchantID: "999999999999999", Keys: map[string]string{"1": key}}
	otherVersion := &sips.Account{MerchantID: mid, Keys: map[string]string{"2": key}}
	tampered := postForm(t, acc(), "1", request("T1", nil, ""), "HP_3.4")
	tampered["Data"] = strings.Replace(tampered["Data"], "amount=2500", "amount=1", 1)
	tests := []struct {
		name   string
		fields map[string]string
		code   string
	}{
		{"forged seal", postForm(t, wrongKey, "1", request("R1", nil, ""), "HP_3.4"), "34"},
		{"tampered amount", tampered, "34"},
		{"unknown merchant", postForm(t, unknownMerchant, "1", request("R2", nil, ""), "HP_3.4"), "03"},
		{"unknown key version", postForm(t, otherVersion, "2", request("R3", nil, ""), "HP_3.4"), "34"},
		{"missing amount", postForm(t, acc(), "1", request("R4", map[string]string{"amount": ""}, ""), "HP_3.4"), "12"},
		{"missing reference", postForm(t, acc(), "1", request("", nil, ""), "HP_3.4"), "12"},
		{"missing normalReturnUrl", postForm(t, acc(), "1", request("R5", map[string]string{"normalReturnUrl": ""}, ""), "HP_3.4"), "12"},
		{"bad amount", postForm(t, acc(), "1", request("R6", map[string]string{"amount": "12.50"}, ""), "HP_3.4"), "30"},
		{"unknown currency", postForm(t, acc(), "1", request("R7", map[string]string{"currencyCode": "999"}, ""), "HP_3.4"), "30"},
		{"wrong interface version", postForm(t, acc(), "1", request("R8", nil, ""), "IR_WS_2.58"), "30"},
		{"bad capture mode", postForm(t, acc(), "1", request("R9", map[string]string{"captureMode": "LATER"}, ""), "HP_3.4"), "12"},
		{"reference reused", postForm(t, acc(), "1", request("DUP1", nil, ""), "HP_3.4"), "94"},
		{"garbage", map[string]string{"Data": "x", "Seal": "y", "InterfaceVersion": "HP_3.4"}, "30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := b.Open(ctx, "POST", s.URL()+"/paymentInit", tt.fields)
			if err != nil {
				t.Fatal(err)
			}
			if p.ResponseCode != tt.code || p.Status != http.StatusBadRequest {
				t.Fatalf("got code %q status %d, want %s", p.ResponseCode, p.Status, tt.code)
			}
		})
	}
	if n := len(s.Transactions()); n != 1 {
		t.Fatalf("%d transactions recorded, want 1 (refusals record nothing)", n)
	}
}

func TestCardDigitsPickResponseCode(t *testing.T) {
	s := startSim(t, Config{})
	b := NewBrowser()
	ctx := context.Background()
	tests := []struct {
		card    string
		code    string
		outcome sdk.Outcome
		status  string
	}{
		{"4100000000000000", "00", sdk.OutcomeAccepted, "TO_CAPTURE"},
		{"4100000000000005", "05", sdk.OutcomeRefused, "REFUSED"},
		{"4100000000000051", "51", sdk.OutcomeRefused, "REFUSED"},
		{"4100000000000017", "17", sdk.OutcomeCancelled, "ABORTED"},
		{"4100000000000060", "60", sdk.OutcomePending, "PENDING"},
		{"4100000000000097", "97", sdk.OutcomeExpired, "EXPIRED"},
		{"4100000000000034", "34", sdk.OutcomeFailed, ""},
	}
	for i, tt := range tests {
		ref := "CARD" + tt.code
		m, err := b.Pay(ctx, "POST", s.URL()+"/paymentInit", postForm(t, acc(), "1", request(ref, nil, ""), "HP_3.4"), Choice{CardNumber: tt.card})
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if m.ResponseCode != tt.code || !m.Returns {
			t.Fatalf("%s: code %s returns %v", tt.card, m.ResponseCode, m.Returns)
		}
		form, err := sips.ParsePostForm([]byte(m.Fields.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		r, err := sips.VerifyPost(form, func(string) (*sips.Account, bool) { return acc(), true })
		if err != nil {
			t.Fatalf("%s: manual response does not verify: %v", tt.card, err)
		}
		if r.ResponseCode != tt.code || r.TransactionReference != ref || r.Amount != 2500 {
			t.Fatalf("%s: response %+v", tt.card, r)
		}
		if got := s.Decided()[ref]; got != tt.outcome {
			t.Fatalf("%s: decided %s, want %s", tt.card, got, tt.outcome)
		}
		tx, _ := s.Transaction(ref)
		if tx.Status != tt.status {
			t.Fatalf("%s: status %q, want %q", tt.card, tx.Status, tt.status)
		}
	}
	// A page cannot be paid twice.
	p, err := b.Open(ctx, "POST", s.URL()+"/paymentInit", postForm(t, acc(), "1", request("TWICE", nil, ""), "HP_3.4"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Choose(ctx, p, Choice{Outcome: "accepted"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Choose(ctx, p, Choice{Outcome: "refused"}); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("second choice: %v", err)
	}
	if s.Decided()["TWICE"] != sdk.OutcomeAccepted {
		t.Fatal("second choice changed the outcome")
	}
}

func TestAutomaticResponseFaults(t *testing.T) {
	ctx := context.Background()
	pay := func(t *testing.T, s *Sim, ref, autoURL string) *Manual {
		t.Helper()
		m, err := NewBrowser().Pay(ctx, "POST", s.URL()+"/paymentInit", postForm(t, acc(), "1", request(ref, nil, autoURL), "HP_3.4"), Choice{Outcome: "accepted"})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	wait := func(t *testing.T, s *Sim) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.WaitDeliveries(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("normal", func(t *testing.T) {
		s := startSim(t, Config{})
		rc := newReceiver(t, 200)
		pay(t, s, "N1", rc.srv.URL)
		wait(t, s)
		if rc.count() != 1 {
			t.Fatalf("%d automatic responses", rc.count())
		}
		tx, _ := s.Transaction("N1")
		if tx.AutomaticStatus != AutoSent {
			t.Fatalf("status %s", tx.AutomaticStatus)
		}
	})
	t.Run("drop share is seeded", func(t *testing.T) {
		run := func() []bool {
			s := startSim(t, Config{Seed: 42, Faults: Faults{DropAutomatic: 0.5}})
			rc := newReceiver(t, 200)
			for i := 0; i < 40; i++ {
				pay(t, s, "D"+string(rune('A'+i%26))+string(rune('A'+i/26)), rc.srv.URL)
			}
			wait(t, s)
			var dropped []bool
			for _, tx := range s.Transactions() {
				dropped = append(dropped, tx.AutomaticDropped)
			}
			st := s.Stats()
			if st.AutomaticDropped+st.AutomaticSent != 40 || rc.count() != st.AutomaticSent {
				t.Fatalf("stats %+v, received %d", st, rc.count())
			}
			if st.AutomaticDropped < 10 || st.AutomaticDropped > 30 {
				t.Fatalf("dropped %d of 40 at share 0.5", st.AutomaticDropped)
			}
			return dropped
		}
		a, b := run(), run()
		for i := range a {
			if a[i] != b[i] {
				t.Fatal("same seed, different drops")
			}
		}
	})
	t.Run("twice", func(t *testing.T) {
		s := startSim(t, Config{Faults: Faults{AutomaticTwice: 1}})
		rc := newReceiver(t, 200)
		pay(t, s, "TW1", rc.srv.URL)
		wait(t, s)
		if rc.count() != 2 || !bytes.Equal(rc.bodies[0], rc.bodies[1]) {
			t.Fatalf("%d responses", rc.count())
		}
	})
	t.Run("late", func(t *testing.T) {
		s := startSim(t, Config{Faults: Faults{AutomaticDelay: 300 * time.Millisecond}})
		rc := newReceiver(t, 200)
		pay(t, s, "L1", rc.srv.URL)
		if rc.count() != 0 {
			t.Fatal("late response arrived before the customer's page")
		}
		wait(t, s)
		if rc.count() != 1 {
			t.Fatalf("%d responses", rc.count())
		}
	})
	t.Run("after manual", func(t *testing.T) {
		s := startSim(t, Config{Faults: Faults{AutomaticAfterManual: true}})
		var order []string
		var mu sync.Mutex
		shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			order = append(order, r.URL.Path)
			mu.Unlock()
			if r.URL.Path == "/return" {
				http.Redirect(w, r, "/thanks", http.StatusSeeOther)
			}
		}))
		defer shop.Close()
		fields := request("AM1", map[string]string{"normalReturnUrl": shop.URL + "/return"}, shop.URL+"/auto")
		m, err := NewBrowser().Pay(ctx, "POST", s.URL()+"/paymentInit", postForm(t, acc(), "1", fields, "HP_3.4"), Choice{Outcome: "accepted"})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := NewBrowser().Return(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("shop answered %d", resp.StatusCode)
		}
		wait(t, s)
		mu.Lock()
		defer mu.Unlock()
		if len(order) != 2 || order[0] != "/return" || order[1] != "/auto" {
			t.Fatalf("order %v, want manual then automatic", order)
		}
	})
	t.Run("never returns", func(t *testing.T) {
		s := startSim(t, Config{Faults: Faults{CustomerNeverReturns: 1}})
		m := pay(t, s, "NR1", "")
		if m.Returns {
			t.Fatal("manual form present")
		}
		if _, err := NewBrowser().Return(ctx, m); err == nil {
			t.Fatal("Return succeeded without a form")
		}
		if s.Stats().ManualNone != 1 {
			t.Fatalf("stats %+v", s.Stats())
		}
	})
	t.Run("endpoint 500 once, as Sips", func(t *testing.T) {
		s := startSim(t, Config{})
		rc := newReceiver(t, 500)
		pay(t, s, "E1", rc.srv.URL)
		wait(t, s)
		tx, _ := s.Transaction("E1")
		if rc.count() != 1 || tx.AutomaticStatus != AutoFailed {
			t.Fatalf("received %d, status %s", rc.count(), tx.AutomaticStatus)
		}
	})
	t.Run("endpoint 500 then 200 with retries", func(t *testing.T) {
		s := startSim(t, Config{AutomaticAttempts: 3, RetryDelay: 10 * time.Millisecond})
		var n int
		var mu sync.Mutex
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			n++
			first := n == 1
			mu.Unlock()
			if first {
				w.WriteHeader(500)
			}
		}))
		defer srv.Close()
		pay(t, s, "E2", srv.URL)
		wait(t, s)
		tx, _ := s.Transaction("E2")
		if n != 2 || tx.AutomaticStatus != AutoSent || tx.AutomaticAttempts != 2 {
			t.Fatalf("posts %d, status %s, attempts %d", n, tx.AutomaticStatus, tx.AutomaticAttempts)
		}
	})
}

func TestAdminFaultsEndpoint(t *testing.T) {
	s := startSim(t, Config{})
	body := `{"drop_automatic":0.3,"customer_never_returns":0.3,"automatic_delay":"250ms","office_down":true,"office_errors":{"R1":"03"}}`
	req, _ := http.NewRequest(http.MethodPut, s.URL()+"/sim/faults", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT faults: %d", resp.StatusCode)
	}
	f := s.Faults()
	if f.DropAutomatic != 0.3 || f.AutomaticDelay != 250*time.Millisecond || !f.OfficeDown || f.CustomerNeverReturns != 0.3 || f.OfficeErrors["R1"] != "03" {
		t.Fatalf("faults %+v", f)
	}
	for _, bad := range []string{`{"drop_automatic":2}`, `{"office_errors":{"R1":"x"}}`, `{"automatic_delay":"soon"}`, `{"unknown":1}`, `not json`} {
		req, _ := http.NewRequest(http.MethodPut, s.URL()+"/sim/faults", strings.NewReader(bad))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("PUT %s: %d", bad, resp.StatusCode)
		}
	}
	resp, err = http.Get(s.URL() + "/sim/faults")
	if err != nil {
		t.Fatal(err)
	}
	var j FaultsJSON
	json.NewDecoder(resp.Body).Decode(&j)
	resp.Body.Close()
	if j.DropAutomatic != 0.3 || j.AutomaticDelay != "250ms" {
		t.Fatalf("GET faults %+v", j)
	}
}

func TestOfficeAndJSON(t *testing.T) {
	s := startSim(t, Config{})
	ctx := context.Background()
	c := &sips.Client{Timeout: 5 * time.Second}
	q := func(ref sips.Reference) (*sips.TransactionData, error) {
		return c.GetTransactionData(ctx, sips.OfficeQuery{BaseURL: s.URL(), Account: acc(), KeyVersion: "1", InterfaceVersion: "DR_WS_2.58", Ref: ref})
	}
	td, err := q(sips.Reference{TransactionReference: "NEVERSEEN"})
	if err != nil || td.Interpretation.Outcome != sdk.OutcomeNotFound {
		t.Fatalf("never seen: %v %+v", err, td)
	}
	// JSON paymentInit, then pay through the redirection.
	r, err := c.PaymentInit(ctx, s.URL()+sips.PathPaymentInitJSON, acc(), "1", map[string]any{
		"amount": "990", "currencyCode": "978", "interfaceVersion": "IR_WS_2.58", "normalReturnUrl": "http://127.0.0.1:1/r",
		"s10TransactionReference": map[string]any{"s10TransactionId": "000042", "s10TransactionIdDate": "20261123"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Undecided: Office has nothing yet (the customer has not paid).
	td, err = q(sips.Reference{S10TransactionID: "000042", S10TransactionIDDate: "20261123"})
	if err != nil || td.Interpretation.Outcome != sdk.OutcomeNotFound {
		t.Fatalf("undecided: %v %+v", err, td)
	}
	if s.Decided()["000042"] != sdk.OutcomeExpired {
		t.Fatal("undecided transaction not counted as abandoned")
	}
	m, err := NewBrowser().Pay(ctx, "POST", r.URL, r.FormFields(), Choice{Outcome: "refused"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Fields.Get("InterfaceVersion") != "IR_WS_2.58" {
		t.Fatalf("manual fields %v", m.Fields)
	}
	td, err = q(sips.Reference{S10TransactionID: "000042", S10TransactionIDDate: "20261123"})
	if err != nil || td.Interpretation.Outcome != sdk.OutcomeRefused || td.Amount != 990 {
		t.Fatalf("decided: %v %+v", err, td)
	}
	// Refused JSON requests.
	_, err = c.PaymentInit(ctx, s.URL()+sips.PathPaymentInitJSON, &sips.Account{MerchantID: mid, Keys: map[string]string{"1": "wrong-key-123"}}, "1",
		map[string]any{"amount": "1", "currencyCode": "978", "interfaceVersion": "IR_WS_2.58", "normalReturnUrl": "http://x/r", "transactionReference": "J1"})
	if e, ok := sips.IsAPIError(err); !ok || e.ResponseCode != "34" {
		t.Fatalf("bad seal: %v", err)
	}
	_, err = c.PaymentInit(ctx, s.URL()+sips.PathPaymentInitJSON, acc(), "1",
		map[string]any{"amount": "1", "currencyCode": "978", "interfaceVersion": "IR_WS_2.58", "normalReturnUrl": "http://x/r", "transactionReference": "000042X"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.PaymentInit(ctx, s.URL()+sips.PathPaymentInitJSON, acc(), "1",
		map[string]any{"amount": "1", "currencyCode": "978", "interfaceVersion": "IR_WS_2.58", "normalReturnUrl": "http://x/r", "transactionReference": "000042X"})
	if e, ok := sips.IsAPIError(err); !ok || e.ResponseCode != "94" {
		t.Fatalf("reused reference: %v", err)
	}
	// A business error injected for one transaction only.
	s.SetFaults(Faults{OfficeErrors: map[string]string{"000042": "40"}})
	if _, err := q(sips.Reference{S10TransactionID: "000042", S10TransactionIDDate: "20261123"}); err == nil {
		t.Fatal("injected office error not answered")
	} else if e, ok := sips.IsAPIError(err); !ok || e.ResponseCode != "40" {
		t.Fatalf("injected office error: %v", err)
	}
	if td, err := q(sips.Reference{TransactionReference: "NEVERSEEN"}); err != nil || td.Interpretation.Outcome != sdk.OutcomeNotFound {
		t.Fatalf("other transaction while one has an injected error: %v %+v", err, td)
	}
	if n := s.Stats().OfficeErrors; n != 1 {
		t.Fatalf("office errors counted %d", n)
	}
	// Office down and slow.
	s.SetFaults(Faults{OfficeDown: true})
	if _, err := q(sips.Reference{TransactionReference: "X"}); err == nil {
		t.Fatal("office down answered")
	} else if e, ok := sips.IsAPIError(err); !ok || e.HTTPStatus != 503 {
		t.Fatalf("office down: %v", err)
	}
	s.SetFaults(Faults{OfficeDelay: 2 * time.Second})
	slow := &sips.Client{Timeout: 100 * time.Millisecond}
	if _, err := slow.GetTransactionData(ctx, sips.OfficeQuery{BaseURL: s.URL(), Account: acc(), KeyVersion: "1", InterfaceVersion: "DR_WS_2.58", Ref: sips.Reference{TransactionReference: "X"}}); err == nil {
		t.Fatal("slow office answered within the timeout")
	}
	// Office refuses a forged query.
	bad := &sips.Account{MerchantID: mid, Keys: map[string]string{"1": "wrong-key-123"}}
	s.SetFaults(Faults{})
	if _, err := c.GetTransactionData(ctx, sips.OfficeQuery{BaseURL: s.URL(), Account: bad, KeyVersion: "1", InterfaceVersion: "DR_WS_2.58", Ref: sips.Reference{TransactionReference: "X"}}); err == nil {
		t.Fatal("forged office query answered")
	} else if e, ok := sips.IsAPIError(err); !ok || e.ResponseCode != "34" {
		t.Fatalf("forged office query: %v", err)
	}
}

func TestParseManualForm(t *testing.T) {
	page := []byte(`<html><body><form id="other" action="/x"><input type="hidden" name="a" value="1"></form>
<form id="manual" method="post" action="https://shop.example/r?x=1&amp;y=2"><input type="hidden" name="Data" value="a=1|b=2"><input type="hidden" name="Seal" value="ab"></form></body></html>`)
	action, fields, err := ParseManualForm(page)
	if err != nil {
		t.Fatal(err)
	}
	if action != "https://shop.example/r?x=1&y=2" || fields.Get("Data") != "a=1|b=2" || fields.Get("a") != "" {
		t.Fatalf("action %q fields %v", action, fields)
	}
	if _, _, err := ParseManualForm([]byte(`<html>nothing</html>`)); err == nil {
		t.Fatal("no form accepted")
	}
	_ = url.Values{}
}
