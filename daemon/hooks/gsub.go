package hooks

import (
	"strconv"
	"strings"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/pm"
)

// strGsub is string.gsub rewritten to run in linear time (gopher-lua's
// copies the whole string once per match), to honour the call's deadline
// between matches and to cap the result at Options.MaxString.
func (s *vm) strGsub(L *lua.LState) int {
	str := L.CheckString(1)
	pat := L.CheckString(2)
	L.CheckTypes(3, lua.LTString, lua.LTTable, lua.LTFunction)
	repl := L.Get(3)
	limit := L.OptInt(4, -1)
	max := s.e.opts.MaxString
	src := unsafe.Slice(unsafe.StringData(str), len(str))
	mustHead := strings.HasPrefix(pat, "^")
	var b strings.Builder
	n, sp, last := 0, 0, 0
	for sp <= len(str) && (limit < 0 || n < limit) {
		mds, err := pm.Find(pat, src, sp, 1)
		if err != nil {
			L.RaiseError("%s", err.Error())
		}
		if len(mds) == 0 {
			break
		}
		m := mds[0]
		st, en := m.Capture(0), m.Capture(1)
		b.WriteString(str[last:st])
		if r, ok := s.gsubValue(L, str, m, repl); ok {
			b.WriteString(r)
		} else {
			b.WriteString(str[st:en])
		}
		last = en
		n++
		if b.Len() > max {
			s.cur.fail(L, ErrLimit, "string.gsub: result exceeds the %d-byte string limit", max)
		}
		if n&255 == 0 && s.cur.ctx.Err() != nil {
			L.RaiseError("%v", s.cur.ctx.Err())
		}
		sp = st + 1
		if en > sp {
			sp = en
		}
		if mustHead {
			break
		}
	}
	b.WriteString(str[last:])
	if b.Len() > max {
		s.cur.fail(L, ErrLimit, "string.gsub: result exceeds the %d-byte string limit", max)
	}
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(n))
	return 2
}

// capture returns capture i (1-based; 0 = whole match).
func capture(L *lua.LState, str string, m *pm.MatchData, i int) lua.LValue {
	idx := 2 * i
	if i == 1 && m.CaptureLength() == 2 {
		idx = 0
	}
	if idx+1 >= m.CaptureLength() && idx != 0 {
		L.RaiseError("invalid capture index %%%d", i)
	}
	if m.IsPosCapture(idx) {
		return lua.LNumber(m.Capture(idx))
	}
	return lua.LString(str[m.Capture(idx):m.Capture(idx+1)])
}

// gsubValue computes one replacement; ok=false keeps the match.
func (s *vm) gsubValue(L *lua.LState, str string, m *pm.MatchData, repl lua.LValue) (string, bool) {
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString:
		rs := string(r)
		if !strings.Contains(rs, "%") {
			return rs, true
		}
		var b strings.Builder
		for i := 0; i < len(rs); i++ {
			c := rs[i]
			if c != '%' || i+1 >= len(rs) {
				b.WriteByte(c)
				continue
			}
			i++
			c = rs[i]
			if c >= '0' && c <= '9' {
				cv := capture(L, str, m, int(c-'0'))
				b.WriteString(cv.String())
			} else {
				b.WriteByte(c)
			}
			if b.Len() > s.e.opts.MaxString {
				s.cur.fail(L, ErrLimit, "string.gsub: result exceeds the %d-byte string limit", s.e.opts.MaxString)
			}
		}
		return b.String(), true
	case *lua.LTable:
		v = L.GetTable(r, capture(L, str, m, 1))
	case *lua.LFunction:
		ncap := m.CaptureLength()/2 - 1
		if ncap < 1 {
			ncap = 1
		}
		args := make([]lua.LValue, ncap)
		for i := range args {
			args[i] = capture(L, str, m, i+1)
		}
		L.CallByParam(lua.P{Fn: r, NRet: 1, Protect: false}, args...)
		v = L.Get(-1)
		L.Pop(1)
	}
	switch x := v.(type) {
	case lua.LString:
		return string(x), true
	case lua.LNumber:
		return strconv.FormatFloat(float64(x), 'g', 14, 64), true
	case *lua.LNilType:
		return "", false
	case lua.LBool:
		if !bool(x) {
			return "", false
		}
	}
	L.RaiseError("invalid replacement value (a %s)", v.Type().String())
	return "", false
}
