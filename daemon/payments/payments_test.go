package payments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/pluginhost"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
)

func TestReferenceShape(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := NewReference(now), NewReference(now.Add(time.Millisecond))
	for _, r := range []string{a, b} {
		if len(r) != 26 || !ValidReference(r) {
			t.Fatalf("bad reference %q", r)
		}
	}
	if !(a < b) {
		t.Fatalf("references not sortable by time: %s >= %s", a, b)
	}
	if NewReference(now) == a {
		t.Fatal("two references for the same millisecond are equal")
	}
}

func TestStartValidation(t *testing.T) {
	e := newEnv(t, nil)
	ok := StartRequest{OrderID: "O1", Amount: 1000, Currency: "EUR", SuccessURL: shopOK, FailureURL: shopKO}
	cases := []struct {
		name  string
		mod   func(*StartRequest)
		field string
	}{
		{"zero amount", func(r *StartRequest) { r.Amount = 0 }, "amount"},
		{"negative amount", func(r *StartRequest) { r.Amount = -5 }, "amount"},
		{"currency numeric", func(r *StartRequest) { r.Currency = "978" }, "currency"},
		{"currency long", func(r *StartRequest) { r.Currency = "EURO" }, "currency"},
		{"no order id", func(r *StartRequest) { r.OrderID = "" }, "order_id"},
		{"order id injection", func(r *StartRequest) { r.OrderID = "O1|amount=1" }, "order_id"},
		{"javascript url", func(r *StartRequest) { r.SuccessURL = "javascript:alert(1)" }, "success_url"},
		{"relative url", func(r *StartRequest) { r.FailureURL = "/ko" }, "failure_url"},
		{"url with credentials", func(r *StartRequest) { r.SuccessURL = "https://u:p@shop.example/" }, "success_url"},
		{"unknown gateway", func(r *StartRequest) { r.Gateway = "nope" }, "gateway"},
		{"bad gateway name", func(r *StartRequest) { r.Gateway = "../x" }, "gateway"},
		{"bad email", func(r *StartRequest) { r.CustomerEmail = "a b@c" }, "customer_email"},
	}
	before := e.snapshot(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ok
			c.mod(&r)
			_, err := e.svc.Start(context.Background(), r)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field {
				t.Fatalf("got %v, want a ValidationError on %s", err, c.field)
			}
		})
	}
	if e.snapshot(t) != before {
		t.Fatal("an invalid start stored something")
	}
	st, err := e.svc.Start(context.Background(), ok)
	if err != nil {
		t.Fatal(err)
	}
	d := e.get(t, st.Reference)
	if d.Payment.State != StatePending || d.Payment.Amount != 1000 {
		t.Fatalf("stored %+v", d.Payment)
	}
	if !strings.Contains(st.HTML, `action="`+st.RedirectURL+`"`) || !strings.Contains(st.HTML, `name="Seal"`) {
		t.Fatalf("page does not post the fields:\n%s", st.HTML)
	}
}

func TestPageEscapes(t *testing.T) {
	page, err := renderPage("POST", `https://pay.example/"><script>x</script>`, map[string]string{
		`a"b`: `"><script>alert(1)</script>`,
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page, "<script>") {
		t.Fatalf("unescaped: %s", page)
	}
}

// TestDeliveryOrders: every order of the two responses, duplicates, one or
// the other missing: the first decides, exactly one event, the browser is
// always redirected to the right page.
func TestDeliveryOrders(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testDeliveryOrders(t, d) })
	}
}

