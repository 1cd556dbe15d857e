package hooks

import (
	"context"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Lua 5.1 patterns, reimplemented for the sandbox: gopher-lua's matcher
// allocates at every position and cannot be interrupted, so a pattern like
// ".-b" over a hostile 100 KB HTTP body would hold a worker for minutes
// past its deadline. This matcher follows the Lua 5.1 reference semantics
// (string.find, match, gmatch, gsub), allocates nothing while matching,
// checks the call's context every few thousand steps and bounds its
// recursion.

const (
	maxCaptures    = 32
	maxMatchDepth  = 200
	capUnfinished  = -1
	capPosition    = -2
	patternSpecial = "^$*+?.([%-"
	stepsPerCheck  = 1 << 12
)

// patternError is raised (as a panic inside the matcher) for malformed
// patterns and stops; the Lua-facing functions turn it into a Lua error.
type patternError struct{ msg string }

type capture struct{ init, len int }

type matcher struct {
	src, pat string
	level    int
	capture  [maxCaptures]capture
	depth    int
	steps    int
	ctx      context.Context
}

func (m *matcher) fail(msg string) { panic(&patternError{msg}) }

func (m *matcher) tick() {
	m.steps++
	if m.steps&(stepsPerCheck-1) == 0 && m.ctx != nil {
		if err := m.ctx.Err(); err != nil {
			panic(&patternError{err.Error()})
		}
	}
}

func (m *matcher) classEnd(p int) int {
	pat := m.pat
	c := pat[p]
	p++
	if c == '%' {
		if p >= len(pat) {
			m.fail("malformed pattern (ends with '%')")
		}
		return p + 1
	}
	if c == '[' {
		if p < len(pat) && pat[p] == '^' {
			p++
		}
		for { // look for a ']'; the first character is always in the set
			if p >= len(pat) {
				m.fail("malformed pattern (missing ']')")
			}
			c := pat[p]
			p++
			if c == '%' && p < len(pat) {
				p++
			}
			if p >= len(pat) {
				m.fail("malformed pattern (missing ']')")
			}
			if pat[p] == ']' {
				return p + 1
			}
		}
	}
	return p
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }
func isCntrl(c byte) bool { return c < 32 || c == 127 }
func isPunct(c byte) bool { return c > 32 && c < 127 && !isAlpha(c) && !isDigit(c) }
func isXDigit(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func matchClass(c, cl byte) bool {
	var res bool
	switch cl | 0x20 {
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = isCntrl(c)
	case 'd':
		res = isDigit(c)
	case 'l':
		res = isLower(c)
	case 'p':
		res = isPunct(c)
	case 's':
		res = isSpace(c)
	case 'u':
		res = isUpper(c)
	case 'w':
		res = isAlpha(c) || isDigit(c)
	case 'x':
		res = isXDigit(c)
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if isUpper(cl) {
		return !res
	}
	return res
}

// matchBracket tests c against the set pat[p] == '[' .. pat[ec] == ']'.
func (m *matcher) matchBracket(c byte, p, ec int) bool {
	pat := m.pat
	sig := true
	if pat[p+1] == '^' {
		sig = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case pat[p] == '%':
			p++
			if p < len(pat) && matchClass(c, pat[p]) {
				return sig
			}
		case p+2 < ec && pat[p+1] == '-':
			p += 2
			if pat[p-2] <= c && c <= pat[p] {
				return sig
			}
		case pat[p] == c:
			return sig
		}
	}
	return !sig
}

func (m *matcher) singleMatch(s, p, ep int) bool {
	if s >= len(m.src) {
		return false
	}
	c := m.src[s]
	switch m.pat[p] {
	case '.':
		return true
	case '%':
		return matchClass(c, m.pat[p+1])
	case '[':
		return m.matchBracket(c, p, ep-1)
	}
	return m.pat[p] == c
}

// match returns the end of the match of pat[p:] at src[s:], or -1.
func (m *matcher) match(s, p int) int {
	m.depth++
	if m.depth > maxMatchDepth {
		m.fail("pattern too complex")
	}
	r := m.doMatch(s, p)
	m.depth--
	return r
}

func (m *matcher) doMatch(s, p int) int {
	pat := m.pat
	for {
		m.tick()
		if p == len(pat) {
			return s
		}
		switch pat[p] {
		case '(':
			if p+1 < len(pat) && pat[p+1] == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case ')':
			return m.endCapture(s, p+1)
		case '$':
			if p+1 == len(pat) {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		case '%':
			if p+1 < len(pat) {
				switch c := pat[p+1]; {
				case c == 'b':
					s = m.matchBalance(s, p+2)
					if s < 0 {
						return -1
					}
					p += 4
					continue
				case c == 'f':
					p += 2
					if p >= len(pat) || pat[p] != '[' {
						m.fail("missing '[' after '%f' in pattern")
					}
					ep := m.classEnd(p)
					var prev, cur byte
					if s > 0 {
						prev = m.src[s-1]
					}
					if s < len(m.src) {
						cur = m.src[s]
					}
					if m.matchBracket(prev, p, ep-1) || !m.matchBracket(cur, p, ep-1) {
						return -1
					}
					p = ep
					continue
				case isDigit(c):
					s = m.matchCapture(s, c)
					if s < 0 {
						return -1
					}
					p += 2
					continue
				}
			}
		}
		// Single character class with an optional quantifier.
		ep := m.classEnd(p)
		ok := m.singleMatch(s, p, ep)
		var q byte
		if ep < len(pat) {
			q = pat[ep]
		}
		switch q {
		case '?':
			if ok {
				if r := m.match(s+1, ep+1); r >= 0 {
					return r
				}
			}
			p = ep + 1
			continue
		case '*':
			return m.maxExpand(s, p, ep)
		case '+':
			if !ok {
				return -1
			}
			return m.maxExpand(s+1, p, ep)
		case '-':
			return m.minExpand(s, p, ep)
		}
		if !ok {
			return -1
		}
		s++
		p = ep
	}
}

func (m *matcher) maxExpand(s, p, ep int) int {
	i := 0
	for m.singleMatch(s+i, p, ep) {
		i++
		m.tick()
	}
	for ; i >= 0; i-- {
		if r := m.match(s+i, ep+1); r >= 0 {
			return r
		}
	}
	return -1
}

func (m *matcher) minExpand(s, p, ep int) int {
	for {
		if r := m.match(s, ep+1); r >= 0 {
			return r
		}
		if !m.singleMatch(s, p, ep) {
			return -1
		}
		s++
	}
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		m.fail("too many captures")
	}
	m.capture[m.level] = capture{init: s, len: what}
	m.level++
	r := m.match(s, p)
	if r < 0 {
		m.level--
	}
	return r
}

func (m *matcher) endCapture(s, p int) int {
	l := -1
	for i := m.level - 1; i >= 0; i-- {
		if m.capture[i].len == capUnfinished {
			l = i
			break
		}
	}
	if l < 0 {
		m.fail("invalid pattern capture")
	}
	m.capture[l].len = s - m.capture[l].init
	r := m.match(s, p)
	if r < 0 {
		m.capture[l].len = capUnfinished
	}
	return r
}

func (m *matcher) matchBalance(s, p int) int {
	if p+1 >= len(m.pat) {
		m.fail("unbalanced pattern")
	}
	if s >= len(m.src) || m.src[s] != m.pat[p] {
		return -1
	}
	b, e := m.pat[p], m.pat[p+1]
	cont := 1
	for s++; s < len(m.src); s++ {
		m.tick()
		switch m.src[s] {
		case e:
			cont--
			if cont == 0 {
				return s + 1
			}
		case b:
			cont++
		}
	}
	return -1
}

func (m *matcher) matchCapture(s int, c byte) int {
	l := int(c - '1')
	if l < 0 || l >= m.level || m.capture[l].len == capUnfinished {
		m.fail("invalid capture index")
	}
	cp := m.capture[l]
	if len(m.src)-s >= cp.len && m.src[cp.init:cp.init+cp.len] == m.src[s:s+cp.len] {
		return s + cp.len
	}
	return -1
}

// oneCapture returns capture i of a match s..e (the whole match when there
// is no capture and i == 0).
func (m *matcher) oneCapture(i, s, e int) lua.LValue {
	if i >= m.level {
		if i == 0 {
			return lua.LString(m.src[s:e])
		}
		m.fail("invalid capture index")
	}
	cp := m.capture[i]
	switch cp.len {
	case capUnfinished:
		m.fail("unfinished capture")
	case capPosition:
		return lua.LNumber(cp.init + 1)
	}
	return lua.LString(m.src[cp.init : cp.init+cp.len])
}

// captures returns every capture (or the whole match when none and
// whole is set).
func (m *matcher) captures(s, e int, whole bool) []lua.LValue {
	n := m.level
	if n == 0 && whole {
		n = 1
	}
	out := make([]lua.LValue, n)
	for i := range out {
		out[i] = m.oneCapture(i, s, e)
	}
	return out
}

// protect runs f, turning matcher panics into Lua errors.
func (s *vm) protect(L *lua.LState, f func() int) (n int) {
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(*patternError)
			if !ok {
				panic(r)
			}
			n = 0
			L.RaiseError("%s", pe.msg)
		}
	}()
	return f()
}

