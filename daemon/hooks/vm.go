package hooks

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// vm is one Lua state of a pool with what the sandbox needs.
type vm struct {
	L     *lua.LState
	e     *Engine
	cur   *call
	base  *lua.LTable // read-only base functions (reached through __index)
	envMt *lua.LTable
	libs  map[string]*lua.LTable // string, table, math (copied per call)
	mods  map[string]map[string]*lua.LFunction
	null  *lua.LUserData
}

// builtinModules are what require resolves besides the scripts folder.
var builtinModules = map[string]struct{}{
	"json": {}, "http": {}, "log": {}, "kv": {}, "config": {}, "time": {},
}

// forbidden names raise a clear sandbox error when read.
var forbidden = map[string]string{
	"io":             "io is not available to hooks (no file access)",
	"os":             "os is not available to hooks (use the time module)",
	"debug":          "debug is not available to hooks",
	"package":        "package is not available to hooks (require resolves acquit modules and the scripts folder)",
	"coroutine":      "coroutine is not available to hooks",
	"channel":        "channel is not available to hooks",
	"dofile":         "dofile is not available to hooks (use require)",
	"loadfile":       "loadfile is not available to hooks (use require)",
	"load":           "load is not available to hooks (no code from strings)",
	"loadstring":     "loadstring is not available to hooks (no code from strings)",
	"collectgarbage": "collectgarbage is not available to hooks",
	"getfenv":        "getfenv is not available to hooks",
	"setfenv":        "setfenv is not available to hooks",
	"module":         "module is not available to hooks (return a table from the module file)",
	"newproxy":       "newproxy is not available to hooks",
}

var baseAllowed = []string{"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal",
	"rawget", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "unpack", "xpcall", "_VERSION"}

// newVM makes a sandboxed Lua state.
func (e *Engine) newVM() *vm {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:    true,
		CallStackSize:   e.opts.CallStackSize,
		RegistrySize:    1024 * 4,
		RegistryMaxSize: e.opts.RegistryMaxSize,
		// gopher-lua grows the registry by copying it; the default step
		// (32 slots) makes unpack/string.byte of big inputs quadratic
		// (a minute of uninterruptible CPU before "registry overflow").
		RegistryGrowStep:    max(1024, e.opts.RegistryMaxSize/64),
		MinimizeStackMemory: true,
	})
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	s := &vm{L: L, e: e, libs: map[string]*lua.LTable{}, mods: map[string]map[string]*lua.LFunction{}}
	g := L.G.Global
	s.base = L.NewTable()
	for _, n := range baseAllowed {
		s.base.RawSetString(n, g.RawGetString(n))
	}
	s.base.RawSetString("print", L.NewFunction(s.print))
	s.base.RawSetString("require", L.NewFunction(s.require))
	s.base.RawSetString(concatName, L.NewFunction(s.concat))
	baseMt := L.NewTable()
	baseMt.RawSetString("__index", L.NewFunction(s.miss))
	baseMt.RawSetString("__metatable", lua.LString("locked"))
	L.SetMetatable(s.base, baseMt)
	s.envMt = L.NewTable()
	s.envMt.RawSetString("__index", s.base)
	s.envMt.RawSetString("__metatable", lua.LString("locked"))

	// string: wrapped limits, no dump; the string metatable is locked.
	str := L.NewTable()
	orig := g.RawGetString("string").(*lua.LTable)
	orig.ForEach(func(k, v lua.LValue) {
		if ks, ok := k.(lua.LString); ok && ks != "dump" && ks != "__index" {
			str.RawSet(k, v)
		}
	})
	str.RawSetString("rep", L.NewFunction(s.strRep))
	origFormat := orig.RawGetString("format").(*lua.LFunction)
	str.RawSetString("format", L.NewFunction(s.strFormat(origFormat)))
	str.RawSetString("gsub", L.NewFunction(s.strGsub))
	str.RawSetString("find", L.NewFunction(s.strFind))
	str.RawSetString("match", L.NewFunction(s.strMatch))
	gm := L.NewFunction(s.strGmatch)
	str.RawSetString("gmatch", gm)
	str.RawSetString("gfind", gm)
	smt := L.NewTable()
	smt.RawSetString("__index", str)
	smt.RawSetString("__metatable", lua.LFalse)
	L.SetMetatable(lua.LString(""), smt)
	s.libs["string"] = str

	tab := L.NewTable()
	g.RawGetString("table").(*lua.LTable).ForEach(func(k, v lua.LValue) { tab.RawSet(k, v) })
	tab.RawSetString("concat", L.NewFunction(s.tableConcat))
	s.libs["table"] = tab
	mth := L.NewTable()
	g.RawGetString("math").(*lua.LTable).ForEach(func(k, v lua.LValue) { mth.RawSet(k, v) })
	s.libs["math"] = mth

	// Nothing else is reachable: clear the real globals.
	for _, k := range []string{"string", "table", "math", "_G"} {
		g.RawSetString(k, lua.LNil)
	}
	s.null = L.NewUserData()
	s.null.Value = "json.null"
	nmt := L.NewTable()
	nmt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int { L.Push(lua.LString("null")); return 1 }))
	nmt.RawSetString("__metatable", lua.LString("json.null"))
	s.null.Metatable = nmt
	s.registerModules()
	return s
}

