package payments

// The payment domain with the real Worldline Direct plugin
// (plugins/worldline, in process as sdk.PaymentGateway) and its simulator
// over loopback HTTP: captures and refunds as later events on the same
// payment, webhook duplicates and contradictions, hostile webhooks, and
// reconciliation of silent payments.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acquit/acquit/plugins/worldline"
	"github.com/acquit/acquit/plugins/worldline/direct"
	"github.com/acquit/acquit/plugins/worldline/sim"
)

const (
	wlMID     = "acquitshop"
	wlKeyID   = "KEY1"
	wlSecret  = "payments-test-api-secret-0123"
	wlHookID  = "whk-1"
	wlHookKey = "payments-test-webhook-secret"
)

// withWorldline starts a simulator sending its webhooks to the env's public
// listener and adds the configured plugin as gateway "worldline".
func withWorldline(t testing.TB, e *env, cfg sim.Config) *sim.Sim {
	t.Helper()
	cfg.Merchants = []sim.Merchant{{ID: wlMID, APIKeys: map[string]string{wlKeyID: wlSecret}, WebhookKeyID: wlHookID,
		WebhookSecret: wlHookKey, WebhookURL: e.pub.URL + "/notify/worldline/automatic"}}
	s := sim.New(cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	raw, _ := json.Marshal(worldline.Settings{RequestTimeout: "5s", Merchants: []worldline.MerchantSettings{{
		Name: "shop", MerchantID: wlMID, Environment: "test", APIURL: s.URL(), APIKeyID: wlKeyID, APISecret: wlSecret,
		WebhookKeys: map[string]string{wlHookID: wlHookKey}}}})
	p := worldline.New(worldline.Silent())
	if err := p.Configure(context.Background(), raw, storeHost{e.st, "worldline"}); err != nil {
		t.Fatalf("worldline configure: %v", err)
	}
	e.gateways["worldline"] = p
	return s
}

func (e *env) startWL(t testing.TB, amount int64) *Started {
	t.Helper()
	st, err := e.svc.Start(context.Background(), StartRequest{Gateway: "worldline", OrderID: fmt.Sprintf("WL-%d", time.Now().UnixNano()),
		Amount: amount, Currency: "EUR", SuccessURL: shopOK, FailureURL: shopKO})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return st
}

// webhook posts a body signed with (keyID, key) to the automatic endpoint.
func (e *env) webhook(t testing.TB, body []byte, keyID, key string) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", e.pub.URL+"/notify/worldline/automatic", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(direct.HeaderSignature, direct.WebhookSignature(key, body))
	req.Header.Set(direct.HeaderKeyID, keyID)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, body: string(b)}
}