func (s *vm) newMatcher(src, pat string) *matcher {
	m := &matcher{src: src, pat: pat}
	if s.cur != nil {
		m.ctx = s.cur.ctx
	}
	return m
}

// literalHead reports whether the pattern at p starts with a plain
// character that every match must begin with.
func literalHead(pat string, p int) (byte, bool) {
	if p >= len(pat) || strings.IndexByte(patternSpecial+")]", pat[p]) >= 0 {
		return 0, false
	}
	if p+1 < len(pat) && strings.IndexByte("*?-", pat[p+1]) >= 0 {
		return 0, false
	}
	return pat[p], true
}

// posrelat turns a Lua 1-based (possibly negative) position into an offset.
func posrelat(pos, n int) int {
	if pos < 0 {
		pos += n + 1
	}
	if pos < 0 {
		return 0
	}
	return pos
}

func (s *vm) strFindAux(L *lua.LState, find bool) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	init := posrelat(L.OptInt(3, 1), len(src)) - 1
	if init < 0 {
		init = 0
	} else if init > len(src) {
		init = len(src)
	}
	if find && (lua.LVAsBool(L.Get(4)) || !strings.ContainsAny(pat, patternSpecial)) {
		i := strings.Index(src[init:], pat)
		if i < 0 {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(lua.LNumber(init + i + 1))
		L.Push(lua.LNumber(init + i + len(pat)))
		return 2
	}
	return s.protect(L, func() int {
		anchor := strings.HasPrefix(pat, "^")
		p := 0
		if anchor {
			p = 1
		}
		m := s.newMatcher(src, pat)
		lit, hasLit := literalHead(pat, p)
		for s1 := init; ; s1++ {
			if hasLit && !anchor {
				// Skip to the next place the pattern can start.
				i := strings.IndexByte(src[s1:], lit)
				if i < 0 {
					break
				}
				s1 += i
			}
			m.level, m.depth = 0, 0
			if e := m.match(s1, p); e >= 0 {
				if find {
					L.Push(lua.LNumber(s1 + 1))
					L.Push(lua.LNumber(e))
					caps := m.captures(-1, -1, false)
					for _, c := range caps {
						L.Push(c)
					}
					return 2 + len(caps)
				}
				caps := m.captures(s1, e, true)
				for _, c := range caps {
					L.Push(c)
				}
				return len(caps)
			}
			if s1 >= len(src) || anchor {
				break
			}
		}
		L.Push(lua.LNil)
		return 1
	})
}