func testDeliveryOrders(t *testing.T, driver string) {
	e := newEnvOn(t, driver, nil)
	cases := []struct {
		name   string
		code   string
		seq    []string
		state  State
		first  string
		target string
	}{
		{"auto then manual", "00", []string{"automatic", "manual"}, StateAccepted, "automatic", shopOK},
		{"manual then auto", "00", []string{"manual", "automatic"}, StateAccepted, "manual", shopOK},
		{"automatic dropped", "00", []string{"manual"}, StateAccepted, "manual", shopOK},
		{"never returns", "00", []string{"automatic"}, StateAccepted, "automatic", ""},
		{"everything twice", "00", []string{"automatic", "manual", "automatic", "manual"}, StateAccepted, "automatic", shopOK},
		{"refused", "05", []string{"automatic", "manual"}, StateRefused, "automatic", shopKO},
		{"refused manual first", "05", []string{"manual", "manual", "automatic"}, StateRefused, "manual", shopKO},
		{"cancelled", "17", []string{"manual", "automatic"}, StateCancelled, "manual", shopKO},
		{"3ds failure", "75", []string{"automatic", "manual"}, StateRefused, "automatic", shopKO},
		{"technical failure", "63", []string{"automatic"}, StateFailed, "automatic", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := e.start(t, 4990)
			e.pay(t, st)
			form := e.sim.decide(t, st.Reference, c.code)
			for i, ch := range c.seq {
				r := e.post(t, ch, form)
				switch ch {
				case "automatic":
					if r.code != 200 {
						t.Fatalf("automatic #%d: HTTP %d %s", i, r.code, r.body)
					}
				case "manual":
					if r.code != 303 || r.location != c.target {
						t.Fatalf("manual #%d: HTTP %d to %q, want 303 to %q", i, r.code, r.location, c.target)
					}
				}
			}
			d := e.get(t, st.Reference)
			if d.Payment.State != c.state || d.Payment.DecidedChannel != c.first || d.Payment.ResponseCode != c.code {
				t.Fatalf("payment %s by %s (%s), want %s by %s", d.Payment.State, d.Payment.DecidedChannel, d.Payment.ResponseCode, c.state, c.first)
			}
			if n := e.events(t, "payment."+string(c.state), st.Reference); n != 1 {
				t.Fatalf("%d payment.%s events, want 1", n, c.state)
			}
			if n := e.events(t, "payment.%", st.Reference); n != 1 {
				t.Fatalf("%d payment events in all, want 1", n)
			}
			if len(d.Timeline) != len(c.seq) {
				t.Fatalf("timeline has %d rows, want %d", len(d.Timeline), len(c.seq))
			}
			for i, r := range d.Timeline {
				want := VerdictDuplicate
				if i == 0 {
					want = VerdictDecided
				}
				if r.Verdict != want || r.RawID == 0 || r.Channel != c.seq[i] {
					t.Fatalf("timeline[%d] = %+v, want %s on %s", i, r, want, c.seq[i])
				}
			}
		})
	}
	if got := e.notifications("automatic", "decided") + e.notifications("manual", "decided"); got != float64(len(cases)) {
		t.Fatalf("decided metric %v, want %d", got, len(cases))
	}
}

func TestNotFinalThenFinal(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testNotFinalThenFinal(t, d) })
	}
}

func testNotFinalThenFinal(t *testing.T, driver string) {
	e := newEnvOn(t, driver, nil)
	st := e.start(t, 100)
	e.pay(t, st)
	created := e.get(t, st.Reference).Payment
	r := e.post(t, "automatic", e.sim.decide(t, st.Reference, "60"))
	if r.code != 200 {
		t.Fatalf("HTTP %d", r.code)
	}
	if r := e.post(t, "manual", e.sim.decide(t, st.Reference, "60")); r.code != 200 || !strings.Contains(r.body, "being confirmed") {
		t.Fatalf("manual on pending: %d %q", r.code, r.location)
	}
	p := e.get(t, st.Reference).Payment
	if p.State != StatePending || !p.NextCheckAt.Before(created.NextCheckAt) {
		t.Fatalf("after 60: %s next check %v (was %v)", p.State, p.NextCheckAt, created.NextCheckAt)
	}
	if _, v := e.lastVerdict(t); v != string(VerdictNotFinal) {
		t.Fatalf("verdict %q", v)
	}
	if e.events(t, "%", st.Reference) != 0 {
		t.Fatal("a not-final response raised an event")
	}
	e.post(t, "automatic", e.sim.decide(t, st.Reference, "00"))
	if p := e.get(t, st.Reference).Payment; p.State != StateAccepted {
		t.Fatalf("state %s", p.State)
	}
}

// TestConflict: a refused outcome replayed after acceptance (validly sealed)
// raises payment.conflict and changes nothing; the browser still goes to
// the success page since the payment went through.
func TestConflict(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testConflict(t, d) })
	}
}

