package hooks

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// totalAlloc is the bytes the process has allocated so far (never
// decreases): what a call allocated is the difference around it.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// TestConcatBombRefusedBeforeAllocation: one `..` of 64 operands used to
// build the whole result in one VM instruction (OP_CONCAT), past the string
// cap, the memory budget and the deadline. It is now refused before the
// result is allocated: the hook fails with ErrLimit at its line, and the
// process allocated about the operand, not 64 times it.
func TestConcatBombRefusedBeforeAllocation(t *testing.T) {
	const maxString = 1 << 20
	ops := make([]string, 64)
	for i := range ops {
		ops[i] = "s"
	}
	e, _ := newTestEngine(t, map[string]string{"bomb.lua": "function run()\n  local s = string.rep(\"x\", " +
		"1024 * 1024)\n  local big = " + strings.Join(ops, " .. ") + "\n  return #big\nend\n"}, nil,
		func(o *Options) { o.MaxString = maxString; o.MemoryBudget = -1 })
	before := totalAlloc()
	_, err := e.Call(context.Background(), "bomb", "run", nil)
	allocated := totalAlloc() - before
	he := mustKind(t, err, ErrLimit)
	if he.File != "bomb.lua" || he.Line != 3 || !strings.Contains(err.Error(), "concatenation") {
		t.Fatalf("error at %s:%d: %v", he.File, he.Line, err)
	}
	// The operand is 1 MiB; the refused result would have been 64 MiB.
	if allocated > 8*maxString {
		t.Fatalf("the call allocated %d bytes: the concatenation was built before being refused", allocated)
	}
	t.Logf("refused 64 MiB concatenation; the call allocated %.1f MiB", float64(allocated)/(1<<20))
}

// TestConcatLoopStopsAtTimeout: a loop concatenating strings below the cap
// is stopped by the call's deadline (each `..` is short, the VM checks the
// context between instructions).
func TestConcatLoopStopsAtTimeout(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"loop.lua": `
function run()
  local s = string.rep("x", 4 * 1024 * 1024)
  while true do local t = s .. s .. s end
end
`}, nil, func(o *Options) { o.Timeout = 300 * time.Millisecond; o.MemoryBudget = -1 })
	start := time.Now()
	_, err := e.Call(context.Background(), "loop", "run", nil)
	took := time.Since(start)
	mustKind(t, err, ErrTimeout)
	// Generous bound: the point is that it stops, not how fast.
	if took > 10*time.Second {
		t.Fatalf("the loop ran %s past a 300ms timeout", took)
	}
}

// TestConcatSemantics: `..` behaves as Lua's: numbers convert, chains and
// nesting keep their order, __concat metamethods run (left operand's
// first), errors name the operand types and the line, `return a..b` is not
// a tail call that loses the position.
func TestConcatSemantics(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{
		"c.lua": `local mt = {__concat = function(a, b)
  local x = type(a) == "table" and a.v or a
  local y = type(b) == "table" and b.v or b
  return "<" .. x .. "|" .. y .. ">"
end}
local function box(v) return setmetatable({v = v}, mt) end
function chain() return "a" .. 1 .. "b" .. 2.5 .. ("c" .. "d") .. "e" end
function meta() return "x" .. box("m") .. "y" .. "z" end
function metaLeft() return box("l") .. "r" end
function nilConcat()
  local n
  return "a" .. n
end
function inModule() return require("lib").join("p", "q") end
`,
		"lib.lua": "local M = {}\nfunction M.join(a, b) return a .. \"/\" .. b end\nreturn M\n",
	}, nil, nil)
	ctx := context.Background()
	for fn, want := range map[string]string{
		"chain":    "a1b2.5cde",
		"meta":     "x<m|yz>",
		"metaLeft": "<l|r>",
		"inModule": "p/q",
	} {
		tr, err := e.Call(ctx, "c", fn, nil)
		if err != nil || tr.Return != want {
			t.Errorf("%s = %v, %v; want %q", fn, tr.Return, err, want)
		}
	}
	_, err := e.Call(ctx, "c", "nilConcat", nil)
	he := mustKind(t, err, ErrHookFailed)
	if he.Line != 12 || !strings.Contains(err.Error(), "concat") || !strings.Contains(err.Error(), "nil") {
		t.Fatalf("nil concat: line %d: %v", he.Line, err)
	}
}

// TestConcatReservedName: the rewritten call's name cannot be taken by a
// script (it could otherwise stand in for the bounded function).
func TestConcatReservedName(t *testing.T) {
	for _, src := range []string{
		"local __acquit_concat = function(a, b) return a end\nfunction f() return 'a' .. 'b' end\n",
		"function f(__acquit_concat) return 1 end\n",
		"function f() return __acquit_concat('a', 'b') end\n",
	} {
		d := Check(writeScripts(t, map[string]string{"r.lua": src}))
		if len(d) != 1 || d[0].File != "r.lua" || !strings.Contains(d[0].Message, "reserved") {
			t.Errorf("%q: diagnostics %v", src, d)
		}
	}
}
