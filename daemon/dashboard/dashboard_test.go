package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/dashboard"
	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/pluginhost"
	"github.com/acquit/acquit/daemon/schedule"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/pgtest"
	"github.com/acquit/acquit/plugins/atos"
	"github.com/acquit/acquit/plugins/atos/sim"
	"github.com/acquit/acquit/sdk"
)

const token = "dashboard-test-token-0123456789"

// Hostile strings as banks, hooks or plugins could hand them to acquit.
const (
	xssEvent    = `<script>alert('event')</script>`
	xssError    = `<img src=x onerror=alert("hook")>`
	xssSubject  = `"><svg onload=alert("subject")>`
	xssSchedule = `<script>alert("schedule")</script>`
	xssPlugin   = `</td><script>alert("plugin")</script>`
	xssCreditor = `<script>alert("creditor")</script>`
	xssReason   = `<img src=x onerror=alert("reason")>`
)

var hostile = []string{xssEvent, xssError, xssSubject, xssSchedule, xssPlugin, xssCreditor, xssReason}

type env struct {
	st      store.Store
	pay     *payments.Service
	tr      *transmissions.Service
	sched   *schedule.Scheduler
	reg     *prometheus.Registry
	srv     *httptest.Server
	deadID  string
	txID    string
	paidRef string
	lostRef string
	// retryRef is the second attempt of ORDER-44, refused the first time.
	retryRef, refusedRef string
	later                atomic.Int64 // how far the dashboard's clock is ahead
	spoolDir             string
}

// newEnv builds the dashboard over a real SQLite store, the payment service
// with the Atos plugin in-process against the Sips simulator, the
// transmission service, a scheduler, and fills them.
func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "acquit.db"), store.WithMigrations(payments.Migrations(), transmissions.Migrations()))
	if err != nil {
		t.Fatal(err)
	}
	return newEnvOn(t, st)
}