func testConflict(t *testing.T, driver string) {
	e := newEnvOn(t, driver, nil)
	st := e.start(t, 100)
	e.pay(t, st)
	e.post(t, "automatic", e.sim.decide(t, st.Reference, "00"))
	before := e.snapshot(t)
	refused := e.sim.decide(t, st.Reference, "05")
	if r := e.post(t, "automatic", refused); r.code != 200 {
		t.Fatalf("HTTP %d", r.code)
	}
	if _, v := e.lastVerdict(t); v != string(VerdictConflict) {
		t.Fatalf("verdict %q", v)
	}
	if r := e.post(t, "manual", refused); r.code != 303 || r.location != shopOK {
		t.Fatalf("manual: %d %q", r.code, r.location)
	}
	if e.snapshot(t) != before {
		t.Fatal("a conflicting response changed the payment")
	}
	// Issue 9, item 6: one payment.conflict per distinct contradicting
	// outcome, not one per response.
	if n := e.events(t, "payment.conflict", st.Reference); n != 1 {
		t.Fatalf("%d conflict events for one contradicting outcome, want 1", n)
	}
	if e.notifications("automatic", "conflict") != 1 || e.notifications("manual", "conflict") != 1 {
		t.Fatal("conflict metric not counted")
	}
	// The same contradiction 20 times at once (a race): still one event.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.post(t, []string{"automatic", "manual"}[i%2], refused)
		}()
	}
	wg.Wait()
	if n := e.events(t, "payment.conflict", st.Reference); n != 1 {
		t.Fatalf("%d conflict events after 22 identical contradictions, want 1", n)
	}
	// Another contradicting outcome is another conflict.
	if r := e.post(t, "automatic", e.sim.decide(t, st.Reference, "17")); r.code != 200 {
		t.Fatalf("HTTP %d", r.code)
	}
	if n := e.events(t, "payment.conflict", st.Reference); n != 2 {
		t.Fatalf("%d conflict events after a second contradicting outcome, want 2", n)
	}
	if d := e.get(t, st.Reference); len(d.Timeline) != 24 {
		t.Fatalf("timeline has %d responses, want every one of the 24", len(d.Timeline))
	}
	if e.snapshot(t) != before {
		t.Fatal("conflicting responses changed the payment")
	}
}

// TestHostileInputs: each bad input gets its verdict, its metric and changes
// nothing stored.
func TestHostileInputs(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testHostileInputs(t, d) })
	}
}

