package hooks

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// patternCases are Lua expressions over string.find/match/gmatch/gsub.
// Each is run by the sandbox's matcher and, for the differential test, by
// gopher-lua's own string library; known differences of gopher-lua from
// Lua 5.1 carry the 5.1 result in want.
var patternCases = []struct {
	expr string
	want string // "" = same as gopher-lua
}{
	{`string.find("hello world", "o")`, ""},
	{`string.find("hello world", "o", 6)`, ""},
	{`string.find("hello world", "l+")`, ""},
	{`string.find("hello", "^h")`, ""},
	{`string.find("hello", "^e")`, ""},
	{`string.find("hello", "o$")`, ""},
	{`string.find("hello", "(h)(e)")`, ""},
	{`string.find("hello", "()ll()")`, ""},
	{`string.find("a+b", "+", 1, true)`, ""},
	{`string.find("a.b", ".", 2, true)`, ""},
	{`string.find("abc", "b", -1)`, ""},
	{`string.find("abc", "b", -10)`, ""},
	{`string.find("abc", "", 10)`, "4|3"}, // gopher-lua: 1|0,
	{`string.find("abc", "", 4)`, "4|3"},
	{`string.find("", "")`, ""},
	{`string.match("  trim me  ", "^%s*(.-)%s*$")`, ""},
	{`string.match("key=value", "(%w+)=(%w+)")`, ""},
	{`string.match("THE (quick) fox", "%((%a+)%)")`, ""},
	{`string.match("f(a(b)c)d", "%b()")`, ""},
	{`string.match("THE (quick) fox", "%f[%a]%a+", 5)`, "quick"}, // gopher-lua: fox,
	{`string.match("abcabc", "(abc)%1")`, ""},
	{`string.match("abcabd", "(ab.)%1")`, "nil"},
	{`string.match("a.b", "%.")`, ""},
	{`string.match("[x]", "[]]")`, ""},
	{`string.match("a-b", "[a-]+")`, ""},
	{`string.match("x^y", "[%^]")`, ""},
	{`string.match("x^y", "[^%^]+")`, ""},
	{`string.match("2024-01-02", "(%d+)-(%d+)-(%d+)")`, ""},
	{`string.match("", ".*")`, ""},
	{`string.match("abc", "")`, ""},
	{`string.match("abc", "x*")`, ""},
	{`string.match("aaa", "a-")`, ""},
	{`string.match("aaa", "a-$")`, ""},
	{`string.match("aaab", "a-b")`, ""},
	{`string.match("hello", "[^l]+")`, ""},
	{`string.match("hello", "l?lo")`, ""},
	{`string.match("hello", "x?h")`, ""},
	{`string.match("Hello World 42", "%u%l+ %u")`, ""},
	{`string.match("tab\there", "%c")`, ""},
	{`string.match("0xFF", "0x(%x+)")`, ""},
	{`string.match("a,b;c", "%p")`, ""},
	{`string.match("ABC", "%L+")`, ""},
	{`string.match("abc123", "%D+")`, ""},
	{`string.match("a\0b", "%z")`, ""},
	{`string.match("ab", "()")`, ""},
	{`string.match("THE END", "%f[%w]%w+$")`, "END"},
	{`string.match("x = {a = {b}}", "%b{}")`, ""},
	{`string.match("abc", "((a)(b))")`, ""},
	{`string.match("hello", "$")`, ""},
	{`string.match("a$b", "a$b")`, ""},
	{`string.match("^a", "^^a")`, ""},
	{`string.match("[[x]]", "%[(%b[])%]")`, ""},
	{`string.gsub("hello world", "o", "0")`, ""},
	{`string.gsub("hello", "", "-")`, ""},
	{`string.gsub("abc", "%w", "%0%0")`, ""},
	{`string.gsub("hello world", "(%w+)", "<%1>")`, ""},
	{`string.gsub("hello world", "(%w+) (%w+)", "%2 %1")`, ""},
	{`string.gsub("abc", "b", "%%")`, ""},
	{`string.gsub("abc", "b", "%x")`, "axc|1"},
	{`string.gsub("hello world", "%w+", {hello = "HI", world = false})`, ""},
	{`string.gsub("abc", "%w", function(c) return c:upper() .. "." end)`, ""},
	{`string.gsub("abc", "%w", function(c) if c == "b" then return nil end return 1 end)`, ""},
	{`string.gsub("hello world", "l", "L", 2)`, ""},
	{`string.gsub("hello", "^h", "J")`, ""},
	{`string.gsub("hhh", "^h", "J")`, ""},
	{`string.gsub("abc", ".-", "x")`, ""},
	{`string.gsub("abc", "()", "%1")`, ""},
	{`string.gsub("a b c", "%s", 5)`, "a5b5c|2"}, // numbers are valid replacements in 5.1,
	{`string.gsub("  x  ", "^%s+", "")`, ""},
	{`string.gsub("$1,000", "[$,]", "")`, ""},
	{`string.gsub("one two", "(%w+)", "%0-%0")`, ""},
	{`(function() local t = {} for k, v in string.gmatch("a=1, b=2, c=3", "(%w+)=(%w+)") do t[#t+1] = k .. v end return table.concat(t, ";") end)()`, ""},
	{`(function() local t = {} for w in string.gmatch("one two  three", "%a+") do t[#t+1] = w end return table.concat(t, ";") end)()`, ""},
	{`(function() local t = {} for w in string.gmatch("abc", "") do t[#t+1] = "[" .. w .. "]" end return table.concat(t) end)()`, ""},
	{`(function() local t = {} for p in string.gmatch("abc", "()") do t[#t+1] = p end return table.concat(t, ",") end)()`, ""},
	{`(function() local t = {} for w in ("x,y,,z"):gmatch("([^,]*)") do t[#t+1] = "<" .. w .. ">" end return table.concat(t) end)()`, ""},
	{`("Hello"):find("l")`, ""},
	{`("Hello"):match("(H)(.)")`, ""},
	// string.format goes through the sandbox's validator.
	{`string.format("%5.2f|%d|%s|%q|%x|%%|%-5s|%05d", 3.14159, 42, "hi", 'a"b', 255, "l", 7)`, ""},
	{`string.format("%c%c|%e|%g|%i|%o|%X|%u", 72, 105, 12345.678, 0.1, 3, 8, 255, 4)`, ""},
	{`string.format("%s and %s", "a")`, "error"}, // bad argument #3 (no value), as in Lua 5.1
	{`string.format("%y", 1)`, "error"},
	// Errors: only the fact of failing is compared.
	{`string.find("abc", "[a")`, ""},
	{`string.find("abc", "%")`, "error"}, // malformed pattern (ends with '%'),
	{`string.match("abc", "(()")`, ""},
	{`string.match("abc", "%1")`, ""},
	{`string.match("abc", "a)")`, ""},
	{`string.match("abc", "%b")`, "error"}, // unbalanced pattern,
	{`string.match("abc", "%f")`, "error"}, // missing '[' after '%f',
	{`string.gsub("abc", "(a)", "%2")`, ""},
	{`string.gsub("abc", "a", {a = {}})`, "error"},         // invalid replacement value (a table),
	{`string.match("abc", string.rep("()", 33))`, "error"}, // too many captures (32),
}

