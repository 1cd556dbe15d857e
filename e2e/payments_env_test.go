package e2e

// Shared set-up of the card-payment end-to-end tests: the real daemon and
// atos plugin against the Sips simulator, simulated customers, and the
// checks every payments test runs at the end.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/adminclient"
	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/plugins/atos/sim"
	"github.com/acquit/acquit/plugins/atos/sips"
	"github.com/acquit/acquit/sdk"
)

const (
	payMerchantID = "002001000000001"
	payKey        = "e2e-sips-secret-key-0123456789abcdef"
	paySuccessURL = "http://shop.example/paid"
	payFailureURL = "http://shop.example/not-paid"
)

// decisionTypes are the events that decide a payment; each payment must
// get exactly one of them.
var decisionTypes = []string{"payment.accepted", "payment.refused", "payment.cancelled", "payment.expired", "payment.failed"}

// payEnv is one daemon with the atos plugin, the Sips simulator and a
// recorder hook bound to payment.*.
type payEnv struct {
	t    *testing.T
	h    *demo.Harness
	sim  *sim.Sim
	rec  *recorder
	cl   *adminclient.Client
	br   *sim.Browser
	auto *autoCounter
	// order numbers are unique across the batches of one test
	next atomic.Int64
}

// newPayEnv prepares (but does not start) the daemon. tweak adjusts the
// configuration template.
func newPayEnv(t *testing.T, faults sim.Faults, tweak func(*demo.TemplateData)) *payEnv {
	t.Helper()
	e := &payEnv{t: t, rec: newRecorder(t, 0), br: &sim.Browser{Client: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}}}
	e.h = newHarness(t)
	if err := e.h.WriteSecret("sips-key-1", payKey); err != nil {
		t.Fatal(err)
	}
	e.auto = newAutoCounter()
	e.sim = sim.New(sim.Config{
		Merchants:  []sim.Merchant{{ID: payMerchantID, Keys: map[string]string{"1": payKey}}},
		Seed:       20261123,
		Faults:     faults,
		ManualWait: time.Second,
		HTTPClient: &http.Client{Transport: e.auto, Timeout: 10 * time.Second},
	})
	if err := e.sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.sim.Close() })
	tp := e.h.Template()
	tp.Atos = &demo.AtosData{PaypageURL: e.sim.URL(), OfficeURL: e.sim.URL(), MerchantID: payMerchantID, KeyFile: e.h.SecretPath("sips-key-1")}
	tp.RecorderURL = e.rec.srv.URL
	tp.Hooks = []demo.HookData{{Events: `["payment.*"]`, Script: "record.lua", Function: "on_event"}}
	// Customers pay within milliseconds of starting; 5s keeps a slow
	// machine from reconciling (and expiring) a payment whose customer is
	// still on the payment page.
	tp.ReconcileAfter = "5s"
	if tweak != nil {
		tweak(tp)
	}
	e.cl = e.h.Client()
	return e
}

func (e *payEnv) start(ctx context.Context) {
	e.t.Helper()
	if err := e.h.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// autoCounter is the simulator's transport for automatic responses: it
// counts, per transactionReference (or s10 id), the deliveries acquit
// answered 2xx.
type autoCounter struct {
	base http.RoundTripper
	mu   sync.Mutex
	ok   map[string]int
	fail int
	// statuses counts the non-2xx answers by status code.
	statuses map[int]int
}

func newAutoCounter() *autoCounter {
	return &autoCounter{base: &http.Transport{MaxIdleConnsPerHost: 64}, ok: map[string]int{}, statuses: map[int]int{}}
}

func (a *autoCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := a.base.RoundTrip(req)
	ref := ""
	if v, perr := url.ParseQuery(string(body)); perr == nil {
		pf := &sips.PostForm{Data: v.Get("Data"), Encode: v.Get("Encode")}
		if data, derr := pf.DecodedData(); derr == nil {
			if f, ferr := sips.ParseData(data); ferr == nil {
				ref = f["transactionReference"]
				if ref == "" {
					ref = f["s10TransactionReference.s10TransactionId"]
				}
			}
		}
	}
	a.mu.Lock()
	if err == nil && resp.StatusCode/100 == 2 {
		a.ok[ref]++
	} else {
		a.fail++
		if err == nil {
			a.statuses[resp.StatusCode]++
		}
	}
	a.mu.Unlock()
	return resp, err
}

// errorAnswers returns the non-2xx answers acquit gave to automatic
// responses, by status code.
func (a *autoCounter) errorAnswers() map[int]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[int]int{}
	for k, v := range a.statuses {
		out[k] = v
	}
	return out
}

