package hooks

import (
	"context"
	"errors"
	"fmt"
	"os"
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
)

func loadEvent(t testing.TB, name string) store.Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/events", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ParseEvent(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}

const recorder = `
local kv = require "kv"
function record(event)
  kv.set("last", event.type .. "|" .. event.id .. "|" .. event.subject .. "|" .. event.attempt .. "|" .. event.created_at)
  kv.incr("count:" .. event.type)
  if event.data.payment then kv.set("order", event.data.payment.order_id) end
end
function other(event) kv.incr("other") end
`

func TestDeliverRunsMatchingBindings(t *testing.T) {
	kvs := newMemKV()
	reg := prometheus.NewRegistry()
	e, _ := newTestEngine(t, map[string]string{"rec.lua": recorder}, []Binding{
		{Events: []string{"payment.*"}, Script: "rec.lua", Function: "record"},
		{Events: []string{"payment.accepted", "transmission.rejected"}, Script: "rec", Function: "other"},
	}, func(o *Options) { o.KV = kvs; o.Registerer = reg })
	ctx := context.Background()
	ev := loadEvent(t, "payment.accepted")
	if err := e.Deliver(ctx, ev, 3); err != nil {
		t.Fatal(err)
	}
	get := func(k string) string {
		v, _, _ := kvs.KVGet(ctx, "script:rec", k)
		return v
	}
	if want := "payment.accepted|01JD0000000000000000000A|payment:A000000042|3|2026-11-23T10:15:00Z"; get("last") != want {
		t.Errorf("last = %q, want %q", get("last"), want)
	}
	if get("order") != "ORD-1001" || get("other") != "1" {
		t.Errorf("order=%q other=%q", get("order"), get("other"))
	}
	if err := e.Deliver(ctx, loadEvent(t, "payment.refused"), 1); err != nil {
		t.Fatal(err)
	}
	if get("other") != "1" || get("count:payment.refused") != "1" {
		t.Errorf("payment.refused ran the wrong bindings: other=%q", get("other"))
	}
	if err := e.Deliver(ctx, loadEvent(t, "transmission.rejected"), 1); err != nil {
		t.Fatal(err)
	}
	if get("other") != "2" || get("count:transmission.rejected") != "" {
		t.Errorf("transmission.rejected: other=%q count=%q", get("other"), get("count:transmission.rejected"))
	}
	// No binding: nil, nothing runs.
	if err := e.Deliver(ctx, store.Event{ID: "x", Type: "ack.unmatched"}, 1); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(e.m.calls.WithLabelValues("rec", "record")); n != 2 {
		t.Errorf("calls metric = %v, want 2", n)
	}
	if n, err := testutil.GatherAndCount(reg, "acquit_hooks_calls_total"); err != nil || n != 2 {
		t.Errorf("registered series = %d, %v", n, err)
	}
}

func TestDeliverFailureIsRetryableError(t *testing.T) {
	e, logs := newTestEngine(t, map[string]string{"f.lua": `
function fail(event)
  if event.attempt < 3 then error("shop unreachable on attempt " .. event.attempt) end
end
function soft(event) return nil, "soft failure" end
function fine(event) return true end
`}, []Binding{
		{Events: []string{"payment.accepted"}, Script: "f", Function: "fail"},
		{Events: []string{"payment.refused"}, Script: "f", Function: "soft"},
		{Events: []string{"payment.*"}, Script: "f", Function: "fine"},
	}, nil)
	ev := loadEvent(t, "payment.accepted")
	err := e.Deliver(context.Background(), ev, 1)
	he := mustKind(t, err, ErrHookFailed)
	if he.EventID != ev.ID || he.Line != 3 || !strings.Contains(err.Error(), "attempt 1") {
		t.Errorf("error %v (%+v)", err, he)
	}
	if err := e.Deliver(context.Background(), ev, 3); err != nil {
		t.Errorf("attempt 3 should succeed: %v", err)
	}
	err = e.Deliver(context.Background(), loadEvent(t, "payment.refused"), 1)
	if he := mustKind(t, err, ErrHookFailed); he.Message != "soft failure" || he.Line != 5 {
		t.Errorf("soft failure: %+v", he)
	}
	if !strings.Contains(logs.String(), `"event_id":"01JD0000000000000000000A"`) {
		t.Errorf("failure not logged with event_id: %s", logs)
	}
	m := testutil.ToFloat64(e.m.failures.WithLabelValues("f", "fail", "error"))
	if m != 1 {
		t.Errorf("failures metric = %v", m)
	}
}

