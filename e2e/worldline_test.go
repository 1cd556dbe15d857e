package e2e

// Worldline Direct end to end: the real daemon binary, the real
// acquit-plugin-worldline process and the Worldline simulator over
// loopback, with webhook faults and a kill -9 of the daemon in the middle.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/plugins/worldline/direct"
	wlsim "github.com/acquit/acquit/plugins/worldline/sim"
)

// TestWorldlineKill9 runs 2,000 payments (300 with -short) through the
// Worldline plugin with 30% of webhooks dropped, 10% duplicated, 10% of
// payments' webhooks reordered, up to 300ms of delay, 5% of accepted
// payments first reported uncertain (92), 30% of customers never coming
// back, 3% abandoning on the hosted page and 2% left uncertain for good;
// the daemon and its plugin are killed with SIGKILL when half the payments
// are started. Customers whose return met the dead daemon come back later
// for half of them. Afterwards: every payment as the customer and acquirer
// decided (0 lost), exactly one decision event each (0 decided twice), the
// silent ones decided by reconciliation, the ones left uncertain raised as
// payment.unknown and nothing else; every webhook acquit answered 2xx and
// every return it answered 303 on the payment's timeline.
func TestWorldlineKill9(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	c := ctx(t)
	h := newHarness(t)
	s, err := demo.WorldlineSim(h, 20261204, wlsim.Faults{Drop: 0.3, Duplicate: 0.1, Reorder: 0.1, MaxDelay: 300 * time.Millisecond, Uncertain: 0.05},
		5*time.Second, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h.Template().FinalDeadline = "20s"
	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cs := demo.PlanWorldline(n, 1, 7, 0.3)
	rd := &demo.RedirectLog{}
	var started atomic.Int64
	killed := make(chan error, 1)
	go func() {
		for started.Load() < int64(n/2) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := h.Kill9(true); err != nil {
			killed <- err
			return
		}
		t.Logf("kill -9 of daemon and plugin with %d of %d payments started", started.Load(), n)
		time.Sleep(1500 * time.Millisecond)
		killed <- h.Start(c)
	}()
	if err := demo.DriveWorldline(c, h, cs, 16, rd, func(k int) { started.Store(int64(k)) }); err != nil {
		t.Fatal(err)
	}
	if err := <-killed; err != nil {
		t.Fatalf("kill/restart: %v", err)
	}
	failed, again := 0, 0
	for _, cu := range cs {
		if cu.ReturnFailed.Load() {
			failed++
			if cu.I%2 == 0 {
				again++
				demo.ReturnWorldline(c, nil, cu, rd)
			}
		}
	}
	drove := time.Since(start)
	if err := s.WaitDeliveries(c); err != nil {
		t.Fatal(err)
	}
	if err := demo.WaitWorldline(c, h, cs, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	r, err := demo.CheckWorldline(c, h, s, cs)
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	t.Logf("%d payments in %s (customers done in %s), 1 kill -9", n, time.Since(start).Round(time.Millisecond), drove.Round(time.Millisecond))
	t.Logf("  simulator: %d webhooks planned, %d dropped, %d duplicated, %d payments reordered, %d answered 2xx, %d failed (daemon down)",
		st.WebhooksPlanned, st.Dropped, st.Duplicated, st.Reordered, st.Delivered2xx, st.Failed)
	t.Logf("  %d returns met the dead daemon, %d came back later", failed, again)
	t.Logf("  decided by: %s", demo.FormatCounts(r.ByChannel))
	t.Logf("  states: %s", demo.FormatCounts(r.ByState))
	t.Logf("  events: %s", demo.FormatCounts(r.Events))
	t.Logf("  timeline: %s", demo.FormatCounts(r.Verdicts))
	for _, p := range r.Problems {
		t.Error(p)
	}
	for _, b := range rd.Bad {
		t.Errorf("return sent to the wrong page: %s", b)
	}
	uncertain := 0
	for _, cu := range cs {
		if cu.Choice == "uncertain" {
			uncertain++
		}
	}
	if r.Events["payment.unknown"] != uncertain || uncertain == 0 {
		t.Errorf("%d payment.unknown events, %d payments left uncertain", r.Events["payment.unknown"], uncertain)
	}
	for _, ch := range []string{"automatic", "manual", "reconciliation"} {
		if r.ByChannel[ch] == 0 {
			t.Errorf("no payment decided by %s: the faults did not exercise every channel", ch)
		}
	}
	if r.Verdicts["automatic/duplicate"] == 0 || r.Verdicts["automatic/not_final"] == 0 {
		t.Errorf("timeline %v: duplicates or uncertain webhooks did not reach the daemon", r.Verdicts)
	}
	if st.Failed == 0 && failed == 0 {
		t.Errorf("the kill met no webhook and no return: it did not happen mid-flow")
	}
	if err := h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestWorldlineHostileWebhooks posts hostile webhooks to the real daemon
// (real plugin process): forged signature, unknown key id, a replayed
// event id with another body, wrong amount, oversized (refused by the
// public listener on its Content-Length; the payments service's own limit
// is checked by TestWorldlineHostileWebhooks in daemon/payments), malformed
// JSON.
// Each is refused (or, for the amount, recorded as payment.mismatch)
// without changing the payment, counted in /metrics by its code and
// logged by the daemon with it.
func TestWorldlineHostileWebhooks(t *testing.T) {
	c := ctx(t)
	h := newHarness(t)
	s, err := demo.WorldlineSim(h, 11, wlsim.Faults{}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}
	e := &payEnv{t: t, h: h, cl: h.Client()}
	cu := demo.PlanWorldline(1, 1, 1, 1)[0]
	cu.Choice = "refused"
	if err := demo.DriveWorldline(c, h, []*demo.WLCustomer{cu}, 1, &demo.RedirectLog{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDeliveries(c); err != nil {
		t.Fatal(err)
	}
	e.checkState(c, t, cu.Ref, payments.StateRefused)
	pid, _ := s.PaymentID(cu.Ref)
	// A webhook as the platform would sign it, for this payment.
	webhook := func(id string, code int, amount int64) []byte {
		b, _ := json.Marshal(direct.WebhookEvent{APIVersion: "v1", ID: id, Created: "2026-12-04T07:00:00.000+0100", MerchantID: demo.WLMerchantID,
			Type: "payment.captured", Payment: &direct.Payment{ID: pid, Status: "CAPTURED", StatusOutput: &direct.StatusOutput{StatusCode: code},
				PaymentOutput: &direct.PaymentOutput{AmountOfMoney: &direct.AmountOfMoney{Amount: amount, CurrencyCode: "EUR"},
					References: &direct.References{MerchantReference: cu.Ref}}}})
		return b
	}
	var d payments.Detail
	if _, err := h.Client().Do(c, "GET", "/v1/payments/"+cu.Ref, nil, &d); err != nil {
		t.Fatal(err)
	}
	amount := d.Payment.Amount
	first := webhook("c0000000-0000-4000-8000-000000000001", 2, amount)
	post := func(body []byte, keyID, key string) int {
		req, _ := http.NewRequestWithContext(c, "POST", "http://"+h.PublicAddr+"/notify/worldline/automatic", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if keyID != "" {
			req.Header.Set(direct.HeaderSignature, direct.WebhookSignature(key, body))
			req.Header.Set(direct.HeaderKeyID, keyID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(first, demo.WLWebhookKeyID, demo.WLWebhookKey); code != 200 {
		t.Fatalf("a good (duplicate) webhook: HTTP %d", code)
	}
	huge := append([]byte(`{"pad":"`), bytes.Repeat([]byte("A"), 80<<10)...)
	cases := []struct {
		name, code string
		body       []byte
		keyID, key string
		status     int
	}{
		{"forged signature", "bad_signature", webhook("c0000000-0000-4000-8000-000000000002", 9, amount), demo.WLWebhookKeyID, "forged-secret-0000000000", 400},
		{"unknown key id", "unknown_key_id", webhook("c0000000-0000-4000-8000-000000000003", 9, amount), "whk-stolen", demo.WLWebhookKey, 400},
		{"replayed event id, other body", "event_id_reused", webhook("c0000000-0000-4000-8000-000000000001", 9, amount), demo.WLWebhookKeyID, demo.WLWebhookKey, 400},
		{"oversized", "", huge, demo.WLWebhookKeyID, demo.WLWebhookKey, 413},
		{"malformed JSON", "malformed", []byte(`{"id":"x","payment":{`), demo.WLWebhookKeyID, demo.WLWebhookKey, 400},
		{"wrong amount", "", webhook("c0000000-0000-4000-8000-000000000004", 9, amount+1), demo.WLWebhookKeyID, demo.WLWebhookKey, 200},
	}
	for _, k := range cases {
		if got := post(k.body, k.keyID, k.key); got != k.status {
			t.Errorf("%s: HTTP %d, want %d", k.name, got, k.status)
		}
	}
	m := e.metrics(c)
	logText, _ := os.ReadFile(filepath.Join(h.Dir, "acquit.log"))
	for _, k := range cases {
		if k.code == "" {
			continue
		}
		if v := metricValue(m, "acquit_payments_rejects_total", `gateway="worldline"`, `code="`+k.code+`"`); v != 1 {
			t.Errorf("%s: acquit_payments_rejects_total{code=%q} = %v, want 1", k.name, k.code, v)
		}
		if !strings.Contains(string(logText), `"code":"`+k.code+`"`) {
			t.Errorf("%s: no log line with code %s", k.name, k.code)
		}
	}
	// The oversized one is refused by the public listener on its
	// Content-Length, before anything is read.
	if v := metricValue(m, "acquit_http_body_too_large_total"); v != 1 {
		t.Errorf("acquit_http_body_too_large_total = %v, want 1", v)
	}
	if !strings.Contains(string(logText), "public request refused: body too large") {
		t.Error("oversized: no log line")
	}
	if v := metricValue(m, "acquit_payments_notifications_total", `gateway="worldline"`, `verdict="mismatch"`); v != 1 {
		t.Errorf("mismatch verdicts = %v, want 1", v)
	}
	e.checkState(c, t, cu.Ref, payments.StateRefused)
	var evs []store.Event
	if _, err := h.Client().Do(c, "GET", "/v1/events?limit=100&type=payment.mismatch", nil, &evs); err != nil || len(evs) != 1 {
		t.Errorf("payment.mismatch events: %d (%v), want 1", len(evs), err)
	}
	for _, typ := range []string{"payment.accepted", "payment.conflict", "payment.captured"} {
		if _, err := h.Client().Do(c, "GET", "/v1/events?limit=100&type="+typ, nil, &evs); err != nil || len(evs) != 0 {
			t.Errorf("%s events: %d (%v), want 0", typ, len(evs), err)
		}
	}
	if err := h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}
