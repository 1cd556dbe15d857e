package payments

// The payment domain with the real Atos plugin (plugins/atos, in process as
// sdk.PaymentGateway) and the real Sips simulator (plugins/atos/sim) over
// loopback HTTP.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/plugins/atos"
	"github.com/acquit/acquit/plugins/atos/sim"
	"github.com/acquit/acquit/plugins/atos/sips"
	"github.com/acquit/acquit/sdk"
)

const (
	atosMID  = "002001000000001"
	atosKey1 = "002001000000001_KEY1_for_the_payments_tests"
)

// storeHost is sdk.Host over the store's plugin state, as the daemon offers
// it to plugins.
type storeHost struct {
	st     store.Store
	plugin string
}

func (h storeHost) StateGet(ctx context.Context, key string) ([]byte, int64, error) {
	return h.st.StateGet(ctx, h.plugin, key)
}

func (h storeHost) StatePut(ctx context.Context, key string, value []byte, version int64) (int64, error) {
	v, err := h.st.StatePut(ctx, h.plugin, key, value, version)
	if errors.Is(err, store.ErrConflict) {
		return 0, sdk.ErrConflict
	}
	return v, err
}

func (h storeHost) NextSequence(ctx context.Context, name string) (int64, error) {
	return h.st.NextSequence(ctx, h.plugin, name)
}

// withAtos starts a simulator and adds the configured plugin as gateway
// "atos".
func withAtos(t testing.TB, e *env, faults sim.Faults, mut func(m map[string]any)) *sim.Sim {
	t.Helper()
	s := sim.New(sim.Config{Merchants: []sim.Merchant{{ID: atosMID, Keys: map[string]string{"1": atosKey1}}},
		Faults: faults, Seed: 7, ManualWait: 200 * time.Millisecond})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m := map[string]any{"name": "shop", "merchant_id": atosMID, "environment": "test",
		"paypage_url": s.URL(), "office_url": s.URL(), "keys": map[string]string{"1": atosKey1},
		"payment_means": []string{"CB", "VISA"}, "capture_day": 0}
	if mut != nil {
		mut(m)
	}
	raw, err := json.Marshal(map[string]any{"request_timeout": "5s", "merchants": []any{m}})
	if err != nil {
		t.Fatal(err)
	}
	p := atos.New(atos.Silent())
	if err := p.Configure(context.Background(), raw, storeHost{e.st, "atos"}); err != nil {
		t.Fatalf("atos configure: %v", err)
	}
	e.gateways["atos"] = p
	return s
}

func (e *env) startAtos(t testing.TB, amount int64) *Started {
	t.Helper()
	st, err := e.svc.Start(context.Background(), StartRequest{Gateway: "atos", OrderID: nextOrder("A"), Amount: amount,
		Currency: "EUR", CustomerEmail: "zoe@example.com", SuccessURL: shopOK, FailureURL: shopKO})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return st
}

func (e *env) postAtos(t testing.TB, channel string, body string) reply {
	t.Helper()
	resp, err := e.client.Post(e.pub.URL+"/notify/atos/"+channel, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, location: resp.Header.Get("Location"), body: string(b)}
}

func stateOf(o sdk.Outcome) State {
	if o == sdk.OutcomeNotFound {
		return StateExpired
	}
	return State(o)
}

// TestAtosEndToEnd: payments through the real plugin and simulator with its
// faults (30% automatic responses dropped, 30% customers never returning,
// 10% automatic sent twice, half the run with every automatic response held
// until after the manual one), 10% of browsers posting the return twice,
// 5% abandoned on the payment page, 3% left pending by Sips (60), 8
// payments at a time. After one reconcile pass: every payment in the state
// the simulator decided, decided exactly once, none lost. Modes: Paypage
// POST, Paypage JSON, and POST with legacy s10 references.
func TestAtosEndToEnd(t *testing.T) {
	for _, d := range drivers {
		for _, mode := range []string{"post", "json", "s10"} {
			t.Run(d+"/"+mode, func(t *testing.T) {
				// The 2,000-payment run is on SQLite (the default store);
				// PostgreSQL and the JSON mode run fewer to keep the
				// package's tests fast on 2 cores.
				n := 2000
				switch {
				case mode == "json" || mode == "s10":
					n = 200
				case d == "postgres":
					n = 500
				}
				if testing.Short() {
					n /= 10
				}
				testAtosEndToEnd(t, d, mode, n)
			})
		}
	}
}

