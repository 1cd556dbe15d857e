package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/plugins/atos/sim"
)

// BenchmarkPaymentsThroughDaemon measures whole card payments through the
// real daemon and atos plugin (shop start, Paypage, the customer's choice,
// the manual return and the automatic response, 8 customers at a time) and
// the latency of the manual return as the customer's browser sees it
// (store raw, verify in the plugin, apply, 303). Needs ACQUIT_BIN_DIR
// (make build):
//
//	ACQUIT_BIN_DIR=$PWD/bin go test ./e2e -run '^$' -bench PaymentsThroughDaemon -benchtime 1000x
func BenchmarkPaymentsThroughDaemon(b *testing.B) {
	bin := os.Getenv("ACQUIT_BIN_DIR")
	if bin == "" {
		b.Skip("needs ACQUIT_BIN_DIR with acquit and acquit-plugin-atos (make build)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h, err := demo.NewHarness(filepath.Join(b.TempDir(), "state"), bin, "testdata/scripts")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if h.Pid() != 0 {
			_ = h.Kill9(true)
		}
	})
	if err := h.WriteSecret("sips-key-1", payKey); err != nil {
		b.Fatal(err)
	}
	s := sim.New(sim.Config{Merchants: []sim.Merchant{{ID: payMerchantID, Keys: map[string]string{"1": payKey}}},
		HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}})
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	tp := h.Template()
	tp.Atos = &demo.AtosData{PaypageURL: s.URL(), OfficeURL: s.URL(), MerchantID: payMerchantID, KeyFile: h.SecretPath("sips-key-1")}
	tp.ReconcileAfter = "1m"
	if err := h.Start(ctx); err != nil {
		b.Fatal(err)
	}
	e := &payEnv{h: h, sim: s, cl: h.Client(), br: &sim.Browser{Client: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}}}
	cs := make([]*customer, b.N)
	for k := range cs {
		cs[k] = &customer{i: int(e.next.Add(1)), choice: "accepted", back: backOnce}
	}
	rd := &redirects{}
	var mu sync.Mutex
	var lat []time.Duration
	jobs := make(chan *customer)
	var wg sync.WaitGroup
	var firstErr error
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				st, err := e.startPayment(ctx, c)
				if err == nil {
					err = e.pay(ctx, c, st)
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					continue
				}
				t0 := time.Now()
				e.goBack(ctx, c, rd)
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	for _, c := range cs {
		jobs <- c
	}
	close(jobs)
	wg.Wait()
	if err := s.WaitDeliveries(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	if len(rd.bad) > 0 || rd.ok != b.N {
		b.Fatalf("%d of %d returns redirected as expected: %v", rd.ok, b.N, rd.bad)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "payments/s")
	b.ReportMetric(q(0.5), "manual-p50-ms")
	b.ReportMetric(q(0.99), "manual-p99-ms")
	if err := h.Stop(); err != nil {
		b.Fatal(err)
	}
}