func (s *vm) strFind(L *lua.LState) int  { return s.strFindAux(L, true) }
func (s *vm) strMatch(L *lua.LState) int { return s.strFindAux(L, false) }

// strGmatch returns an iterator over the matches ('^' is literal, as in
// Lua 5.1).
func (s *vm) strGmatch(L *lua.LState) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		return s.protect(L, func() int {
			m := s.newMatcher(src, pat)
			for ; pos <= len(src); pos++ {
				m.level, m.depth = 0, 0
				if e := m.match(pos, 0); e >= 0 {
					start := pos
					pos = e
					if e == start {
						pos++
					}
					caps := m.captures(start, e, true)
					for _, c := range caps {
						L.Push(c)
					}
					return len(caps)
				}
			}
			return 0
		})
	}))
	return 1
}

// strGsub is string.gsub in linear time (gopher-lua's copies the whole
// string once per match), interruptible, with the result capped at
// Options.MaxString.
func (s *vm) strGsub(L *lua.LState) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	L.CheckTypes(3, lua.LTString, lua.LTNumber, lua.LTTable, lua.LTFunction)
	repl := L.Get(3)
	maxN := L.OptInt(4, len(src)+1)
	max := s.e.opts.MaxString
	return s.protect(L, func() int {
		anchor := strings.HasPrefix(pat, "^")
		p := 0
		if anchor {
			p = 1
		}
		m := s.newMatcher(src, pat)
		var b strings.Builder
		pos, n := 0, 0
		for n < maxN {
			m.level, m.depth = 0, 0
			e := m.match(pos, p)
			if e >= 0 {
				n++
				s.gsubValue(L, m, &b, pos, e, repl)
			}
			switch {
			case e > pos:
				pos = e
			case pos < len(src):
				b.WriteByte(src[pos])
				pos++
			default:
				pos = len(src) + 1
			}
			if b.Len() > max {
				s.cur.fail(L, ErrLimit, "string.gsub: result exceeds the %d-byte string limit", max)
			}
			if pos > len(src) || anchor {
				break
			}
		}
		if pos < len(src) {
			b.WriteString(src[pos:])
		}
		if b.Len() > max {
			s.cur.fail(L, ErrLimit, "string.gsub: result exceeds the %d-byte string limit", max)
		}
		L.Push(lua.LString(b.String()))
		L.Push(lua.LNumber(n))
		return 2
	})
}