// newEnv makes a call's fresh global table.
func (s *vm) newEnv() *lua.LTable {
	env := s.L.CreateTable(0, 8)
	env.Metatable = s.envMt
	return env
}

// miss resolves globals not in the env nor the base: fresh copies of the
// libraries and modules, _G, clear errors for forbidden names, nil else.
func (s *vm) miss(L *lua.LState) int {
	k, ok := L.Get(2).(lua.LString)
	c := s.cur
	if !ok || c == nil {
		L.Push(lua.LNil)
		return 1
	}
	name := string(k)
	if name == "_G" {
		L.Push(c.env)
		return 1
	}
	if lib, ok := s.libs[name]; ok {
		t := L.CreateTable(0, 32)
		lib.ForEach(func(k, v lua.LValue) { t.RawSet(k, v) })
		c.env.RawSetString(name, t)
		L.Push(t)
		return 1
	}
	if _, ok := builtinModules[name]; ok {
		t := s.module(name)
		c.env.RawSetString(name, t)
		L.Push(t)
		return 1
	}
	if msg, ok := forbidden[name]; ok {
		c.fail(L, ErrForbidden, "%s", msg)
	}
	L.Push(lua.LNil)
	return 1
}

// module builds a call's fresh table of an acquit module (cached per call).
func (s *vm) module(name string) lua.LValue {
	c := s.cur
	if c.loaded == nil {
		c.loaded = map[string]lua.LValue{}
	}
	if t, ok := c.loaded[name]; ok {
		return t
	}
	t := s.L.CreateTable(0, len(s.mods[name])+1)
	for n, f := range s.mods[name] {
		t.RawSetString(n, f)
	}
	if name == "json" {
		t.RawSetString("null", s.null)
	}
	c.loaded[name] = t
	return t
}

// require resolves acquit modules and .lua files of the scripts folder,
// compiled at load time: nothing is read from disk at run time.
func (s *vm) require(L *lua.LState) int {
	c := s.cur
	req := L.CheckString(1)
	if _, ok := builtinModules[req]; ok {
		L.Push(s.module(req))
		return 1
	}
	if _, err := moduleName(req); err != nil {
		c.fail(L, ErrForbidden, "%s", strings.TrimSuffix(err.Error(), ": "+ErrForbidden.Error()))
	}
	sc, err := resolveModule(c.v.scripts, req)
	if err != nil {
		L.RaiseError("module %q not found: require resolves json, http, log, kv, config, time and .lua files of the scripts folder", req)
	}
	name := sc.name
	key := "script:" + name
	if c.loaded == nil {
		c.loaded = map[string]lua.LValue{}
	}
	if v, ok := c.loaded[key]; ok {
		L.Push(v)
		return 1
	}
	if c.loading == nil {
		c.loading = map[string]bool{}
	}
	if c.loading[name] {
		L.RaiseError("module %q requires itself (loop)", req)
	}
	c.loading[name] = true
	fn := L.NewFunctionFromProto(sc.proto)
	fn.Env = c.env
	L.Push(fn)
	L.Call(0, 1)
	v := L.Get(-1)
	L.Pop(1)
	delete(c.loading, name)
	if v == lua.LNil {
		v = lua.LTrue
	}
	c.loaded[key] = v
	L.Push(v)
	return 1
}

// print logs at info level.
func (s *vm) print(L *lua.LState) int {
	parts := make([]string, 0, L.GetTop())
	for i := 1; i <= L.GetTop(); i++ {
		parts = append(parts, L.ToStringMeta(L.Get(i)).String())
	}
	s.logAt("info", strings.Join(parts, "\t"), nil)
	return 0
}

// strRep is string.rep with a size cap.
func (s *vm) strRep(L *lua.LState) int {
	str := L.CheckString(1)
	n := L.CheckNumber(2)
	if n <= 0 || n != n || len(str) == 0 {
		L.Push(lua.LString(""))
		return 1
	}
	if float64(len(str))*float64(n) > float64(s.e.opts.MaxString) {
		s.cur.fail(L, ErrLimit, "string.rep: result of %.0f bytes exceeds the %d-byte string limit", float64(len(str))*float64(n), s.e.opts.MaxString)
	}
	L.Push(lua.LString(strings.Repeat(str, int(n))))
	return 1
}