func testAtosEndToEnd(t *testing.T, driver, mode string, n int) {
	e := newEnvOn(t, driver, nil)
	faults := sim.Faults{DropAutomatic: 0.3, CustomerNeverReturns: 0.3, AutomaticTwice: 0.1}
	s := withAtos(t, e, faults, func(m map[string]any) {
		switch mode {
		case "json":
			m["mode"], m["interface_version"] = "json", "IR_WS_2.58"
		case "s10":
			// Legacy references: 6 digits unique per day.
			m["reference_style"] = "s10"
		}
	})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(n), 99))
	type plan struct {
		st       *Started
		abandon  bool
		outcome  string
		twice    bool
		returned bool
	}
	plans := make([]*plan, n)
	for i := range plans {
		p := &plan{twice: rng.IntN(100) < 10}
		switch r := rng.IntN(100); {
		case r < 5:
			p.abandon = true
		case r < 65:
			p.outcome = "accepted"
		case r < 85:
			p.outcome = "refused"
		case r < 92:
			p.outcome = "cancelled"
		case r < 95:
			p.outcome = "pending" // Sips 60: not final, Office says PENDING
		default:
			p.outcome = "3ds_failure"
		}
		plans[i] = p
	}
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	run := func(part []*plan) {
		work := make(chan *plan)
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := sim.NewBrowser()
				b.Client = &http.Client{Timeout: 30 * time.Second}
				for p := range work {
					st, err := e.svc.Start(ctx, StartRequest{Gateway: "atos", OrderID: nextOrder("E2E"), Amount: 2590,
						Currency: "EUR", SuccessURL: shopOK, FailureURL: shopKO})
					if err != nil {
						fail("start: %v", err)
						continue
					}
					p.st = st
					page, err := b.Open(ctx, st.Method, st.RedirectURL, st.Fields)
					if err != nil || page.Refused() {
						fail("%s open: %v %+v", st.Reference, err, page)
						continue
					}
					if p.abandon {
						continue
					}
					m, err := b.Choose(ctx, page, sim.Choice{Outcome: p.outcome})
					if err != nil {
						fail("%s choose: %v", st.Reference, err)
						continue
					}
					if !m.Returns {
						continue
					}
					p.returned = true
					for k := 0; k < 1+btoi(p.twice); k++ {
						resp, err := b.Return(ctx, m)
						if err != nil {
							fail("%s return: %v", st.Reference, err)
							break
						}
						resp.Body.Close()
						want, code := shopKO, 303
						switch p.outcome {
						case "accepted":
							want = shopOK
						case "pending":
							// Sips 60: still undecided, the neutral page.
							want, code = "", 200
						}
						if resp.StatusCode != code || resp.Header.Get("Location") != want {
							fail("%s (%s) return #%d: %d to %q, want %d %q", st.Reference, p.outcome, k, resp.StatusCode, resp.Header.Get("Location"), code, want)
						}
					}
				}
			}()
		}
		for _, p := range part {
			work <- p
		}
		close(work)
		wg.Wait()
	}
	t0 := time.Now()
	run(plans[:n/2])
	faults.AutomaticAfterManual = true // reordering: automatic after the manual return
	s.SetFaults(faults)
	run(plans[n/2:])
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := s.WaitDeliveries(wctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		t.FailNow()
	}
	sent := time.Since(t0)
	e.clock.Advance(21 * time.Minute)
	sum, err := e.svc.Reconcile(ctx, map[string]string{"gateway": "atos", "limit": "100000"})
	if err != nil {
		t.Fatalf("reconcile: %v (%s)", err, sum)
	}
	decided := s.Decided()
	byChannel := map[string]int{}
	lost, notOnce := 0, 0
	for _, p := range plans {
		d := e.get(t, p.st.Reference)
		if mode == "s10" && (len(d.Payment.ProviderReference) != 6 || d.Payment.TransactionDate == "") {
			t.Fatalf("%s: s10 reference %q date %q", p.st.Reference, d.Payment.ProviderReference, d.Payment.TransactionDate)
		}
		truth, ok := decided[d.Payment.ProviderReference]
		if !ok {
			t.Fatalf("%s unknown to the simulator", p.st.Reference)
		}
		if d.Payment.State != stateOf(truth) {
			lost++
			if lost < 5 {
				t.Errorf("%s: %s by %s, simulator says %s (plan %+v)", p.st.Reference, d.Payment.State, d.Payment.DecidedChannel, truth, *p)
			}
		}
		wantEvents := 1
		if truth == sdk.OutcomePending {
			wantEvents = 0 // still undecided: no event yet
		}
		if k := e.events(t, "payment.%", p.st.Reference); k != wantEvents {
			notOnce++
			if notOnce < 5 {
				t.Errorf("%s: %d events", p.st.Reference, k)
			}
		}
		byChannel[d.Payment.DecidedChannel]++
	}
	if lost != 0 || notOnce != 0 {
		t.Fatalf("%d payments not in the simulator's state, %d not decided exactly once", lost, notOnce)
	}
	st := s.Stats()
	t.Logf("%s/%s: %d payments in %v; sim: %d automatic sent, %d dropped, %d never returned; reconcile: %s; decided by channel: %v",
		driver, mode, n, sent.Round(time.Millisecond), st.AutomaticSent, st.AutomaticDropped, st.ManualNone, sum, byChannel)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestAtosHostile: forged and altered notifications through the real plugin:
