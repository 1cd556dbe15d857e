package payments

import (
	"context"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/atos/sim"
	"github.com/acquit/acquit/sdk"
)

// reportLatency reports the p50 and p99 of the measured latencies.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

func postForm(b *testing.B, c *http.Client, u string, body string) int {
	resp, err := c.Post(u, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// BenchmarkAutomaticResponse measures one automatic response end to end,
// one at a time: HTTP on loopback -> raw input committed -> seal checked ->
// payment decided, history and event committed in one transaction -> 200.
// Sub-benchmarks per store driver (postgres skips without
// ACQUIT_TEST_PG_DSN).
func BenchmarkAutomaticResponse(b *testing.B) {
	for _, d := range drivers {
		b.Run(d, func(b *testing.B) { benchAutomatic(b, d, 1) })
	}
}

// BenchmarkAutomaticResponseParallel is the same with 8 concurrent senders.
func BenchmarkAutomaticResponseParallel(b *testing.B) {
	for _, d := range drivers {
		b.Run(d, func(b *testing.B) { benchAutomatic(b, d, 8) })
	}
}

// BenchmarkAutomaticResponse32 is the same with 32 concurrent senders (the
// issue 12 target: at least a quarter of BenchmarkBareSealHandler).
func BenchmarkAutomaticResponse32(b *testing.B) {
	for _, d := range drivers {
		b.Run(d, func(b *testing.B) { benchAutomatic(b, d, 32) })
	}
}

// BenchmarkAutomaticResponse32WithReads is BenchmarkAutomaticResponse32
// with an operator's screen open: one client listing the 100 newest
// payments (the admin API's List) back to back the whole time. Reads go
// through store.View, on the reader connections, not on the writer.
func BenchmarkAutomaticResponse32WithReads(b *testing.B) {
	e := newEnvOn(b, "sqlite", nil)
	reqs := atosRequests(b, e, b.N)
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if _, err := e.svc.List(context.Background(), ListFilter{Limit: 100}); err != nil {
				b.Error(err)
			}
			n++
		}
	}()
	runSenders(b, e, "atos", reqs, 32)
	close(stop)
	b.ReportMetric(float64(<-done)/b.Elapsed().Seconds(), "lists/s")
}

// BenchmarkAutomaticResponseOffered1000 offers 1,000 responses a second
// (open loop: a response is sent at its scheduled time whether or not the
// earlier ones were answered) and reports the latency from the scheduled
// time, so a stall counts fully instead of slowing the senders down.
func BenchmarkAutomaticResponseOffered1000(b *testing.B) {
	for _, d := range drivers {
		b.Run(d, func(b *testing.B) { benchOffered(b, d, 1000) })
	}
}

func benchOffered(b *testing.B, driver string, rate int) {
	e := newEnvOn(b, driver, nil)
	forms := atosResponses(b, e, b.N)
	u := e.pub.URL + "/notify/atos/automatic"
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	lat := make([]time.Duration, b.N)
	interval := time.Second / time.Duration(rate)
	var wg sync.WaitGroup
	b.ResetTimer()
	g0 := groupStats(e)
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		at := t0.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := postForm(b, c, u, forms[i]); code != 200 {
				b.Errorf("HTTP %d", code)
			}
			lat[i] = time.Since(at)
		}()
	}
	wg.Wait()
	reportDecided(b, e, "atos", time.Since(t0), lat)
	reportGroups(b, e, g0)
}

func benchAutomatic(b *testing.B, driver string, senders int) {
	e := newEnvOn(b, driver, nil)
	runSenders(b, e, "atos", atosRequests(b, e, b.N), senders)
}

// atosRequests is atosResponses as the requests runSenders posts.
func atosRequests(b *testing.B, e *env, n int) []benchRequest {
	forms := atosResponses(b, e, n)
	reqs := make([]benchRequest, len(forms))
	for i, f := range forms {
		reqs[i] = benchRequest{body: f, ctype: "application/x-www-form-urlencoded"}
	}
	return reqs
}

// benchRequest is one notification to post.
type benchRequest struct {
	body, ctype string
	header      map[string]string
}