func testHostileInputs(t *testing.T, driver string) {
	e := newEnvOn(t, driver, func(c *Config) { c.MaxBodyBytes = 4096; c.FallbackReturnURL = "https://shop.example/return" })
	victim := e.start(t, 2500)
	e.pay(t, victim)
	other := e.start(t, 9900)
	e.pay(t, other)
	otherAccepted := e.sim.decide(t, other.Reference, "00")
	e.post(t, "automatic", otherAccepted)
	good := e.sim.decide(t, victim.Reference, "00")
	f, _ := decodeData(good.Get("Data"))
	resealed := func(mod func(map[string]string), key string) url.Values {
		g := map[string]string{}
		for k, v := range f {
			g[k] = v
		}
		mod(g)
		return e.sim.sealed(g, key)
	}
	cases := []struct {
		name       string
		body       []byte
		status     int
		verdict    string // raw verdict code
		metric     func() float64
		events     int    // payment.* events added
		manualGoes string // where the browser goes with the same body
	}{
		{"forged seal", []byte(url.Values{"Data": {good.Get("Data")}, "Seal": {strings.Repeat("ab", 32)}}.Encode()),
			400, "bad_seal", func() float64 { return e.rejects("bad_seal") }, 0, "https://shop.example/return"},
		{"amount changed, old seal", []byte(url.Values{"Data": {strings.Replace(good.Get("Data"), "amount=2500", "amount=1", 1)}, "Seal": {good.Get("Seal")}}.Encode()),
			400, "bad_seal", func() float64 { return e.rejects("bad_seal") }, 0, "https://shop.example/return"},
		{"unknown keyVersion", []byte(resealed(func(g map[string]string) { g["keyVersion"] = "9" }, "guess").Encode()),
			400, "unknown_key_version", func() float64 { return e.rejects("unknown_key_version") }, 0, "https://shop.example/return"},
		{"unknown merchantId", []byte(resealed(func(g map[string]string) { g["merchantId"] = "999" }, simKeyV1).Encode()),
			400, "unknown_merchant", func() float64 { return e.rejects("unknown_merchant") }, 0, "https://shop.example/return"},
		{"missing seal", []byte(url.Values{"Data": {good.Get("Data")}}.Encode()),
			400, "missing_field", func() float64 { return e.rejects("missing_field") }, 0, "https://shop.example/return"},
		{"missing responseCode", []byte(resealed(func(g map[string]string) { delete(g, "responseCode") }, simKeyV1).Encode()),
			400, "missing_field", func() float64 { return e.rejects("missing_field") }, 0, "https://shop.example/return"},
		{"oversized body", []byte("Data=" + strings.Repeat("a", 5000)),
			413, "too_large", func() float64 { return e.rejects("too_large") }, 0, "https://shop.example/return"},
		{"non-UTF-8 Data", []byte("Data=amount%3D1\xff\xfe|x&Seal=00"),
			400, "bad_encoding", func() float64 { return e.rejects("bad_encoding") }, 0, "https://shop.example/return"},
		{"not a form", []byte("%zz%%"),
			400, "malformed", func() float64 { return e.rejects("malformed") }, 0, "https://shop.example/return"},
		{"amount changed, resealed with the right key", []byte(resealed(func(g map[string]string) { g["amount"] = "1" }, simKeyV1).Encode()),
			200, "mismatch", func() float64 { return e.notifications("automatic", "mismatch") }, 1, shopKO},
		{"currency changed, resealed", []byte(resealed(func(g map[string]string) { g["currencyCode"] = "840" }, simKeyV1).Encode()),
			200, "mismatch", func() float64 { return e.notifications("automatic", "mismatch") }, 1, shopKO},
		{"replay of another payment's response", []byte(otherAccepted.Encode()),
			200, "duplicate", func() float64 { return e.notifications("automatic", "duplicate") }, 0, shopOK},
		{"unknown reference", []byte(resealed(func(g map[string]string) { g["transactionReference"] = "ZZZZ" }, simKeyV1).Encode()),
			200, "unknown_reference", func() float64 { return e.notifications("automatic", "unknown_reference") }, 0, "https://shop.example/return"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(t)
			evBefore := e.events(t, "payment.%", "%")
			m0 := c.metric()
			r := e.postBody(t, "automatic", c.body)
			if r.code != c.status {
				t.Fatalf("HTTP %d (%s), want %d", r.code, r.body, c.status)
			}
			rawID, v := e.lastVerdict(t)
			if v != c.verdict {
				t.Fatalf("verdict %q, want %q", v, c.verdict)
			}
			raw, _ := e.st.GetRaw(context.Background(), rawID)
			if c.name != "oversized body" && string(raw.Body) != string(c.body) {
				t.Fatal("raw body not stored as received")
			}
			if got := c.metric(); got != m0+1 {
				t.Fatalf("metric %v -> %v", m0, got)
			}
			if e.snapshot(t) != before {
				t.Fatal("stored payments changed")
			}
			if got := e.events(t, "payment.%", "%"); got != evBefore+c.events {
				t.Fatalf("events %d -> %d, want +%d", evBefore, got, c.events)
			}
			m := e.postBody(t, "manual", c.body)
			if m.code != 303 || m.location != c.manualGoes {
				t.Fatalf("manual: HTTP %d to %q, want 303 to %q", m.code, m.location, c.manualGoes)
			}
			if e.snapshot(t) != before {
				t.Fatal("stored payments changed by the manual response")
			}
		})
	}
	if p := e.get(t, victim.Reference).Payment; p.State != StatePending {
		t.Fatalf("victim %s", p.State)
	}
	// The genuine response still decides afterwards.
	e.post(t, "automatic", good)
	if p := e.get(t, victim.Reference).Payment; p.State != StateAccepted {
		t.Fatalf("victim %s after the genuine response", p.State)
	}
}

func TestManualWithoutFallbackShowsNeutralPage(t *testing.T) {
	e := newEnv(t, nil)
	r := e.postBody(t, "manual", []byte("Data=x&Seal=y"))
	if r.code != 200 || !strings.Contains(r.body, "being confirmed") {
		t.Fatalf("HTTP %d %q", r.code, r.body)
	}
}