func (a *autoCounter) delivered() (map[string]int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.ok))
	for k, v := range a.ok {
		out[k] = v
	}
	return out, a.fail
}

// Ways a customer comes back to the shop.
const (
	backOnce       = iota // the auto-submitting form, once
	backTwiceConc         // the form posted twice at the same moment (double submit)
	backLater             // the form kept and posted again at the end (back button, refresh)
	backAbandonNow        // never chooses on the payment page
)

// customer is one simulated payment.
type customer struct {
	i      int
	choice string // accepted, refused, cancelled, 3ds_failure, expired
	card   string // card number typed instead of choosing the outcome
	back   int
	ref    string
	prov   string
	manual *sim.Manual
	// retry is set when the manual POST failed (daemon down): the browser
	// refreshes later.
	retry atomic.Bool
	// redirected counts the manual POSTs the daemon answered with a 303:
	// each must be on the payment's timeline.
	redirected atomic.Int32
}

func (c *customer) wantURL() string {
	if c.choice == "accepted" {
		return paySuccessURL
	}
	return payFailureURL
}

// plan draws n customers: 3% abandon on the payment page, the others pay
// (64% accepted, 15% refused, 10% cancelled, 5% 3-D Secure failure, and
// by card number 2% responseCode 51, 1% 97 session expired);
// of those, 5% double-submit the manual form and 5% post it again later.
func (e *payEnv) plan(n int, seed uint64) []*customer {
	rng := rand.New(rand.NewPCG(seed, 99))
	out := make([]*customer, n)
	for k := range out {
		c := &customer{i: int(e.next.Add(1)), choice: "accepted", back: backOnce}
		switch x := rng.Float64(); {
		case x < 0.03:
			c.back = backAbandonNow
		case x < 0.18:
			c.choice = "refused"
		case x < 0.28:
			c.choice = "cancelled"
		case x < 0.33:
			c.choice = "3ds_failure"
		case x < 0.35:
			c.choice, c.card = "refused", "4100000000000051" // amount too high
		case x < 0.36:
			c.choice, c.card = "expired", "4100000000000097" // session expired on the page
		}
		if c.back == backOnce {
			switch x := rng.Float64(); {
			case x < 0.05:
				c.back = backTwiceConc
			case x < 0.10:
				c.back = backLater
			}
		}
		out[k] = c
	}
	return out
}

// redirects collects what returning customers were shown.
type redirects struct {
	mu      sync.Mutex
	bad     []string
	neutral int // 200 "being confirmed" pages (nothing known about the payment)
	ok      int
	failed  int // POSTs that did not reach the daemon (down)
	// allowNeutral accepts the documented neutral page (gateway down).
	allowNeutral bool
}

// check classifies the shop's answer to a manual POST.
func (r *redirects) check(c *customer, resp *http.Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	loc := resp.Header.Get("Location")
	switch {
	case resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, c.wantURL()):
		r.ok++
		c.redirected.Add(1)
	case resp.StatusCode == http.StatusOK && r.allowNeutral:
		r.neutral++
	default:
		if len(r.bad) < 20 {
			r.bad = append(r.bad, fmt.Sprintf("%s (%s): %d to %q, want %s", c.ref, c.choice, resp.StatusCode, loc, c.wantURL()))
		} else {
			r.bad = append(r.bad, "...")
		}
	}
}

// startPayment asks the daemon for a payment, retrying while the daemon or
// its plugin is down (the shop retries too).
func (e *payEnv) startPayment(ctx context.Context, c *customer) (*payments.Started, error) {
	return demo.StartPayment(ctx, e.cl, payments.StartRequest{OrderID: fmt.Sprintf("ORDER-%06d", c.i), Amount: int64(1000 + c.i*7),
		Currency: "EUR", CustomerEmail: fmt.Sprintf("customer%d@example.com", c.i), SuccessURL: paySuccessURL, FailureURL: payFailureURL})
}