// strFormat validates the format (Lua 5.1 rules: width and precision of at
// most two digits) before delegating.
func (s *vm) strFormat(orig *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		f := L.CheckString(1)
		max := s.e.opts.MaxString
		if len(f) > max {
			s.cur.fail(L, ErrLimit, "string.format: format too long")
		}
		// Bound the result before formatting: every conversion needs an
		// argument (as in Lua) and adds at most its width plus the size
		// of the argument's text.
		size := len(f)
		arg := 1
		for i := 0; i < len(f); i++ {
			if f[i] != '%' {
				continue
			}
			i++
			if i < len(f) && f[i] == '%' {
				continue
			}
			for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
				i++
			}
			digits := 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i++
				digits++
			}
			if i < len(f) && f[i] == '.' {
				i++
				pd := 0
				for i < len(f) && f[i] >= '0' && f[i] <= '9' {
					i++
					pd++
				}
				if pd > 2 {
					digits = 3
				}
			}
			if digits > 2 {
				s.cur.fail(L, ErrLimit, "string.format: width or precision above 99 in %q", truncate(f, 64))
			}
			if i >= len(f) || strings.IndexByte("cdiouxXeEfgGqs", f[i]) < 0 {
				L.ArgError(1, fmt.Sprintf("invalid conversion in format %q", truncate(f, 64)))
			}
			arg++
			if arg > L.GetTop() {
				L.ArgError(arg, "no value")
			}
			n := 420 // numbers: at most ~310 digits plus a precision of 99
			if f[i] == 's' || f[i] == 'q' {
				if str, ok := L.Get(arg).(lua.LString); ok {
					n = len(str)
					if f[i] == 'q' {
						n = 4*n + 2
					}
				}
			}
			size += n + 99
			if size > max {
				s.cur.fail(L, ErrLimit, "string.format: result could exceed the %d-byte string limit", max)
			}
		}
		return s.delegate(L, orig)
	}
}

// delegate calls a Go library function with the current arguments.
func (s *vm) delegate(L *lua.LState, fn *lua.LFunction) int {
	top := L.GetTop()
	L.Push(fn)
	for i := 1; i <= top; i++ {
		L.Push(L.Get(i))
	}
	L.Call(top, lua.MultRet)
	return L.GetTop() - top
}