func TestNewRejectsBadBindingsAndScripts(t *testing.T) {
	files := map[string]string{"a.lua": "function ok(e) end\nlocal function hidden() end\n", "b.lua": "function x(\n"}
	cases := []struct {
		name     string
		bindings []Binding
		want     []string
	}{
		{"syntax error", nil, []string{"b.lua:1: syntax error near '('"}},
		{"missing script", []Binding{{Events: []string{"*"}, Script: "nope", Function: "ok"}}, []string{`script "nope" not found`}},
		{"local function", []Binding{{Events: []string{"*"}, Script: "a", Function: "hidden"}}, []string{`function "hidden" is not defined`}},
		{"bad glob", []Binding{{Events: []string{"payment.["}, Script: "a", Function: "ok"}}, []string{`bad event glob`}},
		{"no events", []Binding{{Script: "a", Function: "ok"}}, []string{"no events"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeScripts(t, files)
			_, err := New(Options{Dir: dir, Bindings: tc.bindings, Logger: zerolog.Nop()})
			var le *LoadError
			if !errors.As(err, &le) || !errors.Is(err, ErrLoad) {
				t.Fatalf("want *LoadError, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not contain %q", err, w)
				}
			}
			// CheckBindings reports the same problems without an engine.
			if d := CheckBindings(dir, tc.bindings); len(d) != len(le.Diagnostics) {
				t.Errorf("CheckBindings: %v, New: %v", d, le.Diagnostics)
			}
		})
	}
}

func TestCheckDiagnostics(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.lua"), []byte("function x() end"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := writeScripts(t, map[string]string{
		"good.lua":          "local u = require 'lib.util'\nfunction f() return u end\n",
		"lib/util.lua":      "return {}\n",
		"syntax.lua":        "function f()\n  local x = = 1\nend\n",
		"unclosed.lua":      "function f()\n  if true then\n",
		"badreq.lua":        "local x = require \"missing.mod\"\nlocal y = require('../../etc/passwd')\n",
		"bytecode.lua":      "\x1bLua\x51\x00garbage",
		"big.lua":           "-- " + strings.Repeat("x", MaxScriptBytes),
		".hidden/skip.lua":  "this is not lua",
		"notes.txt":         "not lua either",
		"inside/target.lua": "return 1",
	})
	if err := os.Symlink(filepath.Join(outside, "secret.lua"), filepath.Join(dir, "escape.lua")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "inside", "target.lua"), filepath.Join(dir, "alias.lua")); err != nil {
		t.Fatal(err)
	}
	diags := Check(dir)
	want := []string{
		"badreq.lua:1: require \"missing.mod\": no such module",
		"badreq.lua:2: require \"../../etc/passwd\": '..' is refused",
		"big.lua: file larger than",
		"bytecode.lua: precompiled bytecode",
		"escape.lua: symlink points outside",
		"syntax.lua:2: syntax error",
		"unclosed.lua:",
	}
	got := make([]string, len(diags))
	for i, d := range diags {
		got[i] = d.String()
	}
	all := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing diagnostic %q in:\n%s", w, all)
		}
	}
	if len(diags) != len(want) {
		t.Errorf("got %d diagnostics, want %d:\n%s", len(diags), len(want), all)
	}
	if d := Check(writeScripts(t, map[string]string{"a.lua": "function f() end"})); len(d) != 0 {
		t.Errorf("clean folder: %v", d)
	}
	if d := Check(filepath.Join(t.TempDir(), "nope")); len(d) != 1 {
		t.Errorf("missing folder: %v", d)
	}
}

