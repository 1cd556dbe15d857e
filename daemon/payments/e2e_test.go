package payments

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"testing"
	"time"
)

// TestEndToEndWithFaults runs payments through the loopback test provider
// with faults: 30% of automatic responses dropped, 30% of customers never
// returning, duplicates, reordering, responses of one payment sent
// concurrently, 8 payments at a time, and 5% abandoned before paying. After
// one reconcile pass every payment is in the state the provider decided,
// decided exactly once, none lost.
func TestEndToEndWithFaults(t *testing.T) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) { testEndToEndWithFaults(t, d) })
	}
}

func testEndToEndWithFaults(t *testing.T, driver string) {
	// The 2,000-payment run with the real plugin is TestAtosEndToEnd;
	// this one, on the test provider, checks the same with fewer.
	n := 400
	if testing.Short() {
		n = 100
	}
	e := newEnvOn(t, driver, nil)
	type plan struct {
		st      *Started
		abandon bool
		code    string
		sends   []string
		want    State
	}
	rng := rand.New(rand.NewPCG(20260329, 1))
	plans := make([]*plan, n)
	for i := range plans {
		p := &plan{}
		switch r := rng.IntN(100); {
		case r < 5:
			p.abandon, p.want = true, StateExpired
		case r < 70:
			p.code, p.want = "00", StateAccepted
		case r < 90:
			p.code, p.want = "05", StateRefused
		default:
			p.code, p.want = "17", StateCancelled
		}
		if !p.abandon {
			if rng.IntN(100) >= 30 {
				p.sends = append(p.sends, "automatic")
				if rng.IntN(100) < 15 {
					p.sends = append(p.sends, "automatic")
				}
			}
			if rng.IntN(100) >= 30 {
				p.sends = append(p.sends, "manual")
				if rng.IntN(100) < 10 {
					p.sends = append(p.sends, "manual")
				}
			}
			rng.Shuffle(len(p.sends), func(a, b int) { p.sends[a], p.sends[b] = p.sends[b], p.sends[a] })
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
	work := make(chan *plan)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				st, err := e.svc.Start(context.Background(), StartRequest{OrderID: nextOrder("E2E"), Amount: 1234,
					Currency: "EUR", SuccessURL: shopOK, FailureURL: shopKO})
				if err != nil {
					fail("start: %v", err)
					continue
				}
				p.st = st
				if p.abandon {
					continue
				}
				e.pay(t, st)
				form := e.sim.decide(t, st.Reference, p.code)
				var inner sync.WaitGroup
				for _, ch := range p.sends {
					inner.Add(1)
					go func(ch string, form url.Values) {
						defer inner.Done()
						r := e.post(t, ch, form)
						switch {
						case ch == "automatic" && r.code != 200:
							fail("%s automatic: HTTP %d", st.Reference, r.code)
						case ch == "manual" && p.want == StateAccepted && r.location != shopOK:
							fail("%s manual: to %q", st.Reference, r.location)
						case ch == "manual" && p.want != StateAccepted && r.location != shopKO:
							fail("%s manual: to %q", st.Reference, r.location)
						}
					}(ch, form)
				}
				inner.Wait()
			}
		}()
	}
	for _, p := range plans {
		work <- p
	}
	close(work)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		t.FailNow()
	}
	sent := time.Since(t0)
	e.clock.Advance(21 * time.Minute)
	sum, err := e.svc.Reconcile(context.Background(), map[string]string{"limit": "100000"})
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	byChannel := map[string]int{}
	lost, twice := 0, 0
	for _, p := range plans {
		d := e.get(t, p.st.Reference)
		if d.Payment.State != p.want {
			lost++
			t.Errorf("%s: %s, want %s (sends %v)", p.st.Reference, d.Payment.State, p.want, p.sends)
		}
		if n := e.events(t, "payment.%", p.st.Reference); n != 1 {
			twice++
			t.Errorf("%s: %d events", p.st.Reference, n)
		}
		byChannel[d.Payment.DecidedChannel]++
	}
	if lost != 0 || twice != 0 {
		t.Fatalf("%d lost, %d not decided exactly once", lost, twice)
	}
	if pending, _ := e.svc.List(context.Background(), ListFilter{State: StatePending}); len(pending) != 0 {
		t.Fatalf("%d still pending", len(pending))
	}
	t.Logf("%d payments in %v; reconcile: %s; decided by channel: %v", n, sent.Round(time.Millisecond), sum, byChannel)
}