// tableConcat is table.concat with a size cap and no registry use.
func (s *vm) tableConcat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, t.Len())
	max := s.e.opts.MaxString
	var b strings.Builder
	for k := i; k <= j; k++ {
		v := t.RawGetInt(k)
		switch v.(type) {
		case lua.LString, lua.LNumber:
		default:
			L.RaiseError("invalid value (%s) at index %d in table for concat", v.Type().String(), k)
		}
		str := v.String()
		if b.Len()+len(str)+len(sep) > max {
			s.cur.fail(L, ErrLimit, "table.concat: result exceeds the %d-byte string limit", max)
		}
		b.WriteString(str)
		if k != j {
			b.WriteString(sep)
		}
		if k&1023 == 0 && s.cur.ctx.Err() != nil {
			L.RaiseError("%v", s.cur.ctx.Err())
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// eventTable builds the hook's argument.
func (s *vm) eventTable(c *call) (lua.LValue, error) {
	ev := c.event
	L := s.L
	t := L.CreateTable(0, 7)
	t.RawSetString("id", lua.LString(ev.ID))
	t.RawSetString("type", lua.LString(ev.Type))
	t.RawSetString("subject", lua.LString(ev.Subject))
	t.RawSetString("attempt", lua.LNumber(c.attempt))
	if !ev.CreatedAt.IsZero() {
		t.RawSetString("created_at", lua.LString(ev.CreatedAt.UTC().Format(time.RFC3339Nano)))
	}
	if len(ev.Payload) > 0 {
		if len(ev.Payload) > s.e.opts.MaxString {
			return nil, fmt.Errorf("event payload of %d bytes exceeds %d: %w", len(ev.Payload), s.e.opts.MaxString, ErrLimit)
		}
		d, err := s.decodeJSON(ev.Payload, false)
		if err != nil {
			return nil, fmt.Errorf("event %s payload: %w", ev.ID, err)
		}
		t.RawSetString("data", d)
	} else {
		t.RawSetString("data", L.NewTable())
	}
	return t, nil
}

const maxDepth = 64

// toLua converts a Go value to Lua.
func (s *vm) toLua(v any, depth int) (lua.LValue, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("value nested deeper than %d", maxDepth)
	}
	L := s.L
	switch x := v.(type) {
	case nil:
		return lua.LNil, nil
	case lua.LValue:
		return x, nil
	case bool:
		return lua.LBool(x), nil
	case string:
		return lua.LString(x), nil
	case []byte:
		return lua.LString(x), nil
	case int:
		return lua.LNumber(x), nil
	case int32:
		return lua.LNumber(x), nil
	case int64:
		return lua.LNumber(x), nil
	case uint:
		return lua.LNumber(x), nil
	case uint32:
		return lua.LNumber(x), nil
	case uint64:
		return lua.LNumber(x), nil
	case float32:
		return lua.LNumber(x), nil
	case float64:
		return lua.LNumber(x), nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, err
		}
		return lua.LNumber(f), nil
	case time.Time:
		return lua.LString(x.UTC().Format(time.RFC3339Nano)), nil
	case time.Duration:
		return lua.LNumber(x.Seconds()), nil
	case json.RawMessage:
		return s.decodeJSON(x, false)
	case map[string]any:
		t := L.CreateTable(0, len(x))
		for k, e := range x {
			lv, err := s.toLua(e, depth+1)
			if err != nil {
				return nil, err
			}
			t.RawSetString(k, lv)
		}
		return t, nil
	case map[string]string:
		t := L.CreateTable(0, len(x))
		for k, e := range x {
			t.RawSetString(k, lua.LString(e))
		}
		return t, nil
	case []any:
		t := L.CreateTable(len(x), 0)
		for i, e := range x {
			lv, err := s.toLua(e, depth+1)
			if err != nil {
				return nil, err
			}
			t.RawSetInt(i+1, lv)
		}
		return t, nil
	case []string:
		t := L.CreateTable(len(x), 0)
		for i, e := range x {
			t.RawSetInt(i+1, lua.LString(e))
		}
		return t, nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("cannot convert %T to Lua: %w", v, err)
		}
		return s.decodeJSON(b, false)
	}
}

// fromLua converts a Lua value to Go: tables with keys 1..n become []any,
// other tables map[string]any; json.null becomes nil.
func (s *vm) fromLua(v lua.LValue, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("table nested deeper than %d (cycle?)", maxDepth)
	}
	switch x := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(x), nil
	case lua.LString:
		return string(x), nil
	case lua.LNumber:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("number %v cannot be represented", f)
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	case *lua.LUserData:
		if x == s.null {
			return nil, nil
		}
		return nil, fmt.Errorf("userdata cannot be converted")
	case *lua.LTable:
		n := x.Len()
		count := 0
		arrayOK := true
		x.ForEach(func(k, _ lua.LValue) {
			count++
			if kn, ok := k.(lua.LNumber); !ok || float64(kn) != math.Trunc(float64(kn)) || kn < 1 || int(kn) > n {
				arrayOK = false
			}
		})
		isArray := (arrayOK && count == n && n > 0) || (count == 0 && markedArray(x))
		if isArray {
			out := make([]any, n)
			for i := 1; i <= n; i++ {
				e, err := s.fromLua(x.RawGetInt(i), depth+1)
				if err != nil {
					return nil, err
				}
				out[i-1] = e
			}
			return out, nil
		}
		out := make(map[string]any, count)
		var ferr error
		x.ForEach(func(k, e lua.LValue) {
			if ferr != nil {
				return
			}
			var ks string
			switch kk := k.(type) {
			case lua.LString:
				ks = string(kk)
			case lua.LNumber:
				ks = kk.String()
			default:
				ferr = fmt.Errorf("table key of type %s cannot be converted", k.Type())
				return
			}
			ge, err := s.fromLua(e, depth+1)
			if err != nil {
				ferr = err
				return
			}
			out[ks] = ge
		})
		if ferr != nil {
			return nil, ferr
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%s cannot be converted", v.Type())
	}
}

// arrayMarker makes the metatable json.array sets: a fresh one per table,
// so a script changing it changes nothing shared.
func (s *vm) arrayMarker() *lua.LTable {
	mt := s.L.CreateTable(0, 1)
	mt.RawSetString("__jsontype", lua.LString("array"))
	return mt
}

// markedArray reports whether t was marked by json.array (or decoded from
// an empty JSON array).
func markedArray(t *lua.LTable) bool {
	mt, ok := t.Metatable.(*lua.LTable)
	return ok && mt.RawGetString("__jsontype") == lua.LString("array")
}

// sortedKeys returns the keys of a map, sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
