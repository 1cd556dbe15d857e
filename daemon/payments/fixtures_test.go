package payments

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acquit/acquit/plugins/atos/sim"
)

func hostileFixtures(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/hostile/*.form")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// TestHostileFixtures posts each hostile body to the real Atos plugin's
// notification URLs: rejected (400, a reject code recorded), the customer
// redirected to the fallback page, nothing stored changed.
func TestHostileFixtures(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.FallbackReturnURL = "https://shop.example/return" })
	withAtos(t, e, sim.Faults{DropAutomatic: 1}, nil)
	st := e.startAtos(t, 2500)
	if _, err := sim.NewBrowser().Pay(context.Background(), st.Method, st.RedirectURL, st.Fields, sim.Choice{Outcome: "accepted"}); err != nil {
		t.Fatal(err)
	}
	for name, body := range hostileFixtures(t) {
		t.Run(name, func(t *testing.T) {
			before := e.snapshot(t)
			ev0 := e.events(t, "%", "%")
			r := e.postAtos(t, "automatic", string(body))
			if r.code != 400 {
				t.Fatalf("automatic: HTTP %d %q", r.code, r.body)
			}
			_, v := e.lastVerdict(t)
			if v == "" || !strings.HasPrefix(r.body, "rejected: "+v) {
				t.Fatalf("verdict %q, answer %q", v, r.body)
			}
			if e.rejectsOn("atos", v) < 1 {
				t.Fatalf("reject %s not counted", v)
			}
			if m := e.postAtos(t, "manual", string(body)); m.code != 303 || m.location != "https://shop.example/return" {
				t.Fatalf("manual: %d %q", m.code, m.location)
			}
			if e.snapshot(t) != before || e.events(t, "%", "%") != ev0 {
				t.Fatal("a hostile body changed something stored")
			}
		})
	}
	if p := e.get(t, st.Reference).Payment; p.State != StatePending {
		t.Fatalf("payment %s", p.State)
	}
}

// FuzzNotification posts arbitrary bodies through the public handler with
// the real Atos plugin: never a server error, never a decided payment
// without a valid seal.
func FuzzNotification(f *testing.F) {
	for _, b := range hostileFixtures(f) {
		f.Add(b, true)
		f.Add(b, false)
	}
	e := newEnv(f, nil)
	withAtos(f, e, sim.Faults{DropAutomatic: 1}, nil)
	h := e.svc.PublicHandler()
	f.Fuzz(func(t *testing.T, body []byte, automatic bool) {
		ch := "manual"
		if automatic {
			ch = "automatic"
		}
		req := httptest.NewRequest("POST", "/notify/atos/"+ch, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch {
		case automatic && w.Code != http.StatusBadRequest && w.Code != http.StatusRequestEntityTooLarge:
			t.Fatalf("automatic: HTTP %d for %q", w.Code, body)
		case !automatic && w.Code != http.StatusOK && w.Code != http.StatusSeeOther:
			t.Fatalf("manual: HTTP %d for %q", w.Code, body)
		}
		if n := e.events(t, "%", "%"); n != 0 {
			t.Fatalf("%d events from unsealed input", n)
		}
	})
}