// pay plays the customer on the payment page; it returns false when the
// customer abandons there.
func (e *payEnv) pay(ctx context.Context, c *customer, st *payments.Started) error {
	c.ref, c.prov = st.Reference, st.ProviderReference
	page, err := e.br.Open(ctx, st.Method, st.RedirectURL, st.Fields)
	if err != nil {
		return fmt.Errorf("payment %s: open: %w", c.ref, err)
	}
	if page.Refused() {
		return fmt.Errorf("payment %s: Paypage refused the request with %s", c.ref, page.ResponseCode)
	}
	if c.back == backAbandonNow {
		return nil
	}
	ch := sim.Choice{Outcome: c.choice}
	if c.card != "" {
		ch = sim.Choice{CardNumber: c.card}
	}
	m, err := e.br.Choose(ctx, page, ch)
	if err != nil {
		return fmt.Errorf("payment %s: choose: %w", c.ref, err)
	}
	c.manual = m
	return nil
}

// goBack posts the manual form (once or twice at once) and checks where
// the browser is sent. A POST that does not reach the daemon marks the
// customer for a later refresh.
func (e *payEnv) goBack(ctx context.Context, c *customer, rd *redirects) {
	if c.manual == nil || !c.manual.Returns {
		return
	}
	n := 1
	if c.back == backTwiceConc {
		n = 2
	}
	var wg sync.WaitGroup
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.br.Return(ctx, c.manual)
			if err != nil {
				rd.mu.Lock()
				rd.failed++
				rd.mu.Unlock()
				c.retry.Store(true)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			rd.check(c, resp)
		}()
	}
	wg.Wait()
}

// drive runs the customers through start, payment page and return, with
// workers customers at a time; onStarted is called after each start.
func (e *payEnv) drive(ctx context.Context, cs []*customer, workers int, rd *redirects, onStarted func(int)) error {
	var started atomic.Int64
	return demo.ForEach(ctx, cs, workers, func(c *customer) error {
		st, err := e.startPayment(ctx, c)
		if err != nil {
			return err
		}
		if onStarted != nil {
			onStarted(int(started.Add(1)))
		}
		if err := e.pay(ctx, c, st); err != nil {
			return err
		}
		e.goBack(ctx, c, rd)
		return nil
	})
}

