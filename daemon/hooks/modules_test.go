package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

func openSQLite(t testing.TB) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "acquit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestKVOnSQLite(t *testing.T) {
	st := openSQLite(t)
	e, _ := newTestEngine(t, map[string]string{
		"a.lua": `
function run()
  kv.set("name", "alice")
  kv.set("n", 41)
  kv.set("tmp", "x", 0.05)
  local n = kv.incr("n")
  local c = kv.incr("counter", 5)
  kv.delete("gone")
  return {name = kv.get("name"), n = n, c = c, missing = kv.get("missing") == nil}
end
function later() return {tmp = kv.get("tmp") or "expired", n = kv.get("n")} end
function badincr() kv.set("s", "abc") return kv.incr("s") end
function bigvalue() kv.set("big", string.rep("v", 70000)) end
function bigkey() kv.set(string.rep("k", 300), "v") end
function tablevalue() kv.set("t", {}) end
function badttl() kv.set("t", "v", -1) end
`,
		"b.lua": `function run() return kv.get("name") end`,
	}, nil, func(o *Options) { o.KV = st })
	ctx := context.Background()
	tr, err := e.Call(ctx, "a", "run", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := tr.Return.(map[string]any)
	if got["name"] != "alice" || got["n"] != int64(42) || got["c"] != int64(5) || got["missing"] != true {
		t.Errorf("kv results: %v", got)
	}
	if v, ok, _ := st.KVGet(ctx, "script:a", "name"); !ok || v != "alice" {
		t.Errorf("stored under script:a: %q %v", v, ok)
	}
	// Namespaced per script.
	if tr, err := e.Call(ctx, "b", "run", nil); err != nil || tr.Return != nil {
		t.Errorf("b sees a's key: %v %v", tr.Return, err)
	}
	time.Sleep(100 * time.Millisecond)
	tr, err = e.Call(ctx, "a", "later", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := tr.Return.(map[string]any); m["tmp"] != "expired" || m["n"] != "42" {
		t.Errorf("later: %v", m)
	}
	for fn, kind := range map[string]error{"badincr": ErrHookFailed, "bigvalue": ErrLimit, "bigkey": ErrLimit, "tablevalue": ErrHookFailed, "badttl": ErrHookFailed} {
		_, err := e.Call(ctx, "a", fn, nil)
		mustKind(t, err, kind)
	}
	// No KV configured: clear error.
	e2, _ := newTestEngine(t, map[string]string{"a.lua": `function run() return kv.get("x") end`}, nil, func(o *Options) { o.KV = nil })
	if _, err := e2.Call(ctx, "a", "run", nil); err == nil || !strings.Contains(err.Error(), "kv is not configured") {
		t.Errorf("no kv: %v", err)
	}
}

func TestJSONModule(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"j.lua": `
local json = require "json"
function roundtrip(s) return json.encode(json.decode(s, true)) end
function nulls()
  local d = json.decode('{"a": null, "b": [1, null, 3], "c": {}}')
  local k = json.decode('{"a": null}', true)
  return {a_nil = d.a == nil, b2 = d.b[2] == nil, kept = k.a == json.null, null_str = tostring(json.null),
    enc = json.encode({x = json.null, e = json.array(), o = {}, arr = {"p", "q"}})}
end
function bad(s) return json.decode(s) end
function cyclic() local t = {} t.self = t return json.encode(t) end
function fn() return json.encode({f = print}) end
function nan() return json.encode({x = 0/0}) end
function mixed() return json.encode({1, 2, x = 3}) end
`}, nil, nil)
	ctx := context.Background()
	tr, err := e.Call(ctx, "j", "roundtrip", `{"z":1,"a":[true,false,null,"s",1.5],"m":{"k":"v"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Return != `{"a":[true,false,null,"s",1.5],"m":{"k":"v"},"z":1}` {
		t.Errorf("roundtrip: %v", tr.Return)
	}
	tr, err = e.Call(ctx, "j", "nulls", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := tr.Return.(map[string]any)
	if m["a_nil"] != true || m["b2"] != true || m["kept"] != true || m["null_str"] != "null" {
		t.Errorf("nulls: %v", m)
	}
	if m["enc"] != `{"arr":["p","q"],"e":[],"o":{},"x":null}` {
		t.Errorf("encode: %v", m["enc"])
	}
	if tr.Return, err = e.Call(ctx, "j", "mixed", nil); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{`{"a":`, `[1,2]]`, `nul`, ``, strings.Repeat("[", 300) + strings.Repeat("]", 300)} {
		tr, err := e.Call(ctx, "j", "bad", in)
		if err == nil {
			// decode returns nil, err: a failed hook by convention.
			t.Errorf("decode %q: no error (%v)", in, tr.Return)
		}
	}
	for _, fn := range []string{"cyclic", "fn", "nan"} {
		if _, err := e.Call(ctx, "j", fn, nil); !errors.Is(err, ErrHookFailed) {
			t.Errorf("%s: %v", fn, err)
		}
	}
}

func TestConfigAndTimeModules(t *testing.T) {
	cfg := map[string]any{"shop": map[string]any{"url": "https://shop.example.com", "retries": 3, "tags": []any{"a", "b"}}}
	e, _ := newTestEngine(t, map[string]string{"c.lua": `
local config, time = require "config", require "time"
function get()
  local shop = config.get("shop")
  shop.url = "mutated"
  return {url = config.get("shop.url"), retries = config.get("shop.retries"), tag = config.get("shop.tags")[2],
    missing = config.get("nope.deeper", "dflt"), deep_missing = config.get("shop.url.x") == nil}
end
function times()
  local t = time.parse("2026-11-23T10:15:00Z")
  local bad, err = time.parse("23/11/2026")
  return {t = t, back = time.format(t), date = time.format(t, "date"), paris = time.format(t, "rfc3339", "Europe/Paris"),
    bad = bad == nil, err = err ~= nil, now_ok = math.abs(time.now() - time.unix()) < 2, rem = time.remaining() <= 5}
end
function sleepy() time.sleep(3600) return "woke" end
`}, nil, func(o *Options) { o.Config = cfg })
	ctx := context.Background()
	tr, err := e.Call(ctx, "c", "get", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := tr.Return.(map[string]any)
	if m["url"] != "https://shop.example.com" || m["retries"] != int64(3) || m["tag"] != "b" || m["missing"] != "dflt" || m["deep_missing"] != true {
		t.Errorf("config: %v", m)
	}
	if cfg["shop"].(map[string]any)["url"] != "https://shop.example.com" {
		t.Error("config mutated")
	}
	tr, err = e.Call(ctx, "c", "times", nil)
	if err != nil {
		t.Fatal(err)
	}
	m = tr.Return.(map[string]any)
	if m["t"] != int64(1795428900) || m["back"] != "2026-11-23T10:15:00Z" || m["date"] != "2026-11-23" ||
		m["paris"] != "2026-11-23T11:15:00+01:00" || m["bad"] != true || m["err"] != true || m["now_ok"] != true || m["rem"] != true {
		t.Errorf("time: %v", m)
	}
	// sleep is capped by the deadline: the call times out instead of
	// sleeping an hour.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = e.Call(cctx, "c", "sleepy", nil)
	mustKind(t, err, ErrTimeout)
}

// shopServer is a loopback HTTP server recording requests.
type shopServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method, Path, Body string
	Header             http.Header
}

func newShopServer(t testing.TB) *shopServer {
	s := &shopServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{Method: r.Method, Path: r.URL.Path, Body: string(b), Header: r.Header.Clone()})
		s.mu.Unlock()
		switch r.URL.Path {
		case "/huge":
			w.Write([]byte(strings.Repeat("h", 3000)))
		case "/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		case "/fail":
			w.WriteHeader(503)
			w.Write([]byte(`{"error":"down"}`))
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Echo", r.Header.Get("X-Test"))
			json.NewEncoder(w).Encode(map[string]any{"ok": true, "path": r.URL.Path})
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *shopServer) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

func TestHTTPModule(t *testing.T) {
	srv := newShopServer(t)
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	e, _ := newTestEngine(t, map[string]string{"h.lua": `
local http, json = require "http", require "json"
function run(base)
  local r1 = http.get(base .. "/a", {headers = {["X-Test"] = "echo", Authorization = "Bearer s3cret"}})
  local r2 = http.post(base .. "/b", {order = "ORD-1", paid = true}, {headers = {["Idempotency-Key"] = "ev1"}})
  local r3 = http.request{method = "put", url = base .. "/c", body = "raw", headers = {["Content-Type"] = "text/plain"}}
  local r4 = http.get(base .. "/fail")
  return {s1 = r1.status, echo = r1.headers["x-echo"], path = json.decode(r1.body).path, s2 = r2.status,
    s3 = r3.status, s4 = r4.status, b4 = r4.body}
end
function get(a) local r, err = http.get(a.url, {timeout = a.timeout}) if not r then return "ERR: " .. err end return r.status end
function scheme() return http.get("file:///etc/passwd") end
function creds(base) return http.get((base:gsub("http://", "http://user:pw@"))) end
function header(base) return http.get(base, {headers = {["X-Evil"] = "a\r\nInjected: 1"}}) end
function method(base) return http.request{method = "CONNECT", url = base} end
`}, nil, func(o *Options) { o.MaxHTTPResponse = 2048 })
	ctx := context.Background()
	tr, err := e.Call(ctx, "h", "run", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	m := tr.Return.(map[string]any)
	want := map[string]any{"s1": int64(200), "echo": "echo", "path": "/a", "s2": int64(200), "s3": int64(200), "s4": int64(503), "b4": `{"error":"down"}`}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	reqs := srv.requests()
	if len(reqs) != 4 {
		t.Fatalf("server saw %d requests", len(reqs))
	}
	if reqs[1].Method != "POST" || reqs[1].Body != `{"order":"ORD-1","paid":true}` || reqs[1].Header.Get("Content-Type") != "application/json" || reqs[1].Header.Get("Idempotency-Key") != "ev1" {
		t.Errorf("post: %+v", reqs[1])
	}
	if reqs[2].Method != "PUT" || reqs[2].Body != "raw" {
		t.Errorf("put: %+v", reqs[2])
	}
	// The trace records every call, secrets redacted.
	if len(tr.HTTPCalls) != 4 || tr.HTTPCalls[0].Headers["Authorization"] != "[redacted]" || !tr.HTTPCalls[0].Sent || tr.HTTPCalls[3].Status != 503 {
		t.Errorf("trace: %+v", tr.HTTPCalls)
	}
	// Oversized response, timeout, unverified TLS, refused connection: nil, err.
	for _, c := range []struct {
		url     string
		timeout float64
		want    string
	}{
		{srv.URL + "/huge", 0, "larger than 2048 bytes"},
		{srv.URL + "/slow", 0.1, "deadline exceeded"},
		{tlsSrv.URL, 0, "certificate"},
		{"http://127.0.0.1:1/", 0, "refused"},
	} {
		tr, err := e.Call(ctx, "h", "get", map[string]any{"url": c.url, "timeout": c.timeout})
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if s, _ := tr.Return.(string); !strings.Contains(s, c.want) {
			t.Errorf("%s: %v, want %q", c.url, tr.Return, c.want)
		}
	}
	for fn, kind := range map[string]error{"scheme": ErrForbidden, "creds": ErrForbidden, "header": ErrForbidden, "method": ErrHookFailed} {
		_, err := e.Call(ctx, "h", fn, srv.URL)
		mustKind(t, err, kind)
	}
}

func TestDryRun(t *testing.T) {
	srv := newShopServer(t)
	kvs := newMemKV()
	kvs.KVSet(context.Background(), "script:d", "seen", "7", 0)
	e, _ := newTestEngine(t, map[string]string{"d.lua": `
function on(event)
  log.info("dry", {ref = event.data.payment.reference})
  local n = kv.incr("seen")
  kv.set("last", event.id)
  kv.delete("seen2")
  local r = http.post(config.get("url") .. "/orders", {n = n})
  return {n = n, last = kv.get("last"), status = r.status}
end
`}, []Binding{{Events: []string{"payment.*"}, Script: "d", Function: "on"}}, func(o *Options) {
		o.KV = kvs
		o.Config = map[string]any{"url": srv.URL}
	})
	ev := loadEvent(t, "payment.accepted")
	for _, offline := range []bool{true, false} {
		trs, err := e.DryRun(context.Background(), ev, DryRunOptions{Offline: offline})
		if err != nil || len(trs) != 1 {
			t.Fatalf("dry run: %v %v", trs, err)
		}
		tr := trs[0]
		if tr.Err != nil {
			t.Fatal(tr.Err)
		}
		m := tr.Return.(map[string]any)
		if m["n"] != int64(8) || m["last"] != ev.ID || m["status"] != int64(200) {
			t.Errorf("offline=%v return %v", offline, m)
		}
		if len(tr.KVWrites) != 3 || tr.KVWrites[0].Op != "incr" || tr.KVWrites[0].Value != "8" {
			t.Errorf("kv writes %+v", tr.KVWrites)
		}
		if len(tr.Logs) != 1 || tr.Logs[0].Fields["ref"] != "A000000042" {
			t.Errorf("logs %+v", tr.Logs)
		}
		if len(tr.HTTPCalls) != 1 || tr.HTTPCalls[0].Sent == offline {
			t.Errorf("http calls %+v", tr.HTTPCalls)
		}
	}
	// The store was not touched.
	if v, _, _ := kvs.KVGet(context.Background(), "script:d", "seen"); v != "7" {
		t.Errorf("dry run changed kv: %q", v)
	}
	if _, ok, _ := kvs.KVGet(context.Background(), "script:d", "last"); ok {
		t.Error("dry run wrote kv")
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("server saw %d requests, want 1 (online run only)", n)
	}
	if _, err := e.DryRun(context.Background(), store.Event{Type: "ack.unmatched"}, DryRunOptions{}); !errors.Is(err, ErrNoBinding) {
		t.Errorf("no binding: %v", err)
	}
}

func TestLogModule(t *testing.T) {
	e, logs := newTestEngine(t, map[string]string{"l.lua": `
function run(event)
  log.debug("d")
  log.warn("w", {amount = 12.5, nested = {a = 1}, password = "hunter2", script = "spoof"})
  log.info("cfg", {shop = {url = "u", api_token = "tok-777", list = {{secret = "s-888"}}}})
  log.error("e")
  print("printed", 1, nil)
  for i = 1, 2000 do log.info("flood") end
end
`}, []Binding{{Events: []string{"*"}, Script: "l", Function: "run"}}, nil)
	if err := e.Deliver(context.Background(), store.Event{ID: "ev-9", Type: "a.b"}, 1); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, w := range []string{`"level":"warn","script":"l","hook":"run","event_id":"ev-9","amount":12.5,"field_script":"spoof","nested":{"a":1},"password":"[redacted]","message":"w"`,
		`"level":"debug"`, `"level":"error"`, `"shop":{"api_token":"[redacted]","list":[{"secret":"[redacted]"}],"url":"u"}`, `"message":"printed\t1\tnil"`, `hook log limit reached`} {
		if !strings.Contains(out, w) {
			t.Errorf("log output lacks %s", w)
		}
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "tok-777") || strings.Contains(out, "s-888") {
		t.Error("secret logged")
	}
	if n := strings.Count(out, `"flood"`); n != maxLogsPerCall-5 {
		t.Errorf("flood lines = %d", n)
	}
}

func TestJSONArrayMarkerIsPerTable(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"j.lua": `
function poison() getmetatable(json.decode("[]")).__index = function() return "pwned" end end
function check() local t = json.decode('{"a": []}') return tostring(t.a.x) .. json.encode(t) end
`}, nil, func(o *Options) { o.PoolSize = 1 })
	if _, err := e.Call(context.Background(), "j", "poison", nil); err != nil {
		t.Fatal(err)
	}
	tr, err := e.Call(context.Background(), "j", "check", nil)
	if err != nil || tr.Return != `nil{"a":[]}` {
		t.Errorf("check: %v %v", tr.Return, err)
	}
}

func TestDefaultClientRedirectPolicy(t *testing.T) {
	var hops atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hops.Add(1)
		http.Redirect(w, r, "/loop", http.StatusFound)
	}))
	defer srv.Close()
	e, _ := newTestEngine(t, map[string]string{"r.lua": `function run(u) local r, err = http.get(u) return err end`}, nil, nil)
	tr, err := e.Call(context.Background(), "r", "run", srv.URL+"/loop")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := tr.Return.(string); !strings.Contains(s, "stopped after 5 redirects") || hops.Load() != 5 {
		t.Errorf("redirect loop: %v after %d hops", tr.Return, hops.Load())
	}
	c := defaultHTTPClient(nil)
	mk := func(u string) *http.Request {
		r, _ := http.NewRequest("GET", u, nil)
		return r
	}
	if err := c.CheckRedirect(mk("http://example.com/"), []*http.Request{mk("https://example.com/")}); err == nil {
		t.Error("https to http downgrade allowed")
	}
	if err := c.CheckRedirect(mk("ftp://example.com/"), []*http.Request{mk("http://example.com/")}); err == nil {
		t.Error("redirect to ftp allowed")
	}
	if err := c.CheckRedirect(mk("https://example.com/b"), []*http.Request{mk("https://example.com/a")}); err != nil {
		t.Errorf("https redirect refused: %v", err)
	}
}

func TestDryRunWithoutStore(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"d.lua": `function on(event) local n = kv.incr("n") kv.incr("n") return {n = kv.get("n"), missing = kv.get("x")} end`},
		[]Binding{{Events: []string{"*"}, Script: "d", Function: "on"}}, func(o *Options) { o.KV = nil })
	trs, err := e.DryRun(context.Background(), store.Event{ID: "1", Type: "a.b"}, DryRunOptions{Offline: true})
	if err != nil || trs[0].Err != nil {
		t.Fatalf("%v %v", trs, err)
	}
	if m := trs[0].Return.(map[string]any); m["n"] != "2" || m["missing"] != nil || len(trs[0].KVWrites) != 2 {
		t.Errorf("dry run without store: %v %+v", m, trs[0].KVWrites)
	}
	// A real delivery still needs the store.
	if err := e.Deliver(context.Background(), store.Event{ID: "1", Type: "a.b"}, 1); err == nil || !strings.Contains(err.Error(), "kv is not configured") {
		t.Errorf("deliver without store: %v", err)
	}
}

// roundTripFunc is an injected transport.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestInjectedHTTPClient(t *testing.T) {
	var seen atomic.Value
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen.Store(r.Method + " " + r.URL.String())
		return &http.Response{StatusCode: 201, Header: http.Header{"X-Fake": {"1"}}, Body: io.NopCloser(strings.NewReader("created")), Request: r}, nil
	})}
	e, _ := newTestEngine(t, map[string]string{"h.lua": `function run() local r = http.post("https://erp.invalid/x", "b") return r.status .. r.body .. r.headers["x-fake"] end`},
		nil, func(o *Options) { o.HTTPClient = client })
	tr, err := e.Call(context.Background(), "h", "run", nil)
	if err != nil || tr.Return != "201created1" || seen.Load() != "POST https://erp.invalid/x" {
		t.Errorf("%v %v %v", tr.Return, err, seen.Load())
	}
}