func TestReloadSwapsAtomically(t *testing.T) {
	v1 := map[string]string{"v.lua": `function which(e) local x = 0 for i = 1, 2000 do x = x + i end return "v1" end`}
	e, _ := newTestEngine(t, v1, []Binding{{Events: []string{"*"}, Script: "v", Function: "which"}}, func(o *Options) { o.PoolSize = 3 })
	dirs := []string{
		writeScripts(t, map[string]string{"v.lua": `function which(e) local x = 0 for i = 1, 2000 do x = x + i end return "v2" end`}),
		writeScripts(t, map[string]string{"v.lua": `function which(e) local x = 0 for i = 1, 2000 do x = x + i end return "v3" end`}),
	}
	bad := writeScripts(t, map[string]string{"v.lua": "function which(e) return 'broken' "})
	ctx := context.Background()
	var wg sync.WaitGroup
	var stop atomic.Bool
	var calls, failures atomic.Int64
	seen := sync.Map{}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				tr, err := e.Call(ctx, "v", "which", nil)
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					t.Errorf("call during reload: %v", err)
					return
				}
				seen.Store(tr.Return, true)
			}
		}()
	}
	for i := 0; i < 40; i++ {
		if err := e.Reload(dirs[i%2], []Binding{{Events: []string{"*"}, Script: "v", Function: "which"}}); err != nil {
			t.Fatal(err)
		}
		if err := e.Reload(bad, []Binding{{Events: []string{"*"}, Script: "v", Function: "which"}}); !errors.Is(err, ErrLoad) {
			t.Fatalf("bad reload: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	for _, v := range []string{"v2", "v3"} {
		if _, ok := seen.Load(v); !ok {
			t.Errorf("never saw %s", v)
		}
	}
	if _, ok := seen.Load("broken"); ok {
		t.Error("a failed reload was served")
	}
	// The last good version (v3 after 40 reloads ending on dirs[1]) stays.
	tr, err := e.Call(ctx, "v", "which", nil)
	if err != nil || tr.Return != "v3" {
		t.Errorf("after reloads: %v %v", tr.Return, err)
	}
	if failures.Load() != 0 || calls.Load() == 0 {
		t.Errorf("calls=%d failures=%d", calls.Load(), failures.Load())
	}
}

func TestInFlightCallFinishesOnOldVersion(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"s.lua": `
local time = require "time"
function slow(e) time.sleep(0.3) return "old" end`}, nil, nil)
	done := make(chan Trace)
	go func() {
		tr, _ := e.Call(context.Background(), "s", "slow", nil)
		done <- tr
	}()
	time.Sleep(50 * time.Millisecond)
	if err := e.Reload(writeScripts(t, map[string]string{"s.lua": `function slow(e) return "new" end`}), nil); err != nil {
		t.Fatal(err)
	}
	tr, err := e.Call(context.Background(), "s", "slow", nil)
	if err != nil || tr.Return != "new" {
		t.Fatalf("new version: %v %v", tr.Return, err)
	}
	if old := <-done; old.Return != "old" || old.Err != nil {
		t.Fatalf("in-flight call: %v %v", old.Return, old.Err)
	}
}

func TestCallErrors(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"a.lua": "function f(x) return x end\nnotfn = 1\n"}, nil, nil)
	ctx := context.Background()
	if _, err := e.Call(ctx, "nope", "f", nil); !errors.Is(err, ErrNoScript) {
		t.Errorf("missing script: %v", err)
	}
	if _, err := e.Call(ctx, "a", "g", nil); !errors.Is(err, ErrNoFunction) {
		t.Errorf("missing function: %v", err)
	}
	if _, err := e.Call(ctx, "a", "notfn", nil); !errors.Is(err, ErrNoFunction) {
		t.Errorf("not a function: %v", err)
	}
	cyc := map[string]any{}
	cur := cyc
	for i := 0; i < 100; i++ {
		n := map[string]any{}
		cur["n"] = n
		cur = n
	}
	if _, err := e.Call(ctx, "a", "f", cyc); !errors.Is(err, ErrLimit) {
		t.Errorf("deep argument: %v", err)
	}
	tr, err := e.Call(ctx, "a", "f", []any{"x", 2.5, true, map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tr.Return) != "[x 2.5 true map[k:v]]" {
		t.Errorf("round trip: %v", tr.Return)
	}
	e.Close()
	if _, err := e.Call(ctx, "a", "f", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("closed: %v", err)
	}
	if err := e.Deliver(ctx, store.Event{Type: "x.y"}, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("closed deliver: %v", err)
	}
}