// TestManualNotFinalShowsNeutralPage (issue 9, item 7): a customer
// returning with a non-final code (Sips 60: pending) must not be sent to the
// failure URL while the payment is still pending: the neutral "being
// confirmed" page, even with a fallback URL configured. Once decided, the
// usual URL.
func TestManualNotFinalShowsNeutralPage(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.FallbackReturnURL = "https://shop.example/return" })
	st := e.start(t, 100)
	e.pay(t, st)
	r := e.post(t, "manual", e.sim.decide(t, st.Reference, "60"))
	if r.code != 200 || r.location != "" || !strings.Contains(r.body, "being confirmed") {
		t.Fatalf("manual 60: HTTP %d to %q", r.code, r.location)
	}
	if p := e.get(t, st.Reference).Payment; p.State != StatePending {
		t.Fatalf("state %s", p.State)
	}
	if r := e.post(t, "manual", e.sim.decide(t, st.Reference, "00")); r.code != 303 || r.location != shopOK {
		t.Fatalf("manual 00: %d %q", r.code, r.location)
	}
}

// TestStoreDown: when the database is gone, automatic answers 500 (so the
// provider retries) and the customer is still redirected, never an error page.
func TestStoreDown(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testStoreDown(t, d) })
	}
}

func testStoreDown(t *testing.T, driver string) {
	e := newEnvOn(t, driver, func(c *Config) { c.FallbackReturnURL = "https://shop.example/return" })
	st := e.start(t, 100)
	e.pay(t, st)
	form := e.sim.decide(t, st.Reference, "00")
	e.st.Close()
	if r := e.post(t, "automatic", form); r.code != 500 {
		t.Fatalf("automatic with the store down: HTTP %d", r.code)
	}
	if r := e.post(t, "manual", form); r.code != 303 || r.location != "https://shop.example/return" {
		t.Fatalf("manual with the store down: %d %q", r.code, r.location)
	}
	if e.notifications("automatic", "error") != 1 {
		t.Fatal("error metric not counted")
	}
}

// TestConcurrentResponses: automatic and manual (and a duplicate) for the
// same payment at the same time decide it once.
func TestConcurrentResponses(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testConcurrentResponses(t, d) })
	}
}

func testConcurrentResponses(t *testing.T, driver string) {
	e := newEnvOn(t, driver, nil)
	const n = 40
	sts := make([]*Started, n)
	forms := make([]url.Values, n)
	for i := range sts {
		sts[i] = e.start(t, int64(100+i))
		e.pay(t, sts[i])
		code := "00"
		if i%3 == 0 {
			code = "05"
		}
		forms[i] = e.sim.decide(t, sts[i].Reference, code)
	}
	var wg sync.WaitGroup
	for i := range sts {
		for _, ch := range []string{"automatic", "manual", "automatic", "manual"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.post(t, ch, forms[i])
			}()
		}
	}
	wg.Wait()
	for i, st := range sts {
		d := e.get(t, st.Reference)
		want := StateAccepted
		if i%3 == 0 {
			want = StateRefused
		}
		if d.Payment.State != want {
			t.Fatalf("%s: %s, want %s", st.Reference, d.Payment.State, want)
		}
		if got := e.events(t, "payment.%", st.Reference); got != 1 {
			t.Fatalf("%s: %d events", st.Reference, got)
		}
		decided := 0
		for _, r := range d.Timeline {
			if r.Verdict == VerdictDecided {
				decided++
			}
		}
		if decided != 1 || len(d.Timeline) != 4 {
			t.Fatalf("%s: %d decided among %d responses", st.Reference, decided, len(d.Timeline))
		}
	}
}

func TestReconcile(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testReconcile(t, d) })
	}
}

