package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/store"
	wlsim "github.com/acquit/acquit/plugins/worldline/sim"
)

// The Worldline Direct account of the demo and the end-to-end tests.
const (
	WLMerchantID   = "acquitshop"
	WLAPIKeyID     = "DEMOKEY1"
	WLAPISecret    = "demo-worldline-api-secret-0123456789"
	WLWebhookKeyID = "whk-demo-1"
	WLWebhookKey   = "demo-worldline-webhook-secret-0123"
)

// WorldlineSim starts a Worldline Direct simulator sending its webhooks to
// the harness' public listener and configures the worldline plugin
// against it (secrets in files). client sends the webhooks (nil: default).
func WorldlineSim(h *Harness, seed uint64, faults wlsim.Faults, expireAfter time.Duration, client *http.Client) (*wlsim.Sim, error) {
	if err := h.WriteSecret("wl-api-secret", WLAPISecret); err != nil {
		return nil, err
	}
	if err := h.WriteSecret("wl-webhook-key", WLWebhookKey); err != nil {
		return nil, err
	}
	s := wlsim.New(wlsim.Config{
		Merchants: []wlsim.Merchant{{ID: WLMerchantID, APIKeys: map[string]string{WLAPIKeyID: WLAPISecret},
			WebhookKeyID: WLWebhookKeyID, WebhookSecret: WLWebhookKey,
			WebhookURL: "http://" + h.PublicAddr + "/notify/worldline/automatic"}},
		Seed: seed, Faults: faults, ExpireAfter: expireAfter, HTTPClient: client,
	})
	if err := s.Start(); err != nil {
		return nil, err
	}
	h.Template().Worldline = &WorldlineData{APIURL: s.URL(), MerchantID: WLMerchantID, APIKeyID: WLAPIKeyID,
		APISecretFile: h.SecretPath("wl-api-secret"), WebhookKeyID: WLWebhookKeyID, WebhookSecretFile: h.SecretPath("wl-webhook-key")}
	return s, nil
}

// WLCustomer is one simulated Worldline payment.
type WLCustomer struct {
	I       int
	Choice  string // accepted, refused, cancelled, uncertain, or "" (abandons on the hosted page)
	Returns bool   // comes back to the shop
	Ref     string
	// Back is the return URL the hosted page sent the browser to.
	Back string
	// ReturnFailed is set when the return did not reach the daemon (down).
	ReturnFailed atomic.Bool
	// Redirected counts returns the daemon answered with a 303.
	Redirected atomic.Int32
}

// Want is the state acquit must end with.
func (c *WLCustomer) Want() payments.State {
	switch c.Choice {
	case "":
		return payments.StateExpired
	case "uncertain":
		return payments.StateUnknown
	}
	return payments.State(c.Choice)
}

// PlanWorldline draws n customers: 3% abandon on the hosted page, 2% leave
// the acquirer uncertain for good, then 15% refused, 10% cancelled, the
// rest accepted; noReturn of those who chose never come back.
func PlanWorldline(n, first int, seed uint64, noReturn float64) []*WLCustomer {
	rng := rand.New(rand.NewPCG(seed, 13))
	out := make([]*WLCustomer, n)
	for k := range out {
		c := &WLCustomer{I: first + k, Choice: "accepted"}
		switch x := rng.Float64(); {
		case x < 0.03:
			c.Choice = ""
		case x < 0.05:
			c.Choice = "uncertain"
		case x < 0.20:
			c.Choice = "refused"
		case x < 0.30:
			c.Choice = "cancelled"
		}
		c.Returns = c.Choice != "" && rng.Float64() >= noReturn
		out[k] = c
	}
	return out
}

// RedirectLog collects returns that ended on the wrong page.
type RedirectLog struct {
	mu  sync.Mutex
	Bad []string
}

func (r *RedirectLog) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.Bad) < 20 {
		r.Bad = append(r.Bad, s)
	}
}

// DriveWorldline runs the customers: start through the shop API (retried
// while the daemon is down), choose on the hosted page, come back (a
// return that meets a dead daemon is marked, not retried). onStarted is
// called with the count of payments started.
func DriveWorldline(ctx context.Context, h *Harness, cs []*WLCustomer, workers int, rd *RedirectLog, onStarted func(int)) error {
	br := &wlsim.Browser{Client: &http.Client{Timeout: 30 * time.Second}}
	var started atomic.Int64
	return ForEach(ctx, cs, workers, func(c *WLCustomer) error {
		if err := driveOne(ctx, h, br, c, rd); err != nil {
			return err
		}
		if onStarted != nil {
			onStarted(int(started.Add(1)))
		}
		return nil
	})
}