// each gets its verdict and metric and changes nothing stored.
func TestAtosHostile(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testAtosHostile(t, d) })
	}
}

func testAtosHostile(t *testing.T, driver string) {
	e := newEnvOn(t, driver, func(c *Config) { c.FallbackReturnURL = "https://shop.example/return"; c.MaxBodyBytes = 16 << 10 })
	// The simulator sends no automatic response: the test delivers.
	s := withAtos(t, e, sim.Faults{DropAutomatic: 1}, nil)
	ctx := context.Background()
	b := sim.NewBrowser()
	pay := func(outcome string) (*Started, *sim.Manual) {
		st := e.startAtos(t, 2500)
		m, err := b.Pay(ctx, st.Method, st.RedirectURL, st.Fields, sim.Choice{Outcome: outcome})
		if err != nil || !m.Returns {
			t.Fatalf("pay: %v %+v", err, m)
		}
		return st, m
	}
	victim, vm := pay("accepted")
	other, om := pay("accepted")
	if r := e.postAtos(t, "automatic", om.Fields.Encode()); r.code != 200 {
		t.Fatalf("other: %d %s", r.code, r.body)
	}
	form := &sips.PostForm{Data: vm.Fields.Get("Data"), Seal: vm.Fields.Get("Seal"),
		InterfaceVersion: vm.Fields.Get("InterfaceVersion"), Encode: vm.Fields.Get("Encode")}
	plain, err := form.DecodedData()
	if err != nil {
		t.Fatal(err)
	}
	fields, err := sips.ParseData(plain)
	if err != nil {
		t.Fatal(err)
	}
	reseal := func(mod func(f map[string]string), mid, keyVersion, key string) string {
		f := map[string]string{}
		for k, v := range fields {
			f[k] = v
		}
		mod(f)
		p, err := sips.BuildPost(&sips.Account{MerchantID: mid, Keys: map[string]string{keyVersion: key}, Algorithm: sips.HMACSHA256},
			keyVersion, f, form.Encode, form.InterfaceVersion)
		if err != nil {
			t.Fatal(err)
		}
		return p.Values().Encode()
	}
	withSeal := func(seal string) string {
		v := vm.Fields
		c := map[string][]string{}
		for k, x := range v {
			c[k] = x
		}
		c["Seal"] = []string{seal}
		return url.Values(c).Encode()
	}
	cases := []struct {
		name    string
		body    string
		status  int
		verdict string
		metric  func() float64
		events  int
		manual  string
	}{
		{"forged seal", withSeal(strings.Repeat("0f", 32)), 400, "bad_seal",
			func() float64 { return e.rejectsOn("atos", "bad_seal") }, 0, "https://shop.example/return"},
		{"unknown keyVersion", reseal(func(f map[string]string) { f["keyVersion"] = "9" }, atosMID, "9", "an attacker's key of good length 123"),
			400, "unknown_key_version", func() float64 { return e.rejectsOn("atos", "unknown_key_version") }, 0, "https://shop.example/return"},
		{"unknown merchantId", reseal(func(f map[string]string) { f["merchantId"] = "011223344550000" }, "011223344550000", "1", atosKey1),
			400, "unknown_merchant", func() float64 { return e.rejectsOn("atos", "unknown_merchant") }, 0, "https://shop.example/return"},
		{"missing seal", url.Values{"Data": {vm.Fields.Get("Data")}, "InterfaceVersion": {form.InterfaceVersion}}.Encode(),
			400, "missing_field", func() float64 { return e.rejectsOn("atos", "missing_field") }, 0, "https://shop.example/return"},
		{"missing responseCode", reseal(func(f map[string]string) { delete(f, "responseCode") }, atosMID, "1", atosKey1),
			400, "missing_field", func() float64 { return e.rejectsOn("atos", "missing_field") }, 0, "https://shop.example/return"},
		{"oversized", "Data=" + strings.Repeat("x", 20000), 413, "too_large",
			func() float64 { return e.rejectsOn("atos", "too_large") }, 0, "https://shop.example/return"},
		{"non-UTF-8 Data", "Data=amount%3D2500%7CmerchantId%3D\xff\xfe&Seal=00&InterfaceVersion=HP_3.4", 400, "bad_encoding",
			func() float64 { return e.rejectsOn("atos", "bad_encoding") }, 0, "https://shop.example/return"},
		{"amount changed, resealed with the right key", reseal(func(f map[string]string) { f["amount"] = "1" }, atosMID, "1", atosKey1),
			200, "mismatch", func() float64 { return e.notificationsOn("atos", "automatic", "mismatch") }, 1, shopKO},
		{"replay of another payment's response", om.Fields.Encode(), 200, "duplicate",
			func() float64 { return e.notificationsOn("atos", "automatic", "duplicate") }, 0, shopOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(t)
			ev0 := e.events(t, "payment.%", "%")
			m0 := c.metric()
			r := e.postAtos(t, "automatic", c.body)
			if r.code != c.status {
				t.Fatalf("HTTP %d (%s), want %d", r.code, r.body, c.status)
			}
			if _, v := e.lastVerdict(t); v != c.verdict {
				t.Fatalf("verdict %q, want %q", v, c.verdict)
			}
			if got := c.metric(); got != m0+1 {
				t.Fatalf("metric %v -> %v", m0, got)
			}
			if e.snapshot(t) != before {
				t.Fatal("stored payments changed")
			}
			if got := e.events(t, "payment.%", "%"); got != ev0+c.events {
				t.Fatalf("events %d -> %d, want +%d", ev0, got, c.events)
			}
			if m := e.postAtos(t, "manual", c.body); m.code != 303 || m.location != c.manual {
				t.Fatalf("manual: %d to %q, want 303 to %q", m.code, m.location, c.manual)
			}
			if e.snapshot(t) != before {
				t.Fatal("stored payments changed by the manual response")
			}
		})
	}
	if p := e.get(t, victim.Reference).Payment; p.State != StatePending {
		t.Fatalf("victim %s", p.State)
	}
	// The genuine manual response decides; a refused outcome replayed
	// afterwards (validly sealed) is a conflict and changes nothing.
	if r := e.postAtos(t, "manual", vm.Fields.Encode()); r.code != 303 || r.location != shopOK {
		t.Fatalf("genuine manual: %d %q", r.code, r.location)
	}
	before := e.snapshot(t)
	refused := reseal(func(f map[string]string) { f["responseCode"] = "05"; f["acquirerResponseCode"] = "05" }, atosMID, "1", atosKey1)
	if r := e.postAtos(t, "automatic", refused); r.code != 200 {
		t.Fatalf("refused replay: %d", r.code)
	}
	if _, v := e.lastVerdict(t); v != "conflict" {
		t.Fatalf("refused replay verdict %q", v)
	}
	if e.snapshot(t) != before || e.events(t, "payment.conflict", victim.Reference) != 1 {
		t.Fatal("the refused replay changed the payment or raised no conflict")
	}
	if p := e.get(t, victim.Reference).Payment; p.State != StateAccepted || p.DecidedChannel != "manual" {
		t.Fatalf("victim %s by %s", p.State, p.DecidedChannel)
	}
	// Office agrees.
	e.clock.Advance(time.Hour)
	if _, ok := s.Transaction(other.ProviderReference); !ok {
		t.Fatal("simulator lost a transaction")
	}
}

