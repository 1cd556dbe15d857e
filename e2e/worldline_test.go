package e2e

// Worldline Direct end to end: the real daemon binary, the real
// acquit-plugin-worldline process and the Worldline simulator over
// loopback, with webhook faults and a kill -9 of the daemon in the middle.

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acquit/acquit/internal/demo"
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
	if st.Failed == 0 || failed == 0 {
		t.Errorf("the kill met no webhook (%d failed) or no return (%d): it did not happen mid-flow", st.Failed, failed)
	}
	if err := h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}
