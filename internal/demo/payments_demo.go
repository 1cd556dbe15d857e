package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/plugins/atos/sim"
	"github.com/acquit/acquit/sdk"
)

const (
	demoMerchantID = "002001000000001"
	successURL     = "http://shop.example/paid"
	failureURL     = "http://shop.example/not-paid"
)

type paymentsDemo struct {
	sim  *sim.Sim
	o    Options
	Seed uint64
}

// PaymentsReport is what the card-payment part of a run found.
type PaymentsReport struct {
	Payments   int
	ByState    map[string]int
	ByChannel  map[string]int
	Mismatched []string // references whose state differs from the simulator's
	Undecided  []string // still pending
	// HookRuns counts payment.* events delivered per type.
	HookRuns map[string]int
	// RedirectErrors lists manual returns that did not end on the shop's
	// expected page.
	RedirectErrors []string
	SimStats       sim.Stats
}

func setupPayments(h *Harness, o Options) (*paymentsDemo, error) {
	key := "demo-sips-secret-key-0123456789abcdef"
	if err := h.WriteSecret("sips-key-1", key); err != nil {
		return nil, err
	}
	s := sim.New(sim.Config{
		Merchants: []sim.Merchant{{ID: demoMerchantID, Keys: map[string]string{"1": key}}},
		Seed:      o.Seed + 1,
		Faults:    sim.Faults{DropAutomatic: o.DropAuto, CustomerNeverReturns: o.NoReturn},
	})
	if err := s.Start(); err != nil {
		return nil, err
	}
	h.Template().Atos = &AtosData{PaypageURL: s.URL(), OfficeURL: s.URL(), MerchantID: demoMerchantID, KeyFile: h.SecretPath("sips-key-1")}
	return &paymentsDemo{sim: s, o: o, Seed: o.Seed}, nil
}

func (p *paymentsDemo) close() { _ = p.sim.Close() }

// Sim is the Sips simulator of the run.
func (p *paymentsDemo) Sim() *sim.Sim { return p.sim }