func TestParseEventHostile(t *testing.T) {
	cases := []struct {
		name, in string
	}{
		{"not json", `{"type": `},
		{"unknown field", `{"type": "payment.accepted", "evil": 1}`},
		{"trailing", `{"type": "payment.accepted"} {"type": "x.y"}`},
		{"no type", `{"payload": {}}`},
		{"bad type", `{"type": "../../etc"}`},
		{"array payload", `{"type": "payment.accepted", "payload": [1,2]}`},
		{"string payload", `{"type": "payment.accepted", "payload": "x"}`},
		{"long id", `{"type": "payment.accepted", "id": "` + strings.Repeat("i", 300) + `"}`},
		{"oversized", `{"type": "payment.accepted", "payload": {"x": "` + strings.Repeat("a", MaxEventFile) + `"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseEvent([]byte(tc.in)); !errors.Is(err, ErrBadEvent) {
				t.Errorf("want ErrBadEvent, got %v", err)
			}
		})
	}
	ev, err := ParseEvent([]byte(`{"type": "payment.accepted"}`))
	if err != nil || ev.ID != "dry-run" || string(ev.Payload) != "{}" || ev.CreatedAt.IsZero() {
		t.Errorf("defaults: %+v %v", ev, err)
	}
}

func TestHostilePayloadAndCallerCancel(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"a.lua": "function f(e) return e.data.x end\n"},
		[]Binding{{Events: []string{"*"}, Script: "a", Function: "f"}}, func(o *Options) { o.MaxString = 1024 })
	ctx := context.Background()
	for name, p := range map[string]string{
		"not json":  `{"x": `,
		"oversized": `{"x": "` + strings.Repeat("a", 2000) + `"}`,
		"deep":      strings.Repeat(`{"x":`, 300) + "1" + strings.Repeat("}", 300),
	} {
		err := e.Deliver(ctx, store.Event{ID: "1", Type: "a.b", Payload: []byte(p)}, 1)
		if !errors.Is(err, ErrLimit) {
			t.Errorf("%s: %v", name, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.Deliver(cctx, store.Event{ID: "1", Type: "a.b", Payload: []byte(`{}`)}, 1); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestEventFromFile(t *testing.T) {
	full, err := os.ReadFile("testdata/events/payment.accepted.json")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := EventFromFile("payment.accepted", full)
	if err != nil || ev.ID != "01JD0000000000000000000A" || ev.Type != "payment.accepted" {
		t.Fatalf("full event: %+v %v", ev, err)
	}
	if _, err := EventFromFile("payment.refused", full); !errors.Is(err, ErrBadEvent) {
		t.Errorf("type mismatch: %v", err)
	}
	ev, err = EventFromFile("payment.refused", []byte(`{"payment": {"reference": "R1"}}`))
	if err != nil || ev.Type != "payment.refused" || ev.ID != "dry-run" || string(ev.Payload) != `{"payment":{"reference":"R1"}}` {
		t.Fatalf("bare payload: %+v %v", ev, err)
	}
	noType := []byte(`{"id": "e1", "payload": {"x": 1}}`)
	if ev, err := EventFromFile("ack.unmatched", noType); err != nil || ev.Type != "ack.unmatched" || ev.ID != "e1" {
		t.Errorf("envelope without type: %+v %v", ev, err)
	}
	for _, in := range []string{`[1]`, `"x"`, `{"a":`, ``} {
		if _, err := EventFromFile("payment.accepted", []byte(in)); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%q: %v", in, err)
		}
	}
	if _, err := EventFromFile("Bad Type", []byte(`{}`)); !errors.Is(err, ErrBadEvent) {
		t.Errorf("bad type: %v", err)
	}
}

func TestPoolWaitsForAFreeState(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"s.lua": `function slow() time.sleep(0.2) return "done" end`}, nil,
		func(o *Options) { o.PoolSize = 1 })
	first := make(chan error, 1)
	go func() { _, err := e.Call(context.Background(), "s", "slow", nil); first <- err }()
	time.Sleep(50 * time.Millisecond)
	// A caller whose deadline passes while waiting gets ErrTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := e.Call(ctx, "s", "slow", nil)
	cancel()
	mustKind(t, err, ErrTimeout)
	// A patient caller gets the state when it is free.
	tr, err := e.Call(context.Background(), "s", "slow", nil)
	if err != nil || tr.Return != "done" {
		t.Fatalf("second call: %v %v", tr.Return, err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

func TestHostileAndBenignCallsConcurrently(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{
		"bad.lua":  `function run(e) while true do end end`,
		"boom.lua": `function run(e) error("boom") end`,
		"good.lua": `function run(e) kv.incr("n") return e.data.i end`,
	}, []Binding{
		{Events: []string{"bad.*"}, Script: "bad", Function: "run"},
		{Events: []string{"boom.*"}, Script: "boom", Function: "run"},
		{Events: []string{"good.*"}, Script: "good", Function: "run"},
	}, func(o *Options) { o.Timeout = 250 * time.Millisecond; o.PoolSize = 3 })
	var wg sync.WaitGroup
	var good atomic.Int64
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 9; i++ {
				typ := []string{"bad.x", "boom.x", "good.x"}[(w+i)%3]
				err := e.Deliver(context.Background(), store.Event{ID: fmt.Sprint(w, "-", i), Type: typ, Payload: []byte(fmt.Sprintf(`{"i": %d}`, i))}, 1)
				switch typ {
				case "bad.x":
					if !errors.Is(err, ErrTimeout) {
						t.Errorf("bad: %v", err)
					}
				case "boom.x":
					if !errors.Is(err, ErrHookFailed) {
						t.Errorf("boom: %v", err)
					}
				default:
					if err != nil {
						t.Errorf("good: %v", err)
					}
					good.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	v, _, _ := e.opts.KV.KVGet(context.Background(), "script:good", "n")
	if v != fmt.Sprint(good.Load()) {
		t.Errorf("good hook ran %s times, want %d", v, good.Load())
	}
}

func TestCheckFindsRequireCallsNotMentions(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"a.lua": `-- this comment mentions require "nope" and must not count
local doc = 'call require "nope2" to load'
local m = require("lib.ok")
local function f()
  if true then
    local x = { y = require "missing.deep" }
  end
end
return require "json"
`,
		"lib/ok.lua": "return {}",
	})
	d := Check(dir)
	if len(d) != 1 || d[0].File != "a.lua" || d[0].Line != 6 || !strings.Contains(d[0].Message, `"missing.deep"`) {
		t.Errorf("diagnostics: %v", d)
	}
}

func TestRequireResolution(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{
		"main.lua": `
function run()
  local a = require "lib.util"
  local b = require "lib/util"
  local c = require "lib/util.lua"
  local v2 = require "shop.v2.lua"
  local side = require "side"
  local n = "no" .. "where"
  local ok, err = pcall(require, n)
  return {same = (a == b and b == c), v2 = v2.name, side = side, counted = a.count(), missing = err}
end
function loop() return require "loop_a" end
`,
		"lib/util.lua": `local M = {} local n = 0 function M.count() n = n + 1 return n end return M`,
		"shop.v2.lua":  `return {name = "v2"}`,
		"side.lua":     `side_effect = true`,
		"loop_a.lua":   `return require "loop_b"`,
		"loop_b.lua":   `return require "loop_a"`,
	}, nil, nil)
	tr, err := e.Call(context.Background(), "main", "run", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := tr.Return.(map[string]any)
	if m["same"] != true || m["v2"] != "v2" || m["side"] != true || m["counted"] != int64(1) ||
		!strings.Contains(fmt.Sprint(m["missing"]), `module "nowhere" not found`) {
		t.Errorf("require: %v", m)
	}
	_, err = e.Call(context.Background(), "main", "loop", nil)
	if he := mustKind(t, err, ErrHookFailed); !strings.Contains(he.Message, "requires itself") {
		t.Errorf("loop: %v", err)
	}
}

func TestCheckFolderLimits(t *testing.T) {
	files := map[string]string{}
	for i := 0; i < 40; i++ {
		files[fmt.Sprintf("f%02d.lua", i)] = "-- " + strings.Repeat("x", 240<<10)
	}
	d := Check(writeScripts(t, files))
	if len(d) != 1 || !strings.Contains(d[0].Message, "exceed") {
		t.Errorf("total size: %v", d)
	}
	many := map[string]string{}
	for i := 0; i <= MaxScripts; i++ {
		many[fmt.Sprintf("m%04d.lua", i)] = "return 1"
	}
	d = Check(writeScripts(t, many))
	if len(d) != 1 || !strings.Contains(d[0].Message, "more than 1000 scripts") {
		t.Errorf("count: %v", d)
	}
}