func driveOne(ctx context.Context, h *Harness, br *wlsim.Browser, c *WLCustomer, rd *RedirectLog) error {
	req := payments.StartRequest{Gateway: "worldline", OrderID: fmt.Sprintf("WL-%06d", c.I), Amount: int64(1000 + c.I*3), Currency: "EUR",
		CustomerEmail: fmt.Sprintf("wl%d@example.com", c.I), SuccessURL: successURL, FailureURL: failureURL}
	st, err := StartPayment(ctx, h.Client(), req)
	if err != nil {
		return err
	}
	c.Ref = st.Reference
	if c.Choice == "" {
		return nil // looks at the page, leaves
	}
	back, err := br.Pay(ctx, st.RedirectURL, c.Choice)
	if err != nil {
		return fmt.Errorf("payment %s: %w", c.Ref, err)
	}
	c.Back = back
	if c.Returns {
		ReturnWorldline(ctx, br, c, rd)
	}
	return nil
}

// ReturnWorldline brings the customer back to the shop once and checks
// the page the daemon sends the browser to.
func ReturnWorldline(ctx context.Context, br *wlsim.Browser, c *WLCustomer, rd *RedirectLog) {
	if br == nil {
		br = &wlsim.Browser{}
	}
	resp, err := br.Return(ctx, c.Back)
	if err != nil {
		c.ReturnFailed.Store(true)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	want := failureURL
	if c.Choice == "accepted" {
		want = successURL
	}
	switch {
	case resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, want):
		c.Redirected.Add(1)
	case resp.StatusCode == http.StatusOK && c.Choice == "uncertain":
		// The neutral "being confirmed" page: nothing final to show.
	default:
		rd.add(fmt.Sprintf("%s (%s): %d to %q, want %s", c.Ref, c.Choice, resp.StatusCode, loc, want))
	}
}

// WLReport is what CheckWorldline found.
type WLReport struct {
	ByState, ByChannel, Verdicts, Events map[string]int
	// Problems lists every broken guarantee (empty: all held).
	Problems []string
}

// CheckWorldline reads every payment back: its state must be what the
// customer chose (expired when never paid, unknown when left uncertain),
// with exactly one decision event (none and one payment.unknown for the
// uncertain ones), no conflict or mismatch, and every webhook acquit
// answered 2xx and every return it answered 303 on the timeline.
func CheckWorldline(ctx context.Context, h *Harness, s *wlsim.Sim, cs []*WLCustomer) (*WLReport, error) {
	r := &WLReport{ByState: map[string]int{}, ByChannel: map[string]int{}, Verdicts: map[string]int{}, Events: map[string]int{}}
	problem := func(f string, a ...any) {
		if len(r.Problems) < 30 {
			r.Problems = append(r.Problems, fmt.Sprintf(f, a...))
		}
	}
	delivered := s.Delivered()
	refs := map[string]*WLCustomer{}
	for _, c := range cs {
		refs[c.Ref] = c
		var d payments.Detail
		if _, err := h.Client().Do(ctx, "GET", "/v1/payments/"+url.PathEscape(c.Ref), nil, &d); err != nil {
			return nil, fmt.Errorf("payment %s: %w", c.Ref, err)
		}
		p := d.Payment
		r.ByState[string(p.State)]++
		ch := p.DecidedChannel
		if ch == "" {
			ch = "none (unknown)"
		}
		r.ByChannel[ch]++
		if p.State != c.Want() {
			problem("%s (%q): %s by %s, want %s", c.Ref, c.Choice, p.State, p.DecidedChannel, c.Want())
		}
		auto, manual := 0, 0
		for _, t := range d.Timeline {
			r.Verdicts[t.Channel+"/"+string(t.Verdict)]++
			switch t.Channel {
			case "automatic":
				auto++
			case "manual":
				manual++
			}
		}
		if n := delivered[c.Ref]; auto < n {
			problem("%s: %d webhooks answered 2xx, %d on the timeline", c.Ref, n, auto)
		}
		if n := int(c.Redirected.Load()); manual < n {
			problem("%s: %d returns answered 303, %d on the timeline", c.Ref, n, manual)
		}
	}
	perSubject := map[string]int{}
	for _, typ := range []string{"payment.accepted", "payment.refused", "payment.cancelled", "payment.expired", "payment.failed",
		"payment.unknown", "payment.conflict", "payment.mismatch", "payment.captured"} {
		var evs []store.Event
		if _, err := h.Client().Do(ctx, "GET", "/v1/events?limit=10000&type="+typ, nil, &evs); err != nil {
			return nil, err
		}
		for _, ev := range evs {
			ref := strings.TrimPrefix(ev.Subject, "payment:")
			c, ok := refs[ref]
			if !ok {
				continue
			}
			r.Events[typ]++
			switch typ {
			case "payment.conflict", "payment.mismatch":
				problem("%s event for %s", typ, ref)
			case "payment.unknown":
				if c.Choice != "uncertain" {
					problem("payment.unknown for %s (%q)", ref, c.Choice)
				}
			case "payment.captured":
			default:
				perSubject[ref]++
			}
		}
	}
	for _, c := range cs {
		want := 1
		if c.Choice == "uncertain" {
			want = 0
		}
		if perSubject[c.Ref] != want {
			problem("%s (%q): %d decision events, want %d", c.Ref, c.Choice, perSubject[c.Ref], want)
		}
	}
	return r, nil
}