// Drive starts n payments through the daemon's shop API and plays each
// customer's browser on the simulator's payment page; it returns the
// references. Customers choose accepted (70%), refused, cancelled or a 3-D
// Secure failure, drawn from the seed.
func Drive(ctx context.Context, h *Harness, s *sim.Sim, n, workers int, seed uint64, redirectErrs *[]string) ([]string, error) {
	type job struct {
		i      int
		choice string
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	jobs := make(chan job)
	var mu sync.Mutex
	var refs []string
	var firstErr error
	var wg sync.WaitGroup
	br := sim.NewBrowser()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				ref, err := payOne(ctx, h, br, j.i, j.choice, redirectErrs, &mu)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if ref != "" {
					refs = append(refs, ref)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		c := "accepted"
		switch x := rng.Float64(); {
		case x < 0.15:
			c = "refused"
		case x < 0.25:
			c = "cancelled"
		case x < 0.30:
			c = "3ds_failure"
		}
		select {
		case jobs <- job{i, c}:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return refs, firstErr
	}
	return refs, ctx.Err()
}

func payOne(ctx context.Context, h *Harness, br *sim.Browser, i int, choice string, redirectErrs *[]string, mu *sync.Mutex) (string, error) {
	req := payments.StartRequest{OrderID: fmt.Sprintf("ORDER-%05d", i), Amount: int64(1000 + i*7), Currency: "EUR",
		CustomerEmail: fmt.Sprintf("customer%d@example.com", i), SuccessURL: successURL, FailureURL: failureURL}
	var st payments.Started
	if _, err := h.Client().Do(ctx, "POST", "/v1/payments", req, &st); err != nil {
		return "", fmt.Errorf("start payment %d: %w", i, err)
	}
	m, err := br.Pay(ctx, st.Method, st.RedirectURL, st.Fields, sim.Choice{Outcome: choice})
	if err != nil {
		return st.Reference, fmt.Errorf("pay %s: %w", st.Reference, err)
	}
	if !m.Returns {
		return st.Reference, nil
	}
	resp, err := br.Return(ctx, m)
	if err != nil {
		return st.Reference, fmt.Errorf("return %s: %w", st.Reference, err)
	}
	resp.Body.Close()
	want := failureURL
	if choice == "accepted" {
		want = successURL
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || !strings.HasPrefix(loc, want) {
		mu.Lock()
		*redirectErrs = append(*redirectErrs, fmt.Sprintf("%s: %d to %q, want %s", st.Reference, resp.StatusCode, loc, want))
		mu.Unlock()
	}
	return st.Reference, nil
}

// Collect compares every payment with what the simulator decided.
func Collect(ctx context.Context, h *Harness, s *sim.Sim, refs []string) (*PaymentsReport, error) {
	r := &PaymentsReport{Payments: len(refs), ByState: map[string]int{}, ByChannel: map[string]int{}, HookRuns: map[string]int{}, SimStats: s.Stats()}
	decided := s.Decided()
	for _, ref := range refs {
		var d payments.Detail
		if _, err := h.Client().Do(ctx, "GET", "/v1/payments/"+url.PathEscape(ref), nil, &d); err != nil {
			return nil, err
		}
		p := d.Payment
		r.ByState[string(p.State)]++
		if p.DecidedChannel != "" {
			r.ByChannel[p.DecidedChannel]++
		}
		if p.State == payments.StatePending {
			r.Undecided = append(r.Undecided, ref)
			continue
		}
		want, ok := decided[p.ProviderReference]
		if !ok {
			want, ok = decided[ref]
		}
		if !ok || !sameOutcome(p.State, want) {
			r.Mismatched = append(r.Mismatched, fmt.Sprintf("%s: acquit %s, simulator %s", ref, p.State, want))
		}
	}
	for _, typ := range []string{"payment.accepted", "payment.refused", "payment.cancelled", "payment.expired", "payment.failed", "payment.unknown", "payment.conflict", "payment.mismatch"} {
		var evs []store.Event
		if _, err := h.Client().Do(ctx, "GET", "/v1/events?limit=10000&state=delivered&type="+typ, nil, &evs); err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			r.HookRuns[typ] = len(evs)
		}
	}
	return r, nil
}

func sameOutcome(st payments.State, o sdk.Outcome) bool {
	return string(st) == string(o)
}

// WaitDecided waits until no payment of refs is pending.
func WaitDecided(ctx context.Context, h *Harness, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var ps []payments.Payment
		if _, err := h.Client().Do(ctx, "GET", "/v1/payments?state=pending&limit=1", nil, &ps); err == nil && len(ps) == 0 {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("payments still pending after %s", d)
}

func (p *paymentsDemo) run(ctx context.Context, h *Harness, out io.Writer) error {
	fmt.Fprintf(out, "2. %d card payments through the Sips simulator: %.0f%% of automatic responses dropped, %.0f%% of customers never return\n",
		p.o.Payments, p.o.DropAuto*100, p.o.NoReturn*100)
	var redirectErrs []string
	start := time.Now()
	refs, err := Drive(ctx, h, p.sim, p.o.Payments, 8, p.o.Seed, &redirectErrs)
	if err != nil {
		return err
	}
	if err := p.sim.WaitDeliveries(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "   customers done in %s; waiting for reconciliation with Sips Office for the silent ones...\n", time.Since(start).Round(time.Millisecond))
	if err := WaitDecided(ctx, h, 2*time.Minute); err != nil {
		return err
	}
	if err := waitIdle(ctx, h, time.Minute); err != nil {
		return err
	}
	r, err := Collect(ctx, h, p.sim, refs)
	if err != nil {
		return err
	}
	r.RedirectErrors = redirectErrs
	printPayments(out, r)
	if len(r.Mismatched) > 0 || len(r.Undecided) > 0 || len(r.RedirectErrors) > 0 {
		return fmt.Errorf("payments: %d mismatched, %d undecided, %d bad redirects", len(r.Mismatched), len(r.Undecided), len(r.RedirectErrors))
	}
	if r.HookRuns["payment.accepted"] != r.ByState["accepted"] {
		return fmt.Errorf("payments: %d accepted but the hook ran %d times", r.ByState["accepted"], r.HookRuns["payment.accepted"])
	}
	return nil
}

func printPayments(out io.Writer, r *PaymentsReport) {
	keys := func(m map[string]int) []string {
		var k []string
		for x := range m {
			k = append(k, x)
		}
		sort.Strings(k)
		return k
	}
	fmt.Fprintf(out, "   simulator: %d automatic responses sent, %d dropped; %d customers returned\n",
		r.SimStats.AutomaticSent, r.SimStats.AutomaticDropped, r.SimStats.ManualReturned)
	fmt.Fprintf(out, "   %-16s %s\n", "decided by", "payments")
	for _, k := range keys(r.ByChannel) {
		fmt.Fprintf(out, "   %-16s %d\n", k, r.ByChannel[k])
	}
	fmt.Fprintf(out, "   %-16s %s\n", "final state", "payments")
	for _, k := range keys(r.ByState) {
		fmt.Fprintf(out, "   %-16s %d\n", k, r.ByState[k])
	}
	fmt.Fprintf(out, "   %-20s %s\n", "hook event", "delivered")
	for _, k := range keys(r.HookRuns) {
		fmt.Fprintf(out, "   %-20s %d\n", k, r.HookRuns[k])
	}
	fmt.Fprintf(out, "   every payment ends as the simulator decided: %v (mismatched %d, undecided %d, bad redirects %d)\n\n",
		len(r.Mismatched) == 0 && len(r.Undecided) == 0, len(r.Mismatched), len(r.Undecided), len(r.RedirectErrors))
}