// newEnvOn is newEnv on a given store.
func newEnvOn(t *testing.T, st store.Store) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{reg: prometheus.NewRegistry()}
	var err error
	t.Cleanup(func() { st.Close() })
	e.st = st

	// Payments: the Atos plugin (in-process) and the Sips simulator.
	const mid, key = "002001000000001", "dashboard-test-sips-key-0123456789abcdef"
	s := sim.New(sim.Config{Merchants: []sim.Merchant{{ID: mid, Keys: map[string]string{"1": key}}}})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	settings, _ := json.Marshal(map[string]any{"default_merchant": "shop", "merchants": []map[string]any{{
		"name": "shop", "merchant_id": mid, "environment": "simulation", "paypage_url": s.URL(), "office_url": s.URL(),
		"keys": map[string]string{"1": key}, "key_version": "1", "seal_algorithm": "HMAC-SHA-256", "mode": "post",
		"interface_version": "HP_3.4"}}})
	gw := atos.New(atos.Silent())
	if err := gw.Configure(ctx, settings, nil); err != nil {
		t.Fatal(err)
	}
	public := httptest.NewServer(nil)
	t.Cleanup(public.Close)
	var later atomic.Int64 // how far the payment service's clock is ahead
	e.pay = payments.New(payments.Deps{Store: st, Gateway: func(string) (sdk.PaymentGateway, error) { return gw, nil },
		Logger: zerolog.Nop(), Config: payments.Config{DefaultGateway: "atos", PublicBaseURL: public.URL},
		Now: func() time.Time { return time.Now().Add(time.Duration(later.Load())) }})
	public.Config.Handler = e.pay.PublicHandler()
	started, err := e.pay.Start(ctx, payments.StartRequest{OrderID: "ORDER-42", Amount: 1007, Currency: "EUR",
		SuccessURL: "http://shop.example/ok", FailureURL: "http://shop.example/ko"})
	if err != nil {
		t.Fatal(err)
	}
	e.paidRef = started.Reference
	br := sim.NewBrowser()
	m, err := br.Pay(ctx, started.Method, started.RedirectURL, started.Fields, sim.Choice{Outcome: "accepted"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Returns {
		resp, err := br.Return(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := s.WaitDeliveries(wctx); err != nil {
		t.Fatal(err)
	}
	// ORDER-44: refused, then paid again by a second attempt.
	refused, err := e.pay.Start(ctx, payments.StartRequest{OrderID: "ORDER-44", Amount: 990, Currency: "EUR",
		SuccessURL: "http://shop.example/ok", FailureURL: "http://shop.example/ko"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := br.Pay(ctx, refused.Method, refused.RedirectURL, refused.Fields, sim.Choice{Outcome: "refused"}); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDeliveries(wctx); err != nil {
		t.Fatal(err)
	}
	retry, err := e.pay.Start(ctx, payments.StartRequest{OrderID: "ORDER-44", Amount: 990, Currency: "EUR",
		SuccessURL: "http://shop.example/ok", FailureURL: "http://shop.example/ko"})
	if err != nil {
		t.Fatal(err)
	}
	e.refusedRef, e.retryRef = refused.Reference, retry.Reference
	// A payment whose customer never came back; three days later Sips
	// Office is down and the payment is unknown at its final deadline.
	lost, err := e.pay.Start(ctx, payments.StartRequest{OrderID: "ORDER-43", Amount: 2500, Currency: "EUR",
		SuccessURL: "http://shop.example/ok", FailureURL: "http://shop.example/ko"})
	if err != nil {
		t.Fatal(err)
	}
	e.lostRef = lost.Reference
	later.Store(int64(73 * time.Hour))
	s.SetFaults(sim.Faults{OfficeDown: true})
	if _, err := e.pay.Reconcile(ctx, nil); err != nil {
		t.Fatal(err)
	}
	later.Store(0)

	// A transmission with a hostile creditor name, and a hostile PSR.
	e.spoolDir = filepath.Join(t.TempDir(), "spool")
	// ack_deadline 1ns: a file submitted and never taken is overdue at once.
	e.tr, err = transmissions.New(transmissions.Deps{Store: st, Banks: []transmissions.Bank{{Name: "demobank", Plugin: "ebics", AckKinds: []string{"psr"}, AckDeadline: time.Nanosecond}},
		SpoolDir: e.spoolDir, Logger: zerolog.Nop(),
		Transport: func(string) (sdk.BankTransport, error) { return nil, fmt.Errorf("no transport in this test") }})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.tr.Submit(ctx, "demobank", "sct", "testdata/pain001_hostile.xml")
	if err != nil {
		t.Fatal(err)
	}
	e.txID = sub.Transmission.ID
	psr, err := os.ReadFile("testdata/psr_hostile.xml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.Ingest(ctx, "demobank", "psr", sdk.Document{DownloadID: "d1", Function: "psr", Name: `psr"<b>.xml`, Content: psr}); err != nil {
		t.Fatal(err)
	}

	// A file the bank never took: its only upload attempt failed.
	b, err := os.ReadFile("testdata/pain001_hostile.xml")
	if err != nil {
		t.Fatal(err)
	}
	late := filepath.Join(t.TempDir(), "late-file.xml")
	if err := os.WriteFile(late, bytes.Replace(b, []byte("<MsgId>"), []byte("<MsgId>LATE-"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	lateSub, err := e.tr.Submit(ctx, "demobank", "sct", late)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.Send(ctx, lateSub.Transmission.ID, "test", nil); err == nil {
		t.Fatal("upload without a transport succeeded")
	}

	// A dead event with hostile payload, subject and error.
	var ev store.Event
	if err := st.InTx(ctx, func(tx store.Tx) error {
		var err error
		ev, err = tx.Emit(ctx, store.NewEvent{Type: "custom.hostile", Subject: xssSubject, Payload: json.RawMessage(`{"x":` + mustJSON(xssEvent) + `}`)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	claimed, err := st.ClaimEvents(ctx, "w", 100, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range claimed {
		dead := c.ID == ev.ID
		if err := st.FailEvent(ctx, c.ID, "w", xssError, time.Now(), dead); err != nil {
			t.Fatal(err)
		}
	}
	e.deadID = ev.ID

	// A schedule whose job fails with a hostile message.
	reg := schedule.NewRegistry()
	reg.Register("boom", func(context.Context, map[string]string) (string, error) { return "", fmt.Errorf("%s", xssSchedule) })
	e.sched, err = schedule.New(schedule.Options{Store: st, Registry: reg, Instance: "test", Logger: zerolog.Nop()},
		[]schedule.Entry{{Name: "nightly", Spec: "0 3 * * *", Timezone: "Europe/Paris", Job: "boom"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sched.RunNow(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.sched.Stop(context.Background()) })

	api := &httpapi.AdminAPI{Events: st}
	paris, _ := time.LoadLocation("Europe/Paris")
	db, err := dashboard.New(dashboard.Deps{Token: token, Store: st, Payments: e.pay, Transmissions: e.tr, Schedules: e.sched,
		Plugins: func() []pluginhost.Status {
			return []pluginhost.Status{
				{Name: "atos", Kind: sdk.KindPaymentGateway, State: pluginhost.StateUp, Info: sdk.Info{Version: "1.4.0"}, PID: 4242},
				{Name: "ebics", Kind: sdk.KindBankTransport, State: pluginhost.StateRestarting, Restarts: 3, LastError: xssPlugin},
			}
		},
		Replay: api.Replay, Location: paris, Instance: "test", SessionTTL: time.Hour,
		Now: func() time.Time { return time.Now().Add(time.Duration(e.later.Load())) }, Logger: zerolog.New(zerolog.NewTestWriter(t)), Registerer: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	// TLS: the session cookie is Secure, so a client keeps it only over https.
	e.srv = httptest.NewTLSServer(db)
	t.Cleanup(e.srv.Close)
	return e
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (e *env) do(t *testing.T, c *http.Client, method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// noRedirect copies c (httptest hands out one shared client) and makes the
// copy stop at redirects.
func noRedirect(shared *http.Client) *http.Client {
	c := *shared
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func bearer() map[string]string { return map[string]string{"Authorization": "Bearer " + token} }

// login logs a cookie-jar client in through the form and returns it with
// the CSRF token of its session.
func (e *env) login(t *testing.T) (*http.Client, string) {
	t.Helper()
	c := noRedirect(e.srv.Client())
	c.Jar, _ = cookiejar.New(nil)
	resp, _ := e.do(t, c, "POST", "/ui/login", url.Values{"token": {token}, "next": {"/ui/events"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/events" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := e.do(t, c, "GET", "/ui/events", nil, nil)
	i := strings.Index(page, `name="csrf" value="`)
	if i < 0 {
		t.Fatal("no CSRF token on the events page")
	}
	rest := page[i+len(`name="csrf" value="`):]
	return c, rest[:strings.IndexByte(rest, '"')]
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	anon := noRedirect(e.srv.Client())

	resp, _ := e.do(t, anon, "GET", "/ui/payments?state=accepted", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login?next=%2Fui%2Fpayments%3Fstate%3Daccepted" {
		t.Fatalf("anonymous GET: %d to %q, want a redirect to the login form", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = e.do(t, anon, "GET", "/ui/", nil, map[string]string{"Authorization": "Bearer wrong-token-wrong-token"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong bearer token: %d", resp.StatusCode)
	}
	resp, page := e.do(t, anon, "GET", "/ui/", nil, bearer())
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Needs a person now") {
		t.Fatalf("bearer token: %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Security-Policy"); got != dashboard.CSP || !strings.Contains(got, "script-src 'self'") {
		t.Fatalf("CSP header %q", got)
	}
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
		if resp.Header.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), want)
		}
	}
	resp, _ = e.do(t, anon, "POST", "/ui/login", url.Values{"token": {"not-the-token-at-all"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	// A login redirect never leaves the dashboard.
	resp, _ = e.do(t, anon, "POST", "/ui/login", url.Values{"token": {token}, "next": {"//evil.example/ui/"}}, nil)
	if resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("login next=//evil.example: redirected to %q", resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "acquit_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/ui/" {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/ui/", cookie)
	}

	c, csrf := e.login(t)
	resp, _ = e.do(t, c, "GET", "/ui/plugins", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with session: %d", resp.StatusCode)
	}
	resp, _ = e.do(t, c, "POST", "/ui/logout", url.Values{"csrf": {csrf}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	// The old cookie value no longer opens anything.
	stale := noRedirect(e.srv.Client())
	u, _ := url.Parse(e.srv.URL + "/ui/")
	stale.Jar, _ = cookiejar.New(nil)
	stale.Jar.SetCookies(u, []*http.Cookie{{Name: "acquit_session", Value: cookie.Value, Path: "/ui/"}})
	resp, _ = e.do(t, stale, "GET", "/ui/", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the other session (not logged out) should still work: %d", resp.StatusCode)
	}
	resp, _ = e.do(t, c, "GET", "/ui/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout: %d, want a redirect to the login form", resp.StatusCode)
	}
	if n := testutil.ToFloat64(refusals(t, e, "bad_token")); n != 2 {
		t.Errorf("bad_token refusals = %v, want 2", n)
	}
}

func refusals(t *testing.T, e *env, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "acquit_dashboard_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == reason {
					return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
				}
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return 0 })
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.login(t)
	path := "/ui/events/" + e.deadID + "/replay"
	cases := []struct {
		name   string
		form   url.Values
		hdr    map[string]string
		reason string
	}{
		{"no token", url.Values{}, nil, "bad_csrf"},
		{"wrong token", url.Values{"csrf": {strings.Repeat("0", len(csrf))}}, nil, "bad_csrf"},
		{"token of the query, not the form", url.Values{}, nil, "bad_csrf"},
		{"other origin", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}, "bad_origin"},
		{"opaque origin", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "null"}, "bad_origin"},
		{"other referer", url.Values{"csrf": {csrf}}, map[string]string{"Referer": "https://evil.example/x"}, "bad_origin"},
	}
	for _, tc := range cases {
		p := path
		if tc.name == "token of the query, not the form" {
			p += "?csrf=" + csrf
		}
		resp, _ := e.do(t, c, "POST", p, tc.form, tc.hdr)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, resp.StatusCode)
		}
		ev, err := e.st.GetEvent(context.Background(), e.deadID)
		if err != nil || ev.State != store.EventDead {
			t.Fatalf("%s: the event changed: %v %v", tc.name, ev.State, err)
		}
	}
	if n := testutil.ToFloat64(refusals(t, e, "bad_csrf")); n != 3 {
		t.Errorf("bad_csrf refusals = %v, want 3", n)
	}
	if n := testutil.ToFloat64(refusals(t, e, "bad_origin")); n != 3 {
		t.Errorf("bad_origin refusals = %v, want 3", n)
	}
	// A run now without the token does not run.
	before, _ := e.st.ListRuns(context.Background(), "nightly", 10)
	if resp, _ := e.do(t, c, "POST", "/ui/schedules/nightly/run", url.Values{}, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("run now without CSRF token: %d", resp.StatusCode)
	}
	if after, _ := e.st.ListRuns(context.Background(), "nightly", 10); len(after) != len(before) {
		t.Fatalf("run now without CSRF token ran the schedule (%d -> %d runs)", len(before), len(after))
	}
	// Without a session a POST is refused outright.
	anon := noRedirect(e.srv.Client())
	if resp, _ := e.do(t, anon, "POST", path, url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST without session: %d", resp.StatusCode)
	}

	// With the right token, from the dashboard's own page: replayed.
	resp, _ := e.do(t, c, "POST", path, url.Values{"csrf": {csrf}, "back": {"/ui/"}}, map[string]string{"Origin": e.srv.URL})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/?flash=replayed" {
		t.Fatalf("replay: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ev, _ := e.st.GetEvent(context.Background(), e.deadID)
	if ev.State != store.EventPending || ev.Attempts != 0 {
		t.Fatalf("after replay: %s, %d attempts", ev.State, ev.Attempts)
	}
	resp, _ = e.do(t, c, "POST", "/ui/schedules/nightly/run", url.Values{"csrf": {csrf}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/schedules?flash=run_failed" {
		t.Fatalf("run now: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if after, _ := e.st.ListRuns(context.Background(), "nightly", 10); len(after) != len(before)+1 {
		t.Fatalf("run now: %d runs, want %d", len(after), len(before)+1)
	}
	// The bearer token needs no CSRF token (a browser never sends it by itself).
	resp, _ = e.do(t, anon, "POST", "/ui/schedules/nightly/run", url.Values{}, bearer())
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("run now with bearer token: %d", resp.StatusCode)
	}
}

// TestHostileInputEscaped renders every page holding bank, hook and plugin
// text and checks that no hostile markup comes out as markup.
func TestHostileInputEscaped(t *testing.T) {
	e := newEnv(t)
	pages := []string{"/ui/", "/ui/events", "/ui/events?state=dead", "/ui/events/" + e.deadID, "/ui/transmissions",
		"/ui/transmissions/" + e.txID, "/ui/schedules", "/ui/plugins", "/ui/payments", "/ui/payments/" + e.paidRef}
	seen := map[string]bool{}
	for _, p := range pages {
		resp, body := e.do(t, e.srv.Client(), "GET", p, nil, bearer())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d\n%s", p, resp.StatusCode, body)
		}
		for _, h := range hostile {
			if strings.Contains(body, h) {
				t.Errorf("%s: hostile string %q is on the page unescaped", p, h)
			}
			if strings.Contains(body, escaped(h)) {
				seen[h] = true
			}
		}
		if strings.Contains(body, "<script>") || strings.Contains(body, "onerror=") && !strings.Contains(body, "onerror=alert(&#34;") {
			t.Errorf("%s: markup from input", p)
		}
	}
	for _, h := range hostile {
		if !seen[h] {
			t.Errorf("hostile string %q was shown on no page (escaped as %q): the test did not reach it", h, escaped(h))
		}
	}
}

// escaped is the text as html/template writes it in HTML text.
func escaped(s string) string {
	r := strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;", `"`, "&#34;", `'`, "&#39;")
	return r.Replace(s)
}

func TestAmountsTimesAndDownloads(t *testing.T) {
	e := newEnv(t)
	c := e.srv.Client()
	_, page := e.do(t, c, "GET", "/ui/payments/"+e.paidRef, nil, bearer())
	for _, want := range []string{"10.07 EUR", "ORDER-42", "accepted", "automatic", "decided", "payment.accepted", "pending</span> → "} {
		if !strings.Contains(page, want) {
			t.Errorf("payment page lacks %q", want)
		}
	}
	if !strings.Contains(page, "Times in Europe/Paris") || !(strings.Contains(page, " CET") || strings.Contains(page, " CEST")) {
		t.Errorf("payment page does not show times in Europe/Paris")
	}
	_, page = e.do(t, c, "GET", "/ui/transmissions/"+e.txID, nil, bearer())
	for _, want := range []string{"600.50 EUR", "200.50 EUR", "AC01", "XSS-E2", "RJCT"} {
		if !strings.Contains(page, want) {
			t.Errorf("transmission page lacks %q", want)
		}
	}
	// The original file, byte for byte.
	resp, body := e.do(t, c, "GET", "/ui/transmissions/"+e.txID+"/file", nil, bearer())
	orig, _ := os.ReadFile("testdata/pain001_hostile.xml")
	if resp.StatusCode != 200 || body != string(orig) || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("original file: %d, %d bytes, %q", resp.StatusCode, len(body), resp.Header.Get("Content-Disposition"))
	}
	// The acknowledgement, byte for byte, under a file name cleaned of markup.
	acks, err := e.tr.AcksOf(context.Background(), e.txID)
	if err != nil || len(acks) != 1 {
		t.Fatalf("acks: %v %v", acks, err)
	}
	resp, body = e.do(t, c, "GET", "/ui/transmissions/"+e.txID+"/acks/"+acks[0].ID, nil, bearer())
	psr, _ := os.ReadFile("testdata/psr_hostile.xml")
	if resp.StatusCode != 200 || body != string(psr) {
		t.Fatalf("ack download: %d, %d bytes", resp.StatusCode, len(body))
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename=psrb.xml` || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("ack download headers: %q %q", cd, resp.Header.Get("Content-Type"))
	}
	// An acknowledgement of another transmission is not served under this one.
	resp, _ = e.do(t, c, "GET", "/ui/transmissions/other/acks/"+acks[0].ID, nil, bearer())
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("ack under another transmission: %d", resp.StatusCode)
	}
	resp, _ = e.do(t, c, "GET", "/ui/payments?state=bogus", nil, bearer())
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown state filter: %d", resp.StatusCode)
	}
}

// TestOverviewNeedsAPerson: the overview lists what needs a person and
// nothing else.
func TestOverviewNeedsAPerson(t *testing.T) { checkOverview(t, newEnv(t)) }

// TestPagesOnPostgres renders the overview and every page with PostgreSQL
// as the store (the queries the dashboard reads through are portable).
func TestPagesOnPostgres(t *testing.T) {
	st, err := postgres.Open(context.Background(), pgtest.DSN(t), store.WithMigrations(payments.Migrations(), transmissions.Migrations()))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, st)
	checkOverview(t, e)
	for _, p := range []string{"/ui/events", "/ui/events/" + e.deadID, "/ui/transmissions", "/ui/transmissions/" + e.txID,
		"/ui/schedules", "/ui/plugins", "/ui/payments", "/ui/payments/" + e.paidRef, "/ui/payments/" + e.lostRef} {
		if resp, body := e.do(t, e.srv.Client(), "GET", p, nil, bearer()); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d\n%s", p, resp.StatusCode, body)
		}
	}
	_, page := e.do(t, e.srv.Client(), "GET", "/ui/transmissions/"+e.txID, nil, bearer())
	for _, want := range []string{"600.50 EUR", "AC01", "psr", "download"} {
		if !strings.Contains(page, want) {
			t.Errorf("transmission page on PostgreSQL lacks %q", want)
		}
	}
}

func checkOverview(t *testing.T, e *env) {
	t.Helper()
	c := e.srv.Client()
	_, page := e.do(t, c, "GET", "/ui/", nil, bearer())
	for _, want := range []string{"Payments still unknown", e.lostRef, "25.00 EUR", "Dead events", e.deadID, "Failing schedules", "nightly", "Plugins down", "restarting",
		"1/2</span> plugins up", "0/1</span> schedules ok", "pain001_hostile.xml", "partially_accepted",
		"Files the bank has not taken by their deadline", "late-file.xml", "no transport in this test"} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if strings.Contains(page, e.paidRef) || strings.Contains(page, "Nothing needs a person now") {
		t.Errorf("overview lists the accepted payment or says all is quiet")
	}
	_, page = e.do(t, c, "GET", "/ui/payments?verdict=decided", nil, bearer())
	if !strings.Contains(page, e.paidRef) || !strings.Contains(page, "10.07 EUR") {
		t.Errorf("payments with a deciding response: the paid payment is missing")
	}
	_, page = e.do(t, c, "GET", "/ui/payments?verdict=conflict", nil, bearer())
	if strings.Contains(page, e.paidRef) {
		t.Errorf("payments with a conflicting response: lists a payment without one")
	}
}

// TestSessionEndsAndLoginThrottle: a session ends after its TTL; after 10
// failed logins in a minute every login is refused for the rest of it,
// while the bearer token keeps working.
func TestSessionEndsAndLoginThrottle(t *testing.T) {
	e := newEnv(t)
	c, _ := e.login(t)
	if resp, _ := e.do(t, c, "GET", "/ui/", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh session: %d", resp.StatusCode)
	}
	e.later.Store(int64(time.Hour + time.Second))
	if resp, _ := e.do(t, c, "GET", "/ui/", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("session past its TTL: %d, want a redirect to the login form", resp.StatusCode)
	}
	e.later.Store(0)

	anon := noRedirect(e.srv.Client())
	for i := 0; i < 10; i++ {
		if resp, _ := e.do(t, anon, "POST", "/ui/login", url.Values{"token": {fmt.Sprintf("guess-%02d-guess-guess", i)}}, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %d", i, resp.StatusCode)
		}
	}
	resp, _ := e.do(t, anon, "POST", "/ui/login", url.Values{"token": {token}}, nil)
	if resp.StatusCode != http.StatusTooManyRequests || len(resp.Cookies()) != 0 {
		t.Fatalf("login after 10 failures: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	if n := testutil.ToFloat64(refusals(t, e, "throttled")); n != 1 {
		t.Errorf("throttled refusals = %v, want 1", n)
	}
	if resp, _ := e.do(t, anon, "GET", "/ui/", nil, bearer()); resp.StatusCode != http.StatusOK {
		t.Fatalf("bearer token while logins are throttled: %d", resp.StatusCode)
	}
	e.later.Store(int64(loginWindowForTest))
	if resp, _ := e.do(t, anon, "POST", "/ui/login", url.Values{"token": {token}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login a minute later: %d", resp.StatusCode)
	}
}

const loginWindowForTest = time.Minute + time.Second

// TestPaymentAttemptsShown: the second attempt of an order (after a
// refusal) lists both attempts.
func TestPaymentAttemptsShown(t *testing.T) {
	e := newEnv(t)
	if e.retryRef == e.refusedRef {
		t.Fatalf("a start after a refusal returned the refused payment %s", e.refusedRef)
	}
	_, page := e.do(t, noRedirect(e.srv.Client()), "GET", "/ui/payments/"+e.retryRef, nil, bearer())
	for _, want := range []string{"Attempts of order ORDER-44", e.refusedRef, e.retryRef, "refused", "9.90 EUR"} {
		if !strings.Contains(page, want) {
			t.Errorf("payment page lacks %q", want)
		}
	}
}
