package payments

import (
	"context"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acquit/acquit/plugins/atos/sim"
)

// TestReconcileOfficeErrorConfined (issue 9, item 1): Sips Office answers a
// business error (40: function not supported) about one payment. The real
// Atos plugin and the real simulator, every response lost so that only
// Office can decide. The failing payment must not stop the pass: the
// others are decided in the same pass, the failing one is counted, asked
// again later with backoff, and moves to unknown (payment.unknown, once) at
// its deadline.
func TestReconcileOfficeErrorConfined(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testReconcileOfficeErrorConfined(t, d) })
	}
}

func testReconcileOfficeErrorConfined(t *testing.T, driver string) {
	e := newEnvOn(t, driver, nil)
	s := withAtos(t, e, sim.Faults{DropAutomatic: 1, CustomerNeverReturns: 1}, nil)
	ctx := context.Background()
	b := sim.NewBrowser()
	b.Client = &http.Client{Timeout: 30 * time.Second}
	var refs []string
	for range 4 {
		st := e.startAtos(t, 1250)
		page, err := b.Open(ctx, st.Method, st.RedirectURL, st.Fields)
		if err != nil || page.Refused() {
			t.Fatalf("open: %v %+v", err, page)
		}
		if _, err := b.Choose(ctx, page, sim.Choice{Outcome: "accepted"}); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, st.Reference)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.WaitDeliveries(wctx); err != nil {
		t.Fatal(err)
	}
	// The pass asks in reference order (same next check): the first one
	// asked gets the error, as in the report.
	sort.Strings(refs)
	bad := refs[0]
	s.SetFaults(sim.Faults{DropAutomatic: 1, CustomerNeverReturns: 1, OfficeErrors: map[string]string{bad: "40"}})

	e.clock.Advance(21 * time.Minute)
	sum, err := e.svc.Reconcile(ctx, map[string]string{"gateway": "atos"})
	if err != nil {
		t.Fatalf("one payment's Office error stopped the pass: %v (%s)", err, sum)
	}
	if sum != "checked 4: 3 accepted, 1 error" {
		t.Fatalf("summary %q", sum)
	}
	for _, ref := range refs[1:] {
		if p := e.get(t, ref).Payment; p.State != StateAccepted || p.DecidedChannel != "reconciliation" {
			t.Fatalf("%s: %s by %q", ref, p.State, p.DecidedChannel)
		}
	}
	d := e.get(t, bad)
	if d.Payment.State != StatePending || d.Payment.CheckCount != 1 {
		t.Fatalf("failing payment: %s, %d checks", d.Payment.State, d.Payment.CheckCount)
	}
	if want := e.clock.Now().Add(5 * time.Minute); !d.Payment.NextCheckAt.Equal(want.Truncate(time.Millisecond)) {
		t.Fatalf("failing payment's next check %v, want %v (backoff)", d.Payment.NextCheckAt, want)
	}
	if last := d.Timeline[len(d.Timeline)-1]; last.Verdict != VerdictError || last.Channel != "reconciliation" {
		t.Fatalf("timeline %+v", d.Timeline)
	}
	if got := testutil.ToFloat64(e.svc.m.reconcile.WithLabelValues("error")); got != 1 {
		t.Fatalf("reconcile_results_total{result=error} = %v", got)
	}
	// Not first again on the next pass: it waits for its backoff.
	if sum, err := e.svc.Reconcile(ctx, nil); err != nil || sum != "checked 0" {
		t.Fatalf("second pass: %q %v", sum, err)
	}
	// Office keeps failing for it: unknown at the deadline, once.
	for i := 0; i < 40 && e.get(t, bad).Payment.State == StatePending; i++ {
		e.clock.Advance(e.get(t, bad).Payment.NextCheckAt.Sub(e.clock.Now()))
		if sum, err := e.svc.Reconcile(ctx, nil); err != nil {
			t.Fatalf("pass: %v (%s)", err, sum)
		}
	}
	p := e.get(t, bad).Payment
	if p.State != StateUnknown || e.events(t, "payment.unknown", bad) != 1 {
		t.Fatalf("after the deadline: %s, %d payment.unknown", p.State, e.events(t, "payment.unknown", bad))
	}
	// Office answers again: the payment is decided.
	s.SetFaults(sim.Faults{})
	e.clock.Advance(p.NextCheckAt.Sub(e.clock.Now()))
	if sum, err := e.svc.Reconcile(ctx, nil); err != nil || sum != "checked 1: 1 accepted" {
		t.Fatalf("after Office recovered: %q %v", sum, err)
	}
}

// TestReconcileStopsWhenProviderDown: errors in a row (Office down, HTTP
// 503) stop the pass after maxConsecutiveErrors payments, each of which got
// its backoff; the others are untouched.
func TestReconcileStopsWhenProviderDown(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for range 5 {
		e.start(t, 100)
	}
	e.clock.Advance(21 * time.Minute)
	e.sim.officeDown.Store(true)
	sum, err := e.svc.Reconcile(ctx, nil)
	if err == nil || sum != "checked 3: 3 error" {
		t.Fatalf("office down: %q %v", sum, err)
	}
	ps, err := e.svc.List(ctx, ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	asked := 0
	for _, p := range ps {
		if p.State != StatePending {
			t.Fatalf("%s: %s", p.Reference, p.State)
		}
		asked += int(p.CheckCount)
	}
	if asked != 3 {
		t.Fatalf("%d payments asked, want 3", asked)
	}
	// The two left are first on the next pass.
	e.sim.officeDown.Store(false)
	if sum, err := e.svc.Reconcile(ctx, nil); err != nil || sum != "checked 2: 2 expired" {
		t.Fatalf("next pass: %q %v", sum, err)
	}
}

// TestUnknownAtDeadline (issue 9, item 3): a payment Office keeps calling
// pending is checked at its final deadline itself, so payment.unknown is
// raised at the deadline, not at the first backoff step after it. The
// schedule is played by advancing the clock to each next check.
func TestUnknownAtDeadline(t *testing.T) {
	e := newEnv(t, nil) // ReconcileAfter 20m, RecheckEvery 5m, FinalDeadline 24h
	ctx := context.Background()
	st := e.start(t, 300)
	e.pay(t, st) // still on the paypage: Office answers PENDING
	created := e.get(t, st.Reference).Payment.CreatedAt
	for i := 0; i < 40 && e.get(t, st.Reference).Payment.State == StatePending; i++ {
		next := e.get(t, st.Reference).Payment.NextCheckAt
		e.clock.Advance(next.Sub(e.clock.Now()))
		if _, err := e.svc.Reconcile(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	p := e.get(t, st.Reference).Payment
	if p.State != StateUnknown || e.events(t, "payment.unknown", st.Reference) != 1 {
		t.Fatalf("state %s, %d payment.unknown", p.State, e.events(t, "payment.unknown", st.Reference))
	}
	if late := p.UpdatedAt.Sub(created.Add(24 * time.Hour)); late != 0 {
		t.Fatalf("payment.unknown raised %v after the deadline", late)
	}
}
