package payments

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/internal/pgtest"
	"github.com/acquit/acquit/sdk"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a service wired to a real SQLite file, the loopback provider and a
// loopback public listener.
type env struct {
	st     store.Store
	db     *sql.DB // the store's writer pool, for direct checks
	rebind func(string) string
	svc    *Service
	reg    *prometheus.Registry
	sim    *simProvider
	gw     *simGateway
	pub    *httptest.Server
	adm    *httptest.Server
	client *http.Client
	clock  *fakeClock
	dsn    string // PostgreSQL only: the test schema's DSN
	// gateways by name; "sim" is the test provider, others are added by
	// tests before any request.
	gateways map[string]sdk.PaymentGateway
}

func loopbackServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func newEnv(t testing.TB, mod func(*Config)) *env { return newEnvOn(t, "sqlite", mod) }

// drivers lists the store drivers tests run on; postgres skips without
// ACQUIT_TEST_PG_DSN (and fails under CI=true).
var drivers = []string{"sqlite", "postgres"}

func newEnvOn(t testing.TB, driver string, mod func(*Config)) *env {
	t.Helper()
	e := &env{reg: prometheus.NewRegistry(), clock: &fakeClock{t: time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)}}
	ctx := context.Background()
	switch driver {
	case "sqlite":
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "acquit.db"), store.WithMigrations(Migrations()))
		if err != nil {
			t.Fatal(err)
		}
		e.st, e.db, e.rebind = st, st.W, func(q string) string { return q }
	case "postgres":
		e.dsn = pgtest.DSN(t)
		st, err := postgres.Open(ctx, e.dsn, store.WithMigrations(Migrations()))
		if err != nil {
			t.Fatal(err)
		}
		e.st, e.db, e.rebind = st, st.W, postgres.Rebind
	default:
		t.Fatalf("driver %s", driver)
	}
	t.Cleanup(func() { e.st.Close() })
	e.sim = newSimProvider(t)
	e.gw = &simGateway{p: e.sim, client: &http.Client{Timeout: 5 * time.Second}}
	e.gateways = map[string]sdk.PaymentGateway{"sim": e.gw}
	var h http.Handler
	e.pub = loopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	cfg := Config{DefaultGateway: "sim", ReconcileAfter: 20 * time.Minute, RecheckEvery: 5 * time.Minute,
		FinalDeadline: 24 * time.Hour, PublicBaseURL: e.pub.URL + "/",
		// Generous: the machine running the tests may be loaded (-race,
		// other packages); TestManualWhenStoreSlow sets its own.
		ManualTimeout: 30 * time.Second, AutomaticTimeout: 30 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	e.svc = New(Deps{Store: e.st, Logger: zerolog.Nop(), Registerer: e.reg, Now: e.clock.Now, Config: cfg,
		Gateway: func(name string) (sdk.PaymentGateway, error) {
			g, ok := e.gateways[name]
			if !ok {
				return nil, fmt.Errorf("no gateway %q: %w", name, ErrUnknownGateway)
			}
			return g, nil
		}})
	h = e.svc.PublicHandler()
	e.adm = loopbackServer(t, e.svc.AdminHandler())
	e.client = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return e
}

var shopOK, shopKO = "https://shop.example/ok", "https://shop.example/ko"

func (e *env) start(t testing.TB, amount int64) *Started {
	t.Helper()
	st, err := e.svc.Start(context.Background(), StartRequest{OrderID: nextOrder("O"),
		Amount: amount, Currency: "EUR", CustomerEmail: "c@example.org",
		SuccessURL: shopOK, FailureURL: shopKO})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return st
}

// pay posts the start fields to the provider's paypage, as the browser does.
func (e *env) pay(t testing.TB, st *Started) {
	t.Helper()
	form := url.Values{}
	for k, v := range st.Fields {
		form.Set(k, v)
	}
	resp, err := e.client.PostForm(st.RedirectURL, form)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("paypage: HTTP %d", resp.StatusCode)
	}
}

type reply struct {
	code     int
	location string
	body     string
}

func (e *env) postBody(t testing.TB, channel string, body []byte) reply {
	t.Helper()
	return e.postTo(t, "sim", channel, body)
}

// postTo posts body as a form to gateway's notification endpoint.
func (e *env) postTo(t testing.TB, gateway, channel string, body []byte) reply {
	t.Helper()
	resp, err := e.client.Post(e.pub.URL+"/notify/"+gateway+"/"+channel, "application/x-www-form-urlencoded", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, location: resp.Header.Get("Location"), body: string(b)}
}

func (e *env) post(t testing.TB, channel string, form url.Values) reply {
	t.Helper()
	return e.postBody(t, channel, []byte(form.Encode()))
}

func (e *env) get(t testing.TB, ref string) *Detail {
	t.Helper()
	d, err := e.svc.Get(context.Background(), ref)
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	return d
}

// lastVerdict returns the code of the last verdict stored for the last raw
// input.
func (e *env) lastVerdict(t testing.TB) (rawID int64, code string) {
	t.Helper()
	if err := e.db.QueryRow(`SELECT MAX(id) FROM raw_inputs`).Scan(&rawID); err != nil {
		t.Fatal(err)
	}
	raw, err := e.st.GetRaw(context.Background(), rawID)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw.Verdicts) == 0 {
		return rawID, ""
	}
	return rawID, raw.Verdicts[len(raw.Verdicts)-1].Code
}

// snapshot is everything stored about payments except the timeline and raw
// inputs (which grow with every input by design).
func (e *env) snapshot(t testing.TB) string {
	t.Helper()
	ps, err := e.svc.List(context.Background(), ListFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var hist int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM history`).Scan(&hist); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(struct {
		P []Payment
		H int
	}{ps, hist})
	return string(b)
}

// events counts events whose type and subject match the LIKE patterns.
func (e *env) events(t testing.TB, typ, ref string) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(e.rebind(`SELECT COUNT(*) FROM events WHERE type LIKE ? AND subject LIKE ?`), typ, "payment:"+ref).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) notifications(channel, verdict string) float64 {
	return testutil.ToFloat64(e.svc.m.notifications.WithLabelValues("sim", channel, verdict))
}

func (e *env) rejects(code string) float64 {
	return testutil.ToFloat64(e.svc.m.rejects.WithLabelValues("sim", code))
}

var orderSeq atomic.Int64

// nextOrder returns a fresh order id: one order, one live payment.
func nextOrder(prefix string) string { return fmt.Sprintf("%s-%d", prefix, orderSeq.Add(1)) }

// reopen opens a second store on e's PostgreSQL schema: another daemon.
func reopen(t testing.TB, e *env) store.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), e.dsn, store.WithMigrations(Migrations()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