// returnAgain posts again the kept forms (backLater) and those that failed
// while the daemon was down (retry, when retryFailed).
func (e *payEnv) returnAgain(ctx context.Context, cs []*customer, rd *redirects, retryFailed func(*customer) bool) int {
	n := 0
	for _, c := range cs {
		if c.manual == nil || !c.manual.Returns {
			continue
		}
		if c.back == backLater || (c.retry.Load() && retryFailed != nil && retryFailed(c)) {
			resp, err := e.br.Return(ctx, c.manual)
			if err != nil {
				e.t.Errorf("payment %s: manual POST again: %v", c.ref, err)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			rd.check(c, resp)
			n++
		}
	}
	return n
}

// payOutcome is what the checks found.
type payOutcome struct {
	byState, byChannel, verdicts map[string]int
	events                       map[string]int
	hookRuns                     int
}

// verifyPayments waits for every payment to be decided and hooks to run,
// then checks: state == simulator's decision, exactly one decision event
// per payment, no conflict or mismatch event, the hook received every
// decision event (so every accepted payment's hook ran), and every
// automatic response acquit answered 2xx is on the payment's timeline.
func (e *payEnv) verifyPayments(ctx context.Context, cs []*customer) *payOutcome {
	t := e.t
	t.Helper()
	if err := e.sim.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	if err := demo.WaitDecided(ctx, e.h, 2*time.Minute); err != nil {
		var ps []payments.Payment
		_, _ = e.cl.Do(ctx, "GET", "/v1/payments?state=pending&limit=10", nil, &ps)
		for _, p := range ps {
			tx, seen := e.sim.Transaction(p.ProviderReference)
			t.Logf("pending %s: created %s, checks %d, next check %s; simulator saw it %v: decided %v %s, automatic %s",
				p.Reference, p.CreatedAt.Format(time.RFC3339Nano), p.CheckCount, p.NextCheckAt.Format(time.RFC3339Nano),
				seen, tx.Decided, tx.Outcome, tx.AutomaticStatus)
		}
		if b, err := os.ReadFile(filepath.Join(e.h.Dir, "acquit.log")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "reconcil") || strings.Contains(line, "schedule") || strings.Contains(line, `"level":"error"`) {
					t.Log(clipBytes([]byte(line), 400))
				}
			}
		}
		t.Fatal(err)
	}
	decided := e.sim.Decided()
	auto2xx, _ := e.auto.delivered()
	out := &payOutcome{byState: map[string]int{}, byChannel: map[string]int{}, verdicts: map[string]int{}, events: map[string]int{}}
	details := make([]*payments.Detail, len(cs))
	var wg sync.WaitGroup
	errs := make(chan error, len(cs))
	sem := make(chan struct{}, 4)
	for k, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var d payments.Detail
			if _, err := e.cl.Do(ctx, "GET", "/v1/payments/"+url.PathEscape(c.ref), nil, &d); err != nil {
				errs <- err
				return
			}
			details[k] = &d
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var mismatched, lost []string
	refs := map[string]bool{}
	for k, c := range cs {
		d := details[k]
		p := d.Payment
		refs[p.Reference] = true
		out.byState[string(p.State)]++
		out.byChannel[p.DecidedChannel]++
		want, ok := decided[c.prov]
		if !ok {
			want = sdk.OutcomeExpired // the simulator never saw it
		}
		if string(p.State) != string(want) {
			mismatched = append(mismatched, fmt.Sprintf("%s: acquit %s by %s, simulator %s", c.ref, p.State, p.DecidedChannel, want))
		}
		autoRows, manualRows := 0, 0
		for _, r := range d.Timeline {
			out.verdicts[r.Channel+"/"+string(r.Verdict)]++
			switch r.Channel {
			case string(sdk.ChannelAutomatic):
				autoRows++
			case string(sdk.ChannelManual):
				manualRows++
			}
		}
		if n := auto2xx[c.prov]; autoRows < n {
			lost = append(lost, fmt.Sprintf("%s: simulator got 2xx for %d automatic responses, timeline has %d", c.ref, n, autoRows))
		}
		if n := int(c.redirected.Load()); manualRows < n {
			lost = append(lost, fmt.Sprintf("%s: %d manual POSTs answered 303, timeline has %d", c.ref, n, manualRows))
		}
	}
	if len(mismatched) > 0 {
		t.Errorf("%d payments not as the simulator decided: %s", len(mismatched), firstN(mismatched, 10))
	}
	if len(lost) > 0 {
		t.Errorf("%d payments lost responses acquit had answered: %s", len(lost), firstN(lost, 10))
	}

	// Exactly one decision event per payment; none contradicting.
	perSubject := map[string]int{}
	decisionIDs := map[string]string{} // event id -> type
	for _, typ := range append(decisionTypes, "payment.conflict", "payment.mismatch", "payment.unknown") {
		var evs []store.Event
		if _, err := e.cl.Do(ctx, "GET", "/v1/events?limit=10000&type="+typ, nil, &evs); err != nil {
			t.Fatal(err)
		}
		if len(evs) == 10000 {
			t.Fatalf("more than 10000 %s events: listing truncated", typ)
		}
		for _, ev := range evs {
			ref := strings.TrimPrefix(ev.Subject, "payment:")
			if !refs[ref] {
				continue // another batch's payment
			}
			out.events[typ]++
			if strings.HasSuffix(typ, ".conflict") || strings.HasSuffix(typ, ".mismatch") || strings.HasSuffix(typ, ".unknown") {
				t.Errorf("%s event for %s: %s", typ, ref, clipBytes(ev.Payload, 300))
				continue
			}
			perSubject[ref]++
			decisionIDs[ev.ID] = typ
		}
	}
	var twice, none []string
	for _, c := range cs {
		switch perSubject[c.ref] {
		case 1:
		case 0:
			none = append(none, c.ref)
		default:
			twice = append(twice, fmt.Sprintf("%s x%d", c.ref, perSubject[c.ref]))
		}
	}
	if len(twice) > 0 {
		t.Errorf("%d payments processed twice (several decision events): %s", len(twice), firstN(twice, 10))
	}
	if len(none) > 0 {
		t.Errorf("%d payments without a decision event: %s", len(none), firstN(none, 10))
	}

	// The hook ran for every decision event.
	waitFor(t, 2*time.Minute, "the payment hook to receive every decision event", func() bool {
		seen := map[string]bool{}
		for _, d := range e.rec.all() {
			seen[d.ID] = true
		}
		for id := range decisionIDs {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	hooked := map[string]bool{}
	for _, d := range e.rec.all() {
		if d.Type == "payment.accepted" {
			hooked[strings.TrimPrefix(d.Subject, "payment:")] = true
		}
		if _, ok := decisionIDs[d.ID]; ok {
			out.hookRuns++
		}
	}
	for k, c := range cs {
		if details[k].Payment.State == payments.StateAccepted && !hooked[c.ref] {
			t.Errorf("payment %s accepted but its hook never ran", c.ref)
		}
	}
	return out
}

func (o *payOutcome) log(t *testing.T, what string, took time.Duration, s sim.Stats, rd *redirects) {
	t.Helper()
	t.Logf("%s in %s: by state %v; decided by channel %v", what, took.Round(time.Millisecond), sortedMap(o.byState), sortedMap(o.byChannel))
	t.Logf("  timeline rows by channel/verdict %v", sortedMap(o.verdicts))
	t.Logf("  decision events %v, hook deliveries of them %d", sortedMap(o.events), o.hookRuns)
	t.Logf("  simulator: %d automatic sent 2xx, %d failed, %d dropped; %d manual forms, %d never returned, %d returned",
		s.AutomaticSent, s.AutomaticFailed, s.AutomaticDropped, s.ManualForms, s.ManualNone, s.ManualReturned)
	t.Logf("  manual returns: %d redirected as expected, %d neutral pages, %d did not reach the daemon, %d wrong",
		rd.ok, rd.neutral, rd.failed, len(rd.bad))
}

func sortedMap(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		name := k
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(&b, "%s=%d", name, m[k])
	}
	return b.String()
}

func firstN(s []string, n int) string {
	if len(s) > n {
		return strings.Join(s[:n], "; ") + fmt.Sprintf("; ... (%d more)", len(s)-n)
	}
	return strings.Join(s, "; ")
}

func clipBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// metrics reads the admin /metrics page.
func (e *payEnv) metrics(ctx context.Context) string {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+e.h.AdminAddr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e.h.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// metricValue sums the samples of name whose labels contain every one of
// labels (`code="bad_seal"`).
func metricValue(text, name string, labels ...string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// procStat is one process as /proc/<pid>/stat tells it.
type procStat struct {
	pid, ppid int
	state     string
	comm      string
}

func readProcStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	open, closeIdx := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closeIdx < open {
		return procStat{}, false
	}
	f := strings.Fields(s[closeIdx+1:])
	if len(f) < 2 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return procStat{pid: pid, ppid: ppid, state: f[0], comm: s[open+1 : closeIdx]}, true
}

// childProcs lists the children of pid from /proc.
func childProcs(pid int) []procStat {
	ents, _ := os.ReadDir("/proc")
	var out []procStat
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(n); ok && st.ppid == pid {
			out = append(out, st)
		}
	}
	return out
}

// reconcileSchedule returns the reconcile schedule as GET /v1/schedules
// shows it.
func (e *payEnv) reconcileSchedule(ctx context.Context) httpapi.ScheduleInfo {
	e.t.Helper()
	var list []httpapi.ScheduleInfo
	if _, err := e.cl.Do(ctx, "GET", "/v1/schedules", nil, &list); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == "reconcile" {
			return s
		}
	}
	e.t.Fatalf("no reconcile schedule in %+v", list)
	return httpapi.ScheduleInfo{}
}

// waitNoReconcileRun returns at a moment no reconcile run is going (and
// none is due within 200ms). It may be called from any goroutine.
func (e *payEnv) waitNoReconcileRun(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var list []httpapi.ScheduleInfo
		if _, err := e.cl.Do(ctx, "GET", "/v1/schedules", nil, &list); err != nil {
			return err
		}
		for _, s := range list {
			if s.Name != "reconcile" || s.Running {
				continue
			}
			next, err := time.Parse(time.RFC3339, s.Next)
			if err == nil && time.Until(next) > 200*time.Millisecond {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("the reconcile schedule never idle for 200ms within 30s")
}
