package hooks

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// sandboxEngine loads testdata/sandbox plus a well-behaved script.
func sandboxEngine(t *testing.T, mod func(*Options)) *Engine {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir("testdata/sandbox")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("testdata/sandbox", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ok.lua"), []byte(`function ping() return string.upper("pong") .. #string.rep("x", 3) end`), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := Options{Dir: dir, Logger: zerolog.Nop(), Timeout: 20 * time.Second, MemoryBudget: 96 << 20, PoolSize: 2}
	if mod != nil {
		mod(&opts)
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestSandboxStopsHostileScripts(t *testing.T) {
	e := sandboxEngine(t, nil)
	cases := []struct {
		script  string
		kind    error
		line    int
		message string
		timeout time.Duration
	}{
		{"io_open", ErrForbidden, 3, "io is not available", 0},
		{"os_execute", ErrForbidden, 2, "os is not available", 0},
		{"require_parent", ErrForbidden, 3, "'..' is refused", 0},
		{"require_abs", ErrForbidden, 3, "absolute paths are refused", 0},
		{"dofile", ErrForbidden, 2, "dofile is not available", 0},
		{"loadstring", ErrForbidden, 2, "loadstring is not available", 0},
		{"collectgarbage", ErrForbidden, 2, "collectgarbage is not available", 0},
		{"getfenv", ErrForbidden, 2, "getfenv is not available", 0},
		{"coroutine", ErrForbidden, 2, "coroutine is not available", 0},
		{"endless", ErrTimeout, 3, "timed out", 300 * time.Millisecond},
		{"pcall_endless", ErrTimeout, 0, "timed out", 300 * time.Millisecond},
		{"rep_huge", ErrLimit, 2, "string.rep", 0},
		{"rep_method", ErrLimit, 2, "string.rep", 0},
		{"rep_odd", ErrLimit, 6, "string.rep", 0},
		{"table_concat_huge", ErrLimit, 5, "table.concat", 0},
		{"gsub_bomb", ErrLimit, 3, "string.gsub", 0},
		{"format_width", ErrLimit, 2, "string.format", 0},
		{"format_many", ErrLimit, 6, "string.format", 0},
		{"format_missing", ErrHookFailed, 3, "no value", 0},
		{"recursion", ErrLimit, 1, "stack overflow", 0},
		{"table_grow", ErrMemoryLimit, 0, "memory limit exceeded", 0},
		{"concat_grow", ErrLimit, 3, "concatenation (..)", 0},
		{"concat_bomb", ErrLimit, 5, "concatenation (..)", 0},
		{"string_mt", ErrHookFailed, 4, "", 0},
		{"env_mt", ErrHookFailed, 3, "cannot change a protected metatable", 0},
		{"unpack_huge", ErrLimit, 2, "registry overflow", 0},
		{"byte_huge", ErrLimit, 2, "registry overflow", 0},
		{"tostring_loop", ErrTimeout, 3, "timed out", 300 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.script, func(t *testing.T) {
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, err := e.Call(ctx, tc.script, "run", nil)
			he := mustKind(t, err, tc.kind)
			if he.File != tc.script+".lua" {
				t.Errorf("file = %q, want %s.lua (%v)", he.File, tc.script, err)
			}
			if tc.line > 0 && he.Line != tc.line {
				t.Errorf("line = %d, want %d (%v)", he.Line, tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not mention %q", err, tc.message)
			}
			// The engine keeps serving, with intact libraries.
			tr, err := e.Call(context.Background(), "ok", "ping", nil)
			if err != nil || tr.Return != "PONG3" {
				t.Fatalf("next call: %v %v", tr.Return, err)
			}
		})
	}
	// Huge sparse integer keys are cheap (no gap filling, no memory stop).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tr, err := e.Call(ctx, "sparse_index", "run", nil); err != nil || tr.Return != "1001|1|edge" {
		t.Fatalf("sparse_index: %v %v", tr.Return, err)
	}
	// Metatables handed out are per call or protected.
	tr, err := e.Call(context.Background(), "shared_mt", "run", nil)
	if err != nil || tr.Return != "locked|false" {
		t.Fatalf("shared_mt: %v %v", tr.Return, err)
	}
	e2 := sandboxEngine(t, func(o *Options) { o.PoolSize = 1 })
	for i := 0; i < 2; i++ {
		if _, err := e2.Call(context.Background(), "shared_mt", "run", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat("/tmp/acquit-pwned"); err == nil {
		t.Fatal("os.execute ran")
	}
}

func TestNoStateLeaksBetweenCalls(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"leak.lua": `
counter = (counter or 0) + 1
function set()
  leaked = "yes"
  rawset(_G, "raw", 1)
  string.upper = function() return "hijacked" end
  table.insert = nil
  math.pi = 3
  return counter
end
function get()
  return {leaked = leaked or "no", raw = raw or 0, upper = string.upper("a"), pi = math.pi > 3.1,
    insert = type(table.insert), counter = counter}
end
`}, nil, func(o *Options) { o.PoolSize = 1 })
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		tr, err := e.Call(ctx, "leak", "set", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Return != int64(1) {
			t.Fatalf("top-level counter = %v, want 1 on every call", tr.Return)
		}
		tr, err = e.Call(ctx, "leak", "get", nil)
		if err != nil {
			t.Fatal(err)
		}
		got := tr.Return.(map[string]any)
		want := map[string]any{"leaked": "no", "raw": int64(0), "upper": "A", "pi": true, "insert": "function", "counter": int64(1)}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("call %d: %s = %v, want %v", i, k, got[k], v)
			}
		}
	}
}

func TestErrorPositions(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{
		"main.lua":     "local util = require \"lib.util\"\n\nfunction direct()\n  error(\"direct failure\")\nend\n\nfunction viaModule()\n  util.explode()\nend\n\nfunction nilIndex()\n  local x = nil\n  return x.field\nend\n\nfunction returnsErr()\n  return nil, \"order not found\"\nend\n\nfunction errTable()\n  error({code = 1})\nend\n",
		"lib/util.lua": "local M = {}\n\nfunction M.explode()\n  error(\"deep failure\")\nend\n\nreturn M\n",
	}, nil, nil)
	cases := []struct {
		fn   string
		file string
		line int
		msg  string
	}{
		{"direct", "main.lua", 4, "direct failure"},
		{"viaModule", "lib/util.lua", 4, "deep failure"},
		{"nilIndex", "main.lua", 13, "field"},
		{"returnsErr", "main.lua", 16, "order not found"},
		{"errTable", "main.lua", 21, "error object"},
	}
	for _, tc := range cases {
		t.Run(tc.fn, func(t *testing.T) {
			_, err := e.Call(context.Background(), "main", tc.fn, nil)
			he := mustKind(t, err, ErrHookFailed)
			if he.File != tc.file || he.Line != tc.line {
				t.Errorf("position %s:%d, want %s:%d (%v)", he.File, he.Line, tc.file, tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%q does not contain %q", err, tc.msg)
			}
			if !strings.Contains(err.Error(), tc.file) {
				t.Errorf("%q does not name %s", err, tc.file)
			}
		})
	}
}
