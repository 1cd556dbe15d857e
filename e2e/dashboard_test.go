package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/demo"
	atossim "github.com/acquit/acquit/plugins/atos/sim"
	ebicssim "github.com/acquit/acquit/plugins/ebics/sim"
)

// chromiumPath finds headless Chromium: $ACQUIT_CHROMIUM, then the Debian
// package's binary. Without it the browser tests skip, except under CI
// (tools/test.sh installs it) where they fail.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("ACQUIT_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found (tools/test.sh installs the Debian package chromium); the browser tests must run under CI")
	}
	t.Skip("chromium not found: apt-get install chromium, or set ACQUIT_CHROMIUM")
	return ""
}

// hostileScript is a hook event payload the dashboard must show as text.
const hostileScript = `<script>alert('xss')</script><img src=x onerror="alert('xss2')">`

// TestDashboardInBrowser runs the real daemon (acquit serve with the Atos
// and EBICS plugins against both simulators), fills it with payments,
// transmissions that end accepted, partially accepted, rejected and
// unacknowledged, a dead event with hostile text, then drives headless
// Chromium through every dashboard page: login form, overview, payments
// and a payment's timeline, transmissions and a transmission's page, events
// with a replay, schedules with "run now", plugins. It fails on any CSP
// violation, script error or JavaScript dialog. With
// ACQUIT_UPDATE_SCREENSHOTS=1 it writes docs/screenshots/*.png.
func TestDashboardInBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	// The dashboard shows times in the daemon's zone by default.
	t.Setenv("TZ", "Europe/Paris")
	c := ctx(t)
	h := newHarness(t)

	// Card payments against the Sips simulator.
	if err := h.WriteSecret("sips-key-1", payKey); err != nil {
		t.Fatal(err)
	}
	sips := atossim.New(atossim.Config{Merchants: []atossim.Merchant{{ID: payMerchantID, Keys: map[string]string{"1": payKey}}}, Seed: 7})
	if err := sips.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sips.Close() })
	tp := h.Template()
	tp.Atos = &demo.AtosData{PaypageURL: sips.URL(), OfficeURL: sips.URL(), MerchantID: payMerchantID, KeyFile: h.SecretPath("sips-key-1")}
	tp.ReconcileAfter = "2s"
	tp.ReconcileEvery = "0 3 * * *" // nightly: "run now" below never meets a scheduled run

	// EBICS against the bank simulator.
	bank, _ := startEbicsBank(t, h, "de", 16<<10, ebicssim.Config{})
	tp.AckDeadline = "4s"
	tp.FetchEvery = "@every 1s"

	// Hooks report to a recorder that refuses one subject: its event dies.
	rec := newFailingRecorder(t)
	rec.mu.Lock()
	rec.fail["order-sync"] = -1
	rec.mu.Unlock()
	tp.RecorderURL = rec.srv.URL
	tp.Hooks = []demo.HookData{{Events: `["custom.*"]`, Script: "flaky.lua", Function: "on_event"}}
	if err := h.Start(c); err != nil {
		t.Fatal(err)
	}

	cl := h.Client()
	var dead store.Event
	if _, err := cl.Do(c, "POST", "/v1/events", httpapi.EmitRequest{Type: "custom.erp_sync", Subject: "order-sync",
		Data: json.RawMessage(`{"note":` + jsonString(hostileScript) + `}`)}, &dead); err != nil {
		t.Fatal(err)
	}
	var redirectErrs []string
	if _, err := demo.Drive(c, h, sips, 14, 4, 20261204, &redirectErrs); err != nil {
		t.Fatal(err)
	}
	if err := demo.Onboard(c, h, ebicsBank); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(h.Dir, "files")
	type plan struct {
		msgID  string
		faults func(e2e []string) ebicssim.Faults
		want   transmissions.State
	}
	plans := []plan{
		{"PAYROLL-2026-12", func([]string) ebicssim.Faults { return ebicssim.Faults{} }, transmissions.StateAccepted},
		{"SUPPLIERS-W49", func(e []string) ebicssim.Faults { return ebicssim.Faults{RejectTxs: []string{e[3], e[11]}} }, transmissions.StatePartial},
		{"REFUNDS-W49", func([]string) ebicssim.Faults { return ebicssim.Faults{RejectFile: true} }, transmissions.StateRejected},
		{"TAXES-Q4", func([]string) ebicssim.Faults { return ebicssim.Faults{NeverAck: true} }, transmissions.StateUnacknowledged},
	}
	ids := map[transmissions.State]string{}
	for i, p := range plans {
		path, e2e, err := demo.GenerateFile(dir, p.msgID, 24, uint64(100+i))
		if err != nil {
			t.Fatal(err)
		}
		bank.SetFaults(p.faults(e2e))
		tr, err := demo.Upload(c, h, ebicsBank, path)
		if err != nil {
			t.Fatal(err)
		}
		bank.WaitAcks()
		ids[p.want] = tr.ID
	}
	bank.SetFaults(ebicssim.Faults{})
	for _, p := range plans {
		if _, err := demo.WaitState(c, h, ids[p.want], 60*time.Second, p.want); err != nil {
			t.Fatal(err)
		}
	}
	if err := demo.WaitDecided(c, h, time.Minute); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the refused hook's event to be dead", func() bool {
		var ev store.Event
		_, err := cl.Do(c, "GET", "/v1/events/"+dead.ID, nil, &ev)
		return err == nil && ev.State == store.EventDead
	})

	// `acquit plugins list` (issue 11 item 10) against the same daemon.
	out, code := acquitCLI(t, h, "plugins", "list")
	if code != 0 || !strings.Contains(out, "NAME") {
		t.Fatalf("acquit plugins list: exit %d\n%s", code, out)
	}
	for _, name := range []string{"atos", "ebics"} {
		if !lineWith(out, name, "up") {
			t.Errorf("acquit plugins list: no line for %s up:\n%s", name, out)
		}
	}

	// The browser.
	shots := t.TempDir()
	if os.Getenv("ACQUIT_UPDATE_SCREENSHOTS") == "1" {
		shots = filepath.Join("..", "docs", "screenshots")
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.WindowSize(1360, 1000), chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("lang", "en-US"))
	actx, cancelA := chromedp.NewExecAllocator(c, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	bctx, cancelT := context.WithTimeout(bctx, 90*time.Second)
	defer cancelT()

	var mu sync.Mutex
	var problems []string
	chromedp.ListenTarget(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			problems = append(problems, "JavaScript dialog opened: "+e.Message)
			go func() { _ = chromedp.Run(bctx, page.HandleJavaScriptDialog(false)) }()
		case *runtime.EventExceptionThrown:
			problems = append(problems, "script exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.LevelError {
				problems = append(problems, fmt.Sprintf("console %s: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		}
	})
	base := "http://" + h.AdminAddr
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var buf []byte
			if err := chromedp.CaptureScreenshot(&buf).Do(ctx); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}
	text := func(sel string, out *string) chromedp.Action { return chromedp.Text(sel, out, chromedp.ByQuery) }
	var login, overview, payList, payPage, trList, trPage, evList, evPage, flash, schedPage, schedFlash, plugins, loc string
	var cookies []*network.Cookie
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(bctx, actions...); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	run("login", log.Enable(), runtime.Enable(),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`input[name=token]`, chromedp.ByQuery),
		chromedp.Location(&loc),
		text(".login", &login),
		shot("login"),
		chromedp.SendKeys(`input[name=token]`, h.Token, chromedp.ByQuery),
		chromedp.Submit(`input[name=token]`, chromedp.ByQuery),
		chromedp.WaitVisible(`h2.attention`, chromedp.ByQuery),
		chromedp.ActionFunc(func(ctx context.Context) error {
			var err error
			cookies, err = network.GetCookies().WithURLs([]string{base + "/ui/"}).Do(ctx)
			return err
		}),
	)
	if !strings.HasPrefix(loc, base+"/ui/login?next=") || !strings.Contains(login, "admin token") {
		t.Fatalf("GET / did not land on the login form: %s", loc)
	}
	var session *network.Cookie
	for _, ck := range cookies {
		if ck.Name == "acquit_session" {
			session = ck
		}
	}
	if session == nil || !session.HTTPOnly || !session.Secure || session.SameSite != network.CookieSameSiteStrict {
		t.Fatalf("session cookie in the browser: %+v", session)
	}

	var footer string
	run("overview", text("main", &overview), shot("overview"), text("footer", &footer))
	if !strings.Contains(footer, "refreshes every 10s") {
		t.Fatalf("overview footer %q", footer)
	}
	// app.js refreshes the overview in place every 10 s (under the CSP).
	refreshStart := time.Now()
	run("overview refresh", chromedp.Poll(`document.querySelector('footer').textContent.trim() !== `+jsonString(strings.TrimSpace(footer)),
		nil, chromedp.WithPollingTimeout(25*time.Second)))
	t.Logf("overview refreshed itself after %s", time.Since(refreshStart).Round(100*time.Millisecond))
	for _, want := range []string{"Needs a person now", "partially_accepted", "REFUNDS-W49", "TAXES-Q4", "SUPPLIERS-W49",
		"custom.erp_sync", "2/2 plugins up", "Replay"} {
		if !strings.Contains(overview, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if strings.Contains(overview, "PAYROLL-2026-12") {
		t.Errorf("overview lists the accepted file as needing a person")
	}

	// Payments: the filter select submits itself (app.js), then a timeline.
	run("payments", chromedp.Navigate(base+"/ui/payments"), chromedp.WaitVisible(`form.filters`, chromedp.ByQuery),
		shot("payments"),
		// Dispatched after Evaluate returns: the change submits the form.
		chromedp.Evaluate(`setTimeout(function(){var s=document.querySelector('select[name=state]');s.value='accepted';s.dispatchEvent(new Event('change'));}, 0)`, nil),
		chromedp.WaitReady(`select[name=state] option[selected]`, chromedp.ByQuery),
		chromedp.Location(&loc),
		text("main table", &payList),
		chromedp.Click(`main table tbody tr a`, chromedp.ByQuery),
		chromedp.WaitVisible(`ol.timeline`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('ol.timeline details').forEach(function(d){d.open=true})`, nil),
		text("main", &payPage), shot("payment"),
	)
	if !strings.Contains(loc, "state=accepted") || strings.Contains(payList, "refused") || !strings.Contains(payList, " EUR") {
		t.Errorf("payments filtered on accepted:\n%s", payList)
	}
	for _, want := range []string{"accepted", " eur", "response", "transition", "event", "payment.accepted", "decided", "raw input #"} {
		if !strings.Contains(strings.ToLower(payPage), want) {
			t.Errorf("payment page lacks %q", want)
		}
	}
	if !strings.Contains(payPage, "CET") && !strings.Contains(payPage, "CEST") {
		t.Errorf("payment page times are not in Europe/Paris")
	}

	// Transmissions: the list, then the partially accepted file.
	run("transmissions", chromedp.Navigate(base+"/ui/transmissions"), chromedp.WaitVisible(`main table`, chromedp.ByQuery),
		text("main", &trList), shot("transmissions"),
		chromedp.Navigate(base+"/ui/transmissions/"+ids[transmissions.StatePartial]),
		chromedp.WaitVisible(`dl.facts`, chromedp.ByQuery), text("main", &trPage), shot("transmission"),
	)
	for _, want := range []string{"PAYROLL-2026-12.xml", "accepted", "rejected", "unacknowledged", "partially_accepted", " EUR"} {
		if !strings.Contains(trList, want) {
			t.Errorf("transmissions list lacks %q", want)
		}
	}
	for _, want := range []string{"EBICS OrderID", "Segments", "2 rejected", "RJCT", "AC04", "download the original file", "psr", " EUR"} {
		if !strings.Contains(trPage, want) {
			t.Errorf("transmission page lacks %q", want)
		}
	}
	// The original file and an acknowledgement download through the session.
	var fileOK, ackOK bool
	run("downloads", chromedp.Evaluate(`fetch(document.querySelector('a[href$="/file"]').href).then(function(r){return r.ok && r.headers.get('content-disposition').indexOf('attachment')===0})`, &fileOK, awaitPromise),
		chromedp.Evaluate(`fetch(document.querySelector('a[href*="/acks/"]').href).then(function(r){return r.ok})`, &ackOK, awaitPromise))
	if !fileOK || !ackOK {
		t.Errorf("downloads from the transmission page: file %v, acknowledgement %v", fileOK, ackOK)
	}

	// Events: the dead one, its hostile payload as text, then Replay.
	rec.mu.Lock()
	rec.fail["order-sync"] = 0
	rec.mu.Unlock()
	run("events", chromedp.Navigate(base+"/ui/events?state=dead"), chromedp.WaitVisible(`main table`, chromedp.ByQuery),
		text("main", &evList), shot("events"),
		chromedp.Navigate(base+"/ui/events/"+dead.ID), chromedp.WaitVisible(`main pre`, chromedp.ByQuery),
		text("main", &evPage), shot("event"),
		chromedp.Click(`form[action$="/replay"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.flash`, chromedp.ByQuery), text("p.flash", &flash),
	)
	if !strings.Contains(evList, "custom.erp_sync") || !strings.Contains(evList, "HTTP 500") {
		t.Errorf("dead events page:\n%s", evList)
	}
	if !strings.Contains(evPage, `<script>alert('xss')</script><img src=x onerror=`) {
		t.Errorf("the hostile payload is not shown as text on the event page:\n%s", evPage)
	}
	var scripts int
	run("count scripts", chromedp.Evaluate(`document.scripts.length + document.querySelectorAll('img[src=x]').length`, &scripts))
	if scripts != 1 {
		t.Errorf("the event page has %d script/img elements, want only app.js", scripts)
	}
	if flash != "Event put back in the queue." {
		t.Errorf("after Replay: flash %q", flash)
	}
	waitFor(t, 30*time.Second, "the replayed event to be delivered", func() bool {
		var ev store.Event
		_, err := cl.Do(c, "GET", "/v1/events/"+dead.ID, nil, &ev)
		return err == nil && ev.State == store.EventDelivered
	})

	// Schedules: run the nightly reconciliation now.
	run("schedules", chromedp.Navigate(base+"/ui/schedules"), chromedp.WaitVisible(`#s-reconcile`, chromedp.ByQuery),
		text("main", &schedPage),
		chromedp.Click(`#s-reconcile form button`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.flash`, chromedp.ByQuery), text("p.flash", &schedFlash), shot("schedules"),
	)
	for _, want := range []string{"fetch-acks", "reconcile", "ebics.fetch_acks", "atos.reconcile", "Run now", "next run"} {
		if !strings.Contains(schedPage, want) {
			t.Errorf("schedules page lacks %q", want)
		}
	}
	if schedFlash != "Run finished: ok." {
		t.Errorf("run now: flash %q", schedFlash)
	}

	run("plugins", chromedp.Navigate(base+"/ui/plugins"), chromedp.WaitVisible(`main table`, chromedp.ByQuery),
		text("main", &plugins), shot("plugins"))
	for _, name := range []string{"atos", "ebics"} {
		if !lineWith(plugins, name, "up") {
			t.Errorf("plugins page: %s not up:\n%s", name, plugins)
		}
	}

	// Logged out, the session no longer opens pages.
	run("logout", chromedp.Navigate(base+"/ui/"), chromedp.Click(`form[action="/ui/logout"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=token]`, chromedp.ByQuery),
		chromedp.Navigate(base+"/ui/plugins"), chromedp.WaitVisible(`input[name=token]`, chromedp.ByQuery))

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser: %s", p)
	}
}

// awaitPromise makes chromedp.Evaluate wait for a returned promise.
func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// lineWith reports whether one line of text holds every word.
func lineWith(text string, words ...string) bool {
	for _, l := range strings.Split(text, "\n") {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			return true
		}
	}
	return false
}