// lastWebhookBody returns the body of the last automatic notification
// stored raw.
func (e *env) lastWebhookBody(t testing.TB) []byte {
	t.Helper()
	var id int64
	if err := e.db.QueryRow(`SELECT MAX(id) FROM raw_inputs WHERE channel = 'automatic'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	raw, err := e.st.GetRaw(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return raw.Body
}

func TestWorldlineOperations(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testWorldlineOperations(t, d) })
	}
}

// A payment decided once, then captured and refunded: one decision event,
// one payment.captured, one payment.refunded, whatever is repeated.
func testWorldlineOperations(t *testing.T, driver string) {
	ctx := context.Background()
	e := newEnvOn(t, driver, nil)
	s := withWorldline(t, e, sim.Config{Seed: 3})
	st := e.startWL(t, 4200)
	back, err := (&sim.Browser{}).Pay(ctx, st.RedirectURL, "accepted")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	if p := e.get(t, st.Reference).Payment; p.State != StateAccepted || p.DecidedChannel != "automatic" {
		t.Fatalf("after webhooks: %+v", p)
	}
	// The customer's return: RETURNMAC, GetHostedCheckout, a duplicate.
	resp, err := e.client.Get(back)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != shopOK {
		t.Fatalf("return: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	capturedBody := e.lastWebhookBody(t)
	// The platform sends the captured webhook again: a duplicate, no event.
	if r := e.webhook(t, capturedBody, wlHookID, wlHookKey); r.code != 200 {
		t.Fatalf("duplicate webhook: %+v", r)
	}
	pid, _ := s.PaymentID(st.Reference)
	cl := &direct.Client{}
	if _, err := cl.RefundPayment(ctx, direct.Endpoint{BaseURL: s.URL(), MerchantID: wlMID,
		Creds: direct.Credentials{KeyID: wlKeyID, Secret: wlSecret}}, pid, direct.AmountOfMoney{Amount: 4200, CurrencyCode: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	refundBody := e.lastWebhookBody(t)
	if r := e.webhook(t, refundBody, wlHookID, wlHookKey); r.code != 200 {
		t.Fatalf("refund webhook again: %+v", r)
	}
	d := e.get(t, st.Reference)
	if d.Payment.State != StateAccepted {
		t.Fatalf("refund changed the decision: %+v", d.Payment)
	}
	for typ, want := range map[string]int{"payment.accepted": 1, "payment.captured": 1, "payment.refunded": 1,
		"payment.conflict": 0, "payment.refused": 0, "payment.voided": 0} {
		if n := e.events(t, typ, st.Reference); n != want {
			t.Errorf("%d %s events, want %d", n, typ, want)
		}
	}
	verdicts := map[string]int{}
	for _, r := range d.Timeline {
		verdicts[r.Channel+"/"+string(r.Verdict)]++
	}
	want := map[string]int{"automatic/not_final": 1, "automatic/decided": 1, "manual/duplicate": 1, "automatic/duplicate": 2, "automatic/operation": 1}
	for k, n := range want {
		if verdicts[k] != n {
			t.Errorf("timeline %v, want %v", verdicts, want)
			break
		}
	}
	var ops int
	if err := e.db.QueryRow(e.rebind(`SELECT COUNT(*) FROM payment_operations WHERE reference = ?`), st.Reference).Scan(&ops); err != nil {
		t.Fatal(err)
	}
	if ops != 2 {
		t.Errorf("%d operations recorded, want 2 (capture, refund)", ops)
	}
	if n := testutil.ToFloat64(e.svc.m.operations.WithLabelValues("refund", "done")); n != 1 {
		t.Errorf("operations metric refund/done = %v", n)
	}
}

// Hostile webhooks: each is refused (or recorded without a state change),
// counted by code, and leaves the payments as they were.
func TestWorldlineHostileWebhooks(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	s := withWorldline(t, e, sim.Config{Seed: 4})
	st := e.startWL(t, 1500)
	if _, err := (&sim.Browser{}).Pay(ctx, st.RedirectURL, "refused"); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	good := e.lastWebhookBody(t)
	if p := e.get(t, st.Reference).Payment; p.State != StateRefused {
		t.Fatalf("state %s", p.State)
	}
	var ev direct.WebhookEvent
	if err := json.Unmarshal(good, &ev); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(*direct.WebhookEvent)) []byte {
		var c direct.WebhookEvent
		_ = json.Unmarshal(good, &c)
		f(&c)
		b, _ := json.Marshal(c)
		return b
	}
	accepted := mutate(func(c *direct.WebhookEvent) {
		c.Payment.Status, c.Payment.StatusOutput.StatusCode, c.Payment.StatusOutput.StatusCategory = "CAPTURED", 9, "COMPLETED"
	})
	wrongAmount := mutate(func(c *direct.WebhookEvent) {
		c.ID = "a0000000-0000-4000-8000-000000000001"
		c.Payment.PaymentOutput.AmountOfMoney.Amount = 1
	})
	wrongCurrency := mutate(func(c *direct.WebhookEvent) {
		c.ID = "a0000000-0000-4000-8000-000000000002"
		c.Payment.PaymentOutput.AmountOfMoney.CurrencyCode = "USD"
	})
	huge := append([]byte(`{"pad":"`), []byte(strings.Repeat("A", 70<<10))...)
	huge = append(huge, []byte(`"}`)...)
	before := e.snapshot(t)
	cases := []struct {
		name      string
		body      []byte
		keyID     string
		key       string
		code      int
		rejectKey string // rejects metric label ("" = not a rejection)
		verdict   string
	}{
		{"forged signature", accepted, wlHookID, "not-the-webhook-secret", 400, "bad_signature", ""},
		{"unknown key id", accepted, "whk-stolen", wlHookKey, 400, "unknown_key_id", ""},
		{"replayed event id, other body", accepted, wlHookID, wlHookKey, 400, "event_id_reused", ""},
		{"wrong amount", wrongAmount, wlHookID, wlHookKey, 200, "", "mismatch"},
		{"wrong currency", wrongCurrency, wlHookID, wlHookKey, 200, "", "mismatch"},
		{"oversized", huge, wlHookID, wlHookKey, 413, "too_large", ""},
		{"malformed JSON", []byte(`{"id":"x","type":"payment.captured","payment":`), wlHookID, wlHookKey, 400, "malformed", ""},
		{"no signature headers", good, "", "", 400, "missing_signature", ""},
	}
	for _, c := range cases {
		var r reply
		if c.keyID == "" {
			resp, err := e.client.Post(e.pub.URL+"/notify/worldline/automatic", "application/json", strings.NewReader(string(c.body)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			r.code = resp.StatusCode
		} else {
			r = e.webhook(t, c.body, c.keyID, c.key)
		}
		if r.code != c.code {
			t.Errorf("%s: HTTP %d, want %d (%s)", c.name, r.code, c.code, r.body)
		}
		if c.rejectKey != "" {
			if n := testutil.ToFloat64(e.svc.m.rejects.WithLabelValues("worldline", c.rejectKey)); n < 1 {
				t.Errorf("%s: rejects{code=%s} = %v", c.name, c.rejectKey, n)
			}
			if _, code := e.lastVerdict(t); code != c.rejectKey {
				t.Errorf("%s: raw verdict %q, want %q", c.name, code, c.rejectKey)
			}
		}
		if c.verdict != "" {
			if n := testutil.ToFloat64(e.svc.m.notifications.WithLabelValues("worldline", "automatic", c.verdict)); n < 1 {
				t.Errorf("%s: notifications{verdict=%s} = %v", c.name, c.verdict, n)
			}
		}
	}
	// Mismatches are recorded as events; nothing else changed.
	if n := e.events(t, "payment.mismatch", st.Reference); n != 2 {
		t.Errorf("%d payment.mismatch events, want 2", n)
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("hostile webhooks changed stored payments:\nbefore %s\nafter  %s", before, after)
	}
	if n := e.events(t, "payment.accepted", st.Reference) + e.events(t, "payment.conflict", st.Reference); n != 0 {
		t.Errorf("%d accepted/conflict events from forged webhooks", n)
	}
}

// Silent payments (no webhook, no return) are decided by reconciliation:
// accepted and refused through GetHostedCheckout + GetPaymentDetails,
// cancelled on the page, never paid (checkout gone: 404) expired, and one
// left uncertain for good raised as payment.unknown at the deadline.
func TestWorldlineReconcileSilent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	withWorldline(t, e, sim.Config{Seed: 5, Faults: sim.Faults{Drop: 1}, ExpireAfter: 2 * time.Second})
	b := &sim.Browser{}
	want := map[string]State{}
	for _, choice := range []string{"accepted", "refused", "cancelled", "uncertain", ""} {
		st := e.startWL(t, 999)
		if choice != "" {
			if _, err := b.Pay(ctx, st.RedirectURL, choice); err != nil {
				t.Fatal(err)
			}
		}
		want[st.Reference] = map[string]State{"accepted": StateAccepted, "refused": StateRefused, "cancelled": StateCancelled,
			"uncertain": StateUnknown, "": StateExpired}[choice]
	}
	time.Sleep(2500 * time.Millisecond) // the unpaid checkout expires at the simulator
	e.clock.Advance(21 * time.Minute)
	if _, err := e.svc.Reconcile(ctx, map[string]string{"gateway": "worldline"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(25 * time.Hour) // past FinalDeadline
	if _, err := e.svc.Reconcile(ctx, map[string]string{"gateway": "worldline"}); err != nil {
		t.Fatal(err)
	}
	for ref, w := range want {
		p := e.get(t, ref).Payment
		if p.State != w {
			t.Errorf("%s: %s, want %s", ref, p.State, w)
		}
		if w != StateUnknown && p.DecidedChannel != "reconciliation" {
			t.Errorf("%s decided by %q", ref, p.DecidedChannel)
		}
		if w == StateUnknown && e.events(t, "payment.unknown", ref) != 1 {
			t.Errorf("%s: no payment.unknown", ref)
		}
	}
}