// gsubValue appends the replacement of the match s..e.
func (s *vm) gsubValue(L *lua.LState, m *matcher, b *strings.Builder, st, e int, repl lua.LValue) {
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString, lua.LNumber:
		rs := r.String()
		for i := 0; i < len(rs); i++ {
			c := rs[i]
			if c != '%' {
				b.WriteByte(c)
				continue
			}
			i++
			if i >= len(rs) {
				break
			}
			c = rs[i]
			switch {
			case !isDigit(c):
				b.WriteByte(c)
			case c == '0':
				b.WriteString(m.src[st:e])
			default:
				b.WriteString(m.oneCapture(int(c-'1'), st, e).String())
			}
			if b.Len() > s.e.opts.MaxString {
				s.cur.fail(L, ErrLimit, "string.gsub: result exceeds the %d-byte string limit", s.e.opts.MaxString)
			}
		}
		return
	case *lua.LTable:
		v = L.GetTable(r, m.oneCapture(0, st, e))
	case *lua.LFunction:
		L.CallByParam(lua.P{Fn: r, NRet: 1, Protect: false}, m.captures(st, e, true)...)
		v = L.Get(-1)
		L.Pop(1)
	}
	switch x := v.(type) {
	case lua.LString:
		b.WriteString(string(x))
	case lua.LNumber:
		b.WriteString(x.String())
	case *lua.LNilType:
		b.WriteString(m.src[st:e])
	case lua.LBool:
		if bool(x) {
			L.RaiseError("invalid replacement value (a boolean)")
		}
		b.WriteString(m.src[st:e])
	default:
		L.RaiseError("invalid replacement value (a %s)", v.Type().String())
	}
}