func (r benchRequest) post(b *testing.B, c *http.Client, u string) int {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(r.body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", r.ctype)
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// runSenders posts reqs to the gateway's automatic endpoint from senders
// concurrent clients and reports the rate and latencies; every request must
// decide its payment.
func runSenders(b *testing.B, e *env, gateway string, reqs []benchRequest, senders int) {
	u := e.pub.URL + "/notify/" + gateway + "/automatic"
	// One kept-alive connection per sender (the default keeps 2).
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	defer profileTimed(b)()
	g0 := groupStats(e)
	t0 := time.Now()
	for w := 0; w < senders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				s := time.Now()
				if code := reqs[i].post(b, client, u); code != 200 {
					b.Errorf("HTTP %d", code)
					return
				}
				lat[i] = time.Since(s)
			}
		}()
	}
	wg.Wait()
	reportDecided(b, e, gateway, time.Since(t0), lat)
	reportGroups(b, e, g0)
}

// writerStats are the SQLite store's group-commit counters and the
// process CPU time (zero counters on PostgreSQL).
type writerStats struct {
	commits, txs, lazy int64
	busy, cpu          time.Duration
}

func groupStats(e *env) writerStats {
	var w writerStats
	if gs, ok := e.st.(interface {
		GroupStats() (int64, int64)
		LazyGroups() int64
		WriterBusy() time.Duration
	}); ok {
		w.commits, w.txs = gs.GroupStats()
		w.lazy = gs.LazyGroups()
		w.busy = gs.WriterBusy()
	}
	w.cpu = processCPU()
	return w
}

// reportGroups reports, for the timed part, the process CPU per response
// (less disturbed by other load than the rate), and on SQLite the commits
// made (and those that waited for the disk: synced-commits/op, the others
// being raw inputs committed with DeferSync), the transactions each
// carried, and the time the single writer
// goroutine was busy per response (its share of the wall clock says
// whether the writer is the bottleneck).
func reportGroups(b *testing.B, e *env, g0 writerStats) {
	g := groupStats(e)
	b.ReportMetric(float64((g.cpu-g0.cpu).Microseconds())/float64(b.N), "cpu-us/op")
	if c := g.commits - g0.commits; c > 0 {
		b.ReportMetric(float64(c)/float64(b.N), "commits/op")
		b.ReportMetric(float64(c-(g.lazy-g0.lazy))/float64(b.N), "synced-commits/op")
		b.ReportMetric(float64(g.txs-g0.txs)/float64(c), "tx/commit")
		b.ReportMetric(float64((g.busy-g0.busy).Microseconds())/float64(b.N), "writer-us/op")
	}
}

// processCPU returns the user+system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profileTimed writes a CPU profile of the timed part only (not the
// setup, which starts and pays every payment) to the file named by
// ACQUIT_BENCH_CPUPROFILE, when set; the returned func stops it.
func profileTimed(b *testing.B) func() {
	path := os.Getenv("ACQUIT_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// reportDecided stops the timer, checks that every one of the b.N
// automatic responses decided its payment, and reports the rate and the
// latencies.
func reportDecided(b *testing.B, e *env, gateway string, elapsed time.Duration, lat []time.Duration) {
	b.StopTimer()
	if got := e.notificationsOn(gateway, "automatic", "decided"); got != float64(b.N) {
		b.Fatalf("decided %v of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "resp/s")
	reportLatency(b, lat)
}

// atosResponses starts n payments through the real Atos plugin, pays them
// on the simulator (which sends nothing itself) and returns the sealed
// responses, form-encoded.
func atosResponses(b *testing.B, e *env, n int) []string {
	withAtos(b, e, sim.Faults{DropAutomatic: 1}, nil)
	br := sim.NewBrowser()
	out := make([]string, n)
	for i := range out {
		st := e.startAtos(b, 1000)
		m, err := br.Pay(context.Background(), st.Method, st.RedirectURL, st.Fields, sim.Choice{Outcome: "accepted"})
		if err != nil || !m.Returns {
			b.Fatalf("pay: %v", err)
		}
		out[i] = m.Fields.Encode()
	}
	return out
}

// BenchmarkBareSealHandler is the floor: a net/http handler on loopback
// that only reads the body and has the same Atos plugin check the seal.
func BenchmarkBareSealHandler(b *testing.B) {
	e := newEnv(b, nil)
	forms := atosResponses(b, e, 1)
	p := e.gateways["atos"]
	srv := loopbackServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "read", 400)
			return
		}
		if _, err := p.VerifyNotification(r.Context(), sdk.Notification{Channel: sdk.ChannelAutomatic, Method: r.Method,
			Path: r.URL.Path, Body: body, ReceivedAt: time.Now()}); err != nil {
			http.Error(w, "seal", 400)
			return
		}
		w.WriteHeader(200)
	}))
	c := &http.Client{}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if code := postForm(b, c, srv.URL, forms[0]); code != 200 {
			b.Fatalf("HTTP %d", code)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resp/s")
	reportLatency(b, lat)
}