// WaitWorldline waits until every customer's payment has left pending.
func WaitWorldline(ctx context.Context, h *Harness, cs []*WLCustomer, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var ps []payments.Payment
		if _, err := h.Client().Do(ctx, "GET", "/v1/payments?gateway=worldline&state=pending&limit=1", nil, &ps); err == nil && len(ps) == 0 {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("worldline payments still pending after %s", d)
}

// FormatCounts renders a count map sorted by key.
func FormatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

type worldlineDemo struct {
	sim *wlsim.Sim
	o   Options
}

func setupWorldline(h *Harness, o Options) (*worldlineDemo, error) {
	s, err := WorldlineSim(h, o.Seed+2, wlsim.Faults{Drop: o.DropAuto, Duplicate: 0.1, Reorder: 0.1, MaxDelay: 300 * time.Millisecond, Uncertain: 0.05},
		20*time.Second, nil)
	if err != nil {
		return nil, err
	}
	// Uncertain payments become payment.unknown at the final deadline.
	h.Template().FinalDeadline = "20s"
	return &worldlineDemo{sim: s, o: o}, nil
}

func (w *worldlineDemo) close() { _ = w.sim.Close() }

func (w *worldlineDemo) run(ctx context.Context, h *Harness, out io.Writer) error {
	n := w.o.Payments
	fmt.Fprintf(out, "3. %d card payments through the Worldline Direct simulator: %.0f%% of webhooks dropped, 10%% duplicated, 10%% reordered, %.0f%% of customers never return\n",
		n, w.o.DropAuto*100, w.o.NoReturn*100)
	cs := PlanWorldline(n, 1, w.o.Seed+3, w.o.NoReturn)
	rd := &RedirectLog{}
	start := time.Now()
	if err := DriveWorldline(ctx, h, cs, 8, rd, nil); err != nil {
		return err
	}
	if err := w.sim.WaitDeliveries(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "   customers done in %s; waiting for reconciliation (GetHostedCheckout, GetPaymentDetails) and the final deadline of the uncertain ones...\n",
		time.Since(start).Round(time.Millisecond))
	if err := WaitWorldline(ctx, h, cs, 3*time.Minute); err != nil {
		return err
	}
	if err := waitIdle(ctx, h, time.Minute); err != nil {
		return err
	}
	r, err := CheckWorldline(ctx, h, w.sim, cs)
	if err != nil {
		return err
	}
	st := w.sim.Stats()
	fmt.Fprintf(out, "   simulator: %d webhooks planned, %d dropped, %d duplicated, %d payments reordered, %d answered 2xx\n",
		st.WebhooksPlanned, st.Dropped, st.Duplicated, st.Reordered, st.Delivered2xx)
	fmt.Fprintf(out, "   decided by: %s\n   final state: %s\n   events: %s\n", FormatCounts(r.ByChannel), FormatCounts(r.ByState), FormatCounts(r.Events))
	fmt.Fprintf(out, "   every payment ends as the customer and the acquirer decided, once: %v\n\n", len(r.Problems) == 0 && len(rd.Bad) == 0)
	if len(r.Problems) > 0 || len(rd.Bad) > 0 {
		return fmt.Errorf("worldline: %d problems (%s), %d bad redirects (%s)", len(r.Problems), strings.Join(r.Problems, "; "), len(rd.Bad), strings.Join(rd.Bad, "; "))
	}
	return nil
}
