package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/atos/sim"
)

// TestPaymentsEndToEnd2000 runs 2,000 card payments (300 with -short)
// through the real daemon and atos plugin against the Sips simulator, in
// three batches of faults: (1) 30% of automatic responses dropped, 30% of
// customers never returning, 10% of automatic responses sent twice;
// (2) every automatic response held until after the manual one; (3)
// automatic responses 300ms late, with the same drop/never-return/twice
// shares. On top, 5% of returning customers double-submit the manual form
// (two concurrent POSTs), 5% post it again after every batch is done, and
// 3% abandon on the payment page. Every payment must end as the simulator
// decided, with exactly one decision event, and the payment hook must have
// received every decision event.
func TestPaymentsEndToEnd2000(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{}, nil)
	e.start(c)
	start := time.Now()
	batches := []struct {
		name   string
		share  float64
		faults sim.Faults
	}{
		{"drop 30%, never return 30%, twice 10%", 0.5, sim.Faults{DropAutomatic: 0.3, CustomerNeverReturns: 0.3, AutomaticTwice: 0.1}},
		{"automatic after manual, twice 10%, never return 10%", 0.25, sim.Faults{AutomaticAfterManual: true, AutomaticTwice: 0.1, CustomerNeverReturns: 0.1}},
		{"automatic 300ms late, drop 30%, never return 30%, twice 10%", 0.25, sim.Faults{AutomaticDelay: 300 * time.Millisecond, DropAutomatic: 0.3, CustomerNeverReturns: 0.3, AutomaticTwice: 0.1}},
	}
	rd := &redirects{}
	var all []*customer
	for k, b := range batches {
		e.sim.SetFaults(b.faults)
		cs := e.plan(int(float64(n)*b.share), uint64(k+1))
		t0 := time.Now()
		if err := e.drive(c, cs, 8, rd, nil); err != nil {
			t.Fatalf("batch %q: %v", b.name, err)
		}
		// Let this batch's automatic responses go out under its faults.
		if err := e.sim.WaitDeliveries(c); err != nil {
			t.Fatal(err)
		}
		t.Logf("batch %d (%s): %d customers in %s", k+1, b.name, len(cs), time.Since(t0).Round(time.Millisecond))
		all = append(all, cs...)
	}
	again := e.returnAgain(c, all, rd, nil)
	o := e.verifyPayments(c, all)
	o.log(t, fmt.Sprintf("%d payments", len(all)), time.Since(start), e.sim.Stats(), rd)
	t.Logf("  %d manual forms posted again after all batches", again)
	if len(rd.bad) > 0 {
		t.Errorf("%d returning customers sent to the wrong page: %s", len(rd.bad), firstN(rd.bad, 10))
	}
	if rd.failed > 0 {
		t.Errorf("%d manual POSTs did not reach a running daemon", rd.failed)
	}
	for _, ch := range []string{"automatic", "manual", "reconciliation"} {
		if o.byChannel[ch] == 0 {
			t.Errorf("no payment decided by %s: the faults did not exercise every channel", ch)
		}
	}
	if o.verdicts["manual/duplicate"] == 0 || o.verdicts["automatic/duplicate"] == 0 {
		t.Errorf("no duplicates recorded (%v): the injected duplicates did not reach the daemon", o.verdicts)
	}
	if err := e.h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}