func testReconcile(t *testing.T, driver string) {
	e := newEnvOn(t, driver, nil)
	ctx := context.Background()
	abandoned := e.start(t, 100) // never reaches the paypage
	silent := e.start(t, 200)    // pays, both responses lost
	e.pay(t, silent)
	e.sim.decide(t, silent.Reference, "00")
	lingering := e.start(t, 300) // still on the paypage
	e.pay(t, lingering)
	decided := e.start(t, 400)
	e.pay(t, decided)
	e.post(t, "automatic", e.sim.decide(t, decided.Reference, "05"))

	// Too early: nothing is due.
	if sum, err := e.svc.Reconcile(ctx, nil); err != nil || sum != "checked 0" || e.sim.queries.Load() != 0 {
		t.Fatalf("early pass: %q %v (%d queries)", sum, err, e.sim.queries.Load())
	}
	// Office down: the pass stops after maxConsecutiveErrors failures,
	// nothing decided, each payment asked is asked again after its backoff.
	e.clock.Advance(21 * time.Minute)
	e.sim.officeDown.Store(true)
	if sum, err := e.svc.Reconcile(ctx, nil); err == nil || !errors.Is(err, ErrUnavailable) || sum != "checked 3: 3 error" {
		t.Fatalf("office down: %q %v", sum, err)
	}
	for _, st := range []*Started{abandoned, silent, lingering} {
		if p := e.get(t, st.Reference).Payment; p.State != StatePending {
			t.Fatalf("office down decided %s: %s", st.Reference, p.State)
		}
	}
	e.sim.officeDown.Store(false)
	e.clock.Advance(6 * time.Minute)
	// Office answers with a bad seal: recorded as rejected, nothing decided,
	// asked again later.
	e.sim.officeForge.Store(true)
	if sum, err := e.svc.Reconcile(ctx, nil); err != nil || sum != "checked 3: 3 rejected" {
		t.Fatalf("forged office answers: %q %v", sum, err)
	}
	if got := e.rejects("bad_seal"); got != 3 {
		t.Fatalf("bad_seal rejects %v", got)
	}
	if rawID, v := e.lastVerdict(t); v != "bad_seal" {
		t.Fatalf("office answer %d verdict %q", rawID, v)
	} else if raw, _ := e.st.GetRaw(ctx, rawID); len(raw.Verdicts) != 1 || raw.Verdicts[0].Verified {
		t.Fatalf("office answer verdicts %+v", raw.Verdicts)
	}
	e.sim.officeForge.Store(false)
	e.clock.Advance(11 * time.Minute)
	sum, err := e.svc.Reconcile(ctx, nil)
	if err != nil || sum != "checked 3: 1 accepted, 1 expired, 1 still pending" {
		t.Fatalf("pass: %q %v", sum, err)
	}
	for ref, want := range map[string]State{abandoned.Reference: StateExpired, silent.Reference: StateAccepted,
		lingering.Reference: StatePending, decided.Reference: StateRefused} {
		p := e.get(t, ref).Payment
		if p.State != want {
			t.Fatalf("%s: %s, want %s", ref, p.State, want)
		}
	}
	if p := e.get(t, silent.Reference).Payment; p.DecidedChannel != "reconciliation" {
		t.Fatalf("decided by %s", p.DecidedChannel)
	}
	if e.events(t, "payment.expired", abandoned.Reference) != 1 || e.events(t, "payment.accepted", silent.Reference) != 1 {
		t.Fatal("reconciliation events missing")
	}
	// Backoff: the lingering payment is not asked again at once.
	if sum, _ := e.svc.Reconcile(ctx, nil); sum != "checked 0" {
		t.Fatalf("immediate second pass: %q", sum)
	}
	// Past the final deadline: unknown, once.
	for i := 0; i < 12; i++ {
		e.clock.Advance(3 * time.Hour)
		if _, err := e.svc.Reconcile(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	p := e.get(t, lingering.Reference).Payment
	if p.State != StateUnknown || e.events(t, "payment.unknown", lingering.Reference) != 1 {
		t.Fatalf("after the deadline: %s, %d unknown events", p.State, e.events(t, "payment.unknown", lingering.Reference))
	}
	if p.CheckCount < 3 {
		t.Fatalf("check count %d", p.CheckCount)
	}
	// A late answer still decides an unknown payment.
	e.sim.decide(t, lingering.Reference, "00")
	e.clock.Advance(24 * time.Hour)
	if sum, err := e.svc.Reconcile(ctx, nil); err != nil || sum != "checked 1: 1 accepted" {
		t.Fatalf("late pass: %q %v", sum, err)
	}
	if e.events(t, "payment.accepted", lingering.Reference) != 1 {
		t.Fatal("late acceptance not emitted")
	}
	if got := testutil.ToFloat64(e.svc.m.pending); got != 0 {
		t.Fatalf("pending gauge %v, want 0", got)
	}
	for res, want := range map[string]float64{"accepted": 2, "expired": 1, "error": 3} {
		if got := testutil.ToFloat64(e.svc.m.reconcile.WithLabelValues(res)); got != want {
			t.Errorf("reconcile_results_total{result=%q} = %v, want %v", res, got, want)
		}
	}
	if got := testutil.ToFloat64(e.svc.m.transitions.WithLabelValues("unknown", "reconciliation")); got != 1 {
		t.Errorf("transitions to unknown %v", got)
	}
}

func TestMigrationsAreNumbered(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		migs, err := store.CollectMigrations(driver, []store.MigrationSet{Migrations()}) // refuses numbers outside 100-199
		if err != nil || len(migs) == 0 {
			t.Fatalf("%s: %d migrations: %v", driver, len(migs), err)
		}
	}
	_ = os.Getenv
	_ = sdk.ChannelManual
}

// TestManualWhenStoreSlow: the writer is held by a long transaction; the
// returning customer is still redirected (to the fallback URL: nothing about
// the payment can be read) once ManualTimeout has passed, and the payment is
// decided by the automatic response once the store is free again.
func TestManualWhenStoreSlow(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.FallbackReturnURL = "https://shop.example/return"
		c.ManualTimeout = 300 * time.Millisecond
	})
	st := e.start(t, 100)
	e.pay(t, st)
	form := e.sim.decide(t, st.Reference, "00")
	release := make(chan struct{})
	held := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- e.st.InTx(context.Background(), func(tx store.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	r := e.post(t, "manual", form)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r.code != 303 || r.location != "https://shop.example/return" {
		t.Fatalf("manual with the store busy: %d %q", r.code, r.location)
	}
	if p := e.get(t, st.Reference).Payment; p.State != StatePending {
		t.Fatalf("state %s", p.State)
	}
	if r := e.post(t, "automatic", form); r.code != 200 {
		t.Fatalf("automatic: %d", r.code)
	}
	if p := e.get(t, st.Reference).Payment; p.State != StateAccepted {
		t.Fatalf("state %s", p.State)
	}
}

func TestPublicRouting(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/notify/sim/automatic", 405},
		{"POST", "/notify/sim/other", 404},
		{"POST", "/notify/UPPER/automatic", 404},
		{"POST", "/notify/nosuch/automatic", 404}, // issue 9 item 5: not a bank's input, not stored
		{"POST", "/elsewhere", 404},
	} {
		req, _ := http.NewRequest(c.method, e.pub.URL+c.path, strings.NewReader("Data=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
	}
	var raws int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM raw_inputs`).Scan(&raws); err != nil || raws != 0 {
		t.Fatalf("%d raw inputs stored for routes that name no gateway (%v)", raws, err)
	}
	if got := testutil.ToFloat64(e.svc.m.rejects.WithLabelValues("", "unknown_gateway")); got != 1 {
		t.Fatalf("unknown_gateway rejects %v", got)
	}
	// The manual URL of an unknown gateway: the neutral page, nothing stored.
	{
		resp, err := e.client.Post(e.pub.URL+"/notify/nosuch/manual", "application/x-www-form-urlencoded", strings.NewReader("Data=x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("manual of an unknown gateway: %d", resp.StatusCode)
		}
	}
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM raw_inputs`).Scan(&raws); err != nil || raws != 0 {
		t.Fatalf("%d raw inputs stored after the unknown gateway's manual URL (%v)", raws, err)
	}
	// The plugin host's errors for a name that is no gateway count too.
	for _, err := range []error{pluginhost.ErrUnknownPlugin, pluginhost.ErrWrongKind, ErrUnknownGateway} {
		if !isUnknownGateway(fmt.Errorf("x: %w", err)) {
			t.Errorf("%v not recognised as an unknown gateway", err)
		}
	}
}

// TestBehindPublicListener: mounted in the real public listener, whose own
// body limit (http.MaxBytesReader) is smaller than ours, a chunked oversized
// body is stored truncated and rejected as too_large.
func TestBehindPublicListener(t *testing.T) {
	e := newEnv(t, nil)
	srv := httpapi.NewPublicServer(httpapi.PublicOptions{MaxBodyBytes: 1024}, e.svc.PublicHandler(), zerolog.Nop(), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	body := io.MultiReader(strings.NewReader("Data="), strings.NewReader(strings.Repeat("a", 5000)))
	resp, err := e.client.Post("http://"+ln.Addr().String()+"/notify/sim/automatic", "application/x-www-form-urlencoded", body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	rawID, v := e.lastVerdict(t)
	if v != "too_large" {
		t.Fatalf("verdict %q", v)
	}
	raw, err := e.st.GetRaw(context.Background(), rawID)
	if err != nil || len(raw.Body) != 1024 {
		t.Fatalf("raw body %d bytes, %v", len(raw.Body), err)
	}
}