func patternScript() string {
	var b strings.Builder
	b.WriteString(`local function ser(ok, ...)
  if not ok then return "error" end
  local t = {}
  for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
  return table.concat(t, "|")
end
cases = {}
`)
	for _, c := range patternCases {
		fmt.Fprintf(&b, "cases[#cases + 1] = function() return ser(pcall(function() return %s end)) end\n", c.expr)
	}
	b.WriteString("function run() local out = {} for i, f in ipairs(cases) do out[i] = f() end return out end\n")
	return b.String()
}

func TestPatternsMatchLua51(t *testing.T) {
	src := patternScript()
	// Reference: gopher-lua's own string library in a plain state.
	L := lua.NewState()
	defer L.Close()
	if err := L.DoString(src + "\nresult = run()"); err != nil {
		t.Fatal(err)
	}
	ref := L.GetGlobal("result").(*lua.LTable)
	e, _ := newTestEngine(t, map[string]string{"p.lua": src}, nil, nil)
	tr, err := e.Call(context.Background(), "p", "run", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := tr.Return.([]any)
	if len(got) != len(patternCases) {
		t.Fatalf("%d results for %d cases", len(got), len(patternCases))
	}
	for i, c := range patternCases {
		want := c.want
		if want == "" {
			want = ref.RawGetInt(i + 1).String()
		}
		if got[i] != want {
			t.Errorf("%s = %q, want %q", c.expr, got[i], want)
		}
	}
}

func TestPatternsAreInterruptible(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"p.lua": `
function slow(kind)
  local s = string.rep("a", 200000)
  if kind == "find" then return s:find(".-b") end
  if kind == "match" then return s:match("a*a*a*b") end
  if kind == "gsub" then return (s:gsub("a-a-a-b", "x")) end
  if kind == "gmatch" then for x in s:gmatch(".-.-b") do end end
end
function deep() return string.match("aaaa", string.rep("a*", 300)) end
`}, nil, nil)
	for _, kind := range []string{"find", "match", "gsub", "gmatch"} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := e.Call(ctx, "p", "slow", kind)
		cancel()
		mustKind(t, err, ErrTimeout)
	}
	if _, err := e.Call(context.Background(), "p", "deep", nil); err == nil || !strings.Contains(err.Error(), "pattern too complex") {
		t.Errorf("deep pattern: %v", err)
	}
}

func BenchmarkPatternFind(b *testing.B) {
	e, _ := newTestEngine(b, map[string]string{"p.lua": `
local body = string.rep("x", 4000) .. '"id":"A000000042"' .. string.rep("y", 4000)
function run() return body:match('"id":"(.-)"') end`}, nil, nil)
	for b.Loop() {
		if tr, err := e.Call(context.Background(), "p", "run", nil); err != nil || tr.Return != "A000000042" {
			b.Fatal(tr.Return, err)
		}
	}
}

// FuzzMatcher checks the matcher never panics (other than pattern errors)
// and returns positions inside the subject.
func FuzzMatcher(f *testing.F) {
	for _, s := range []string{"%b()", "[%a-z]+", "(a*(.)%w(%s*))", "%f[%w]%w+", "^(.-)%s*$", "[]]", "[^%]]", "(()", "%1", "a-b?c*d+"} {
		f.Add("hello (world) 42", s)
	}
	f.Fuzz(func(t *testing.T, src, pat string) {
		if len(pat) > 64 || len(src) > 256 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		m := &matcher{src: src, pat: pat, ctx: ctx}
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(*patternError); !ok {
						t.Fatalf("panic on %q %q: %v", src, pat, r)
					}
				}
			}()
			for s := 0; s <= len(src); s++ {
				m.level, m.depth = 0, 0
				if e := m.match(s, 0); e >= 0 {
					if e < s || e > len(src) {
						t.Fatalf("match %q %q at %d ends at %d", src, pat, s, e)
					}
					m.captures(s, e, true)
				}
			}
		}()
	})
}