func (e *env) rejectsOn(gw, code string) float64 {
	return testutil.ToFloat64(e.svc.m.rejects.WithLabelValues(gw, code))
}

func (e *env) notificationsOn(gw, channel, verdict string) float64 {
	return testutil.ToFloat64(e.svc.m.notifications.WithLabelValues(gw, channel, verdict))
}

// TestAtosStartRefusesPipe (issue 9, item 4): a shop-supplied value Sips
// cannot carry ('|' ends a Data field and would forge another one) is the
// shop's mistake: 400 naming the field, not 503 (which a shop retries
// forever), in both Paypage modes; nothing stored.
func TestAtosStartRefusesPipe(t *testing.T) {
	for _, mode := range []string{"post", "json"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, nil)
			withAtos(t, e, sim.Faults{}, func(m map[string]any) {
				if mode == "json" {
					m["mode"], m["interface_version"] = "json", "IR_WS_2.58"
				}
			})
			base := map[string]any{"gateway": "atos", "order_id": "P-1", "amount": 990, "currency": "EUR",
				"success_url": shopOK, "failure_url": shopKO}
			for _, c := range []struct {
				field string
				set   func(m map[string]any)
			}{
				{"customer_id", func(m map[string]any) { m["customer_id"] = "C42|amount=1" }},
				{"customer_email", func(m map[string]any) { m["customer_email"] = "a|b@example.org" }},
				{"extra.returnContext", func(m map[string]any) { m["extra"] = map[string]string{"returnContext": "ctx|x=1"} }},
			} {
				req := map[string]any{}
				for k, v := range base {
					req[k] = v
				}
				c.set(req)
				b, _ := json.Marshal(req)
				resp, err := e.client.Post(e.adm.URL+"/v1/payments", "application/json", strings.NewReader(string(b)))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), c.field) {
					t.Errorf("%s with '|': HTTP %d %s, want 400 naming the field", c.field, resp.StatusCode, body)
				}
			}
			if ps, err := e.svc.List(context.Background(), ListFilter{}); err != nil || len(ps) != 0 {
				t.Fatalf("refused starts stored %d payments (%v)", len(ps), err)
			}
		})
	}
}
