package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	lua "github.com/yuin/gopher-lua"
)

// Limits of the modules.
const (
	maxLogMessage  = 8 << 10
	maxLogsPerCall = 1000
	maxKVKey       = 256
	maxKVValue     = 64 << 10
)

func (s *vm) registerModules() {
	L := s.L
	reg := func(mod string, fns map[string]lua.LGFunction) {
		m := map[string]*lua.LFunction{}
		for n, f := range fns {
			m[n] = L.NewFunction(f)
		}
		s.mods[mod] = m
	}
	reg("json", map[string]lua.LGFunction{"encode": s.jsonEncode, "decode": s.jsonDecode, "array": s.jsonArray})
	reg("log", map[string]lua.LGFunction{
		"debug": s.logFn("debug"), "info": s.logFn("info"), "warn": s.logFn("warn"), "error": s.logFn("error"),
	})
	reg("kv", map[string]lua.LGFunction{"get": s.kvGet, "set": s.kvSet, "delete": s.kvDelete, "incr": s.kvIncr})
	reg("config", map[string]lua.LGFunction{"get": s.configGet})
	reg("time", map[string]lua.LGFunction{"now": s.timeNow, "unix": s.timeUnix, "format": s.timeFormat,
		"parse": s.timeParse, "sleep": s.timeSleep, "remaining": s.timeRemaining})
	reg("http", map[string]lua.LGFunction{"get": s.httpGet, "post": s.httpPost, "request": s.httpRequest,
		"escape": s.httpEscape, "query_escape": s.httpQueryEscape})
}

// ---------------------------------------------------------------- json

// decodeJSON decodes b into Lua; JSON null becomes json.null when keepNull,
// nil otherwise.
func (s *vm) decodeJSON(b []byte, keepNull bool) (lua.LValue, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("json: trailing data after the value")
	}
	return s.jsonToLua(v, keepNull, 0)
}

func (s *vm) jsonToLua(v any, keepNull bool, depth int) (lua.LValue, error) {
	if depth > 200 {
		return nil, fmt.Errorf("json: nested deeper than 200")
	}
	switch x := v.(type) {
	case nil:
		if keepNull {
			return s.null, nil
		}
		return lua.LNil, nil
	case map[string]any:
		t := s.L.CreateTable(0, len(x))
		for k, e := range x {
			lv, err := s.jsonToLua(e, keepNull, depth+1)
			if err != nil {
				return nil, err
			}
			t.RawSetString(k, lv)
		}
		return t, nil
	case []any:
		t := s.L.CreateTable(len(x), 0)
		if len(x) == 0 {
			t.Metatable = s.arrayMarker()
		}
		for i, e := range x {
			lv, err := s.jsonToLua(e, keepNull, depth+1)
			if err != nil {
				return nil, err
			}
			if lv == lua.LNil {
				continue // a hole; # may stop before it
			}
			t.RawSetInt(i+1, lv)
		}
		return t, nil
	}
	return s.toLua(v, depth)
}

// json.encode(value) -> string | raises
func (s *vm) jsonEncode(L *lua.LState) int {
	v, err := s.fromLua(L.CheckAny(1), 0)
	if err != nil {
		L.RaiseError("json.encode: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		L.RaiseError("json.encode: %v", err)
	}
	if len(b) > s.e.opts.MaxString {
		s.cur.fail(L, ErrLimit, "json.encode: result exceeds the %d-byte string limit", s.e.opts.MaxString)
	}
	L.Push(lua.LString(b))
	return 1
}

// json.decode(text [, keep_null]) -> value | nil, err
func (s *vm) jsonDecode(L *lua.LState) int {
	str := L.CheckString(1)
	keep := lua.LVAsBool(L.Get(2))
	if len(str) > s.e.opts.MaxString {
		s.cur.fail(L, ErrLimit, "json.decode: input exceeds the %d-byte string limit", s.e.opts.MaxString)
	}
	v, err := s.decodeJSON([]byte(str), keep)
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(v)
	return 1
}

// json.array([t]) marks t (or a new table) to encode as a JSON array even
// when empty.
func (s *vm) jsonArray(L *lua.LState) int {
	t, ok := L.Get(1).(*lua.LTable)
	if !ok {
		t = L.NewTable()
	}
	if t.Metatable == lua.LNil || t.Metatable == nil {
		t.Metatable = s.arrayMarker()
	}
	L.Push(t)
	return 1
}

// ---------------------------------------------------------------- log

var reservedFields = map[string]bool{"script": true, "hook": true, "event_id": true, "level": true, "message": true, "time": true, "component": true}

// secretKey reports whether a field name looks like a secret.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"password", "passwd", "secret", "token", "authorization", "api_key", "apikey", "cookie", "private"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// redactDeep replaces secret-looking keys inside nested fields (a config
// table logged whole, for instance).
func redactDeep(v any, depth int) any {
	if depth > 16 {
		return "[too deep]"
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if secretKey(k) {
				x[k] = "[redacted]"
			} else {
				x[k] = redactDeep(e, depth+1)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = redactDeep(e, depth+1)
		}
	}
	return v
}

func (s *vm) logFn(level string) lua.LGFunction {
	return func(L *lua.LState) int {
		msg := L.ToStringMeta(L.Get(1)).String()
		var fields map[string]any
		if t, ok := L.Get(2).(*lua.LTable); ok {
			fields = map[string]any{}
			t.ForEach(func(k, v lua.LValue) {
				ks, ok := k.(lua.LString)
				if !ok || len(fields) >= 64 {
					return
				}
				key := string(ks)
				if len(key) > 64 {
					key = key[:64]
				}
				if reservedFields[key] {
					key = "field_" + key
				}
				if secretKey(key) {
					fields[key] = "[redacted]"
					return
				}
				gv, err := s.fromLua(v, 0)
				if err != nil {
					gv = v.String()
				}
				gv = redactDeep(gv, 0)
				if str, ok := gv.(string); ok && len(str) > maxLogMessage {
					gv = str[:maxLogMessage] + "…"
				}
				fields[key] = gv
			})
		}
		s.logAt(level, msg, fields)
		return 0
	}
}

// logAt writes one script log line with script, hook and event_id.
func (s *vm) logAt(level, msg string, fields map[string]any) {
	c := s.cur
	if c == nil {
		return
	}
	c.logCount++
	if c.logCount > maxLogsPerCall {
		if c.logCount == maxLogsPerCall+1 {
			s.e.log.Warn().Str("script", c.script).Str("hook", c.function).Int("limit", maxLogsPerCall).Msg("hook log limit reached; further lines dropped")
		}
		return
	}
	if len(msg) > maxLogMessage {
		msg = msg[:maxLogMessage] + "…"
	}
	if c.trace != nil {
		c.trace.Logs = append(c.trace.Logs, LogEntry{Time: time.Now(), Level: level, Message: msg, Fields: fields})
	}
	if c.logger == nil {
		l := s.e.opts.Logger.With().Str("script", c.script).Str("hook", c.function).Logger()
		if c.eventID != "" {
			l = l.With().Str("event_id", c.eventID).Logger()
		}
		if c.dry {
			l = l.With().Bool("dry_run", true).Logger()
		}
		c.logger = &l
	}
	var ev *zerolog.Event
	switch level {
	case "debug":
		ev = c.logger.Debug()
	case "warn":
		ev = c.logger.Warn()
	case "error":
		ev = c.logger.Error()
	default:
		ev = c.logger.Info()
	}
	for _, k := range sortedKeys(fields) {
		ev = ev.Interface(k, fields[k])
	}
	ev.Msg(msg)
}

// ---------------------------------------------------------------- kv

func (s *vm) kvCheck(L *lua.LState) string {
	c := s.cur
	if s.e.opts.KV == nil && !c.dry {
		L.RaiseError("kv is not configured")
	}
	key := L.CheckString(1)
	if key == "" || len(key) > maxKVKey {
		s.cur.fail(L, ErrLimit, "kv: key must be 1 to %d bytes", maxKVKey)
	}
	return key
}

// kvRead reads the store, or nothing in a dry run without a store.
func (s *vm) kvRead(key string) (string, bool, error) {
	if s.e.opts.KV == nil {
		return "", false, nil
	}
	return s.e.opts.KV.KVGet(s.cur.ctx, s.ns(), key)
}

func (s *vm) ns() string { return "script:" + s.cur.script }

// kv.get(key) -> string | nil
func (s *vm) kvGet(L *lua.LState) int {
	key := s.kvCheck(L)
	c := s.cur
	if c.overlay != nil {
		if v, ok := c.overlay[key]; ok {
			if v == nil {
				L.Push(lua.LNil)
			} else {
				L.Push(lua.LString(*v))
			}
			return 1
		}
	}
	v, ok, err := s.kvRead(key)
	if err != nil {
		L.RaiseError("kv.get %q: %v", key, err)
	}
	if !ok {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LString(v))
	return 1
}

// kv.set(key, value [, ttl_seconds])
func (s *vm) kvSet(L *lua.LState) int {
	key := s.kvCheck(L)
	var val string
	switch v := L.Get(2).(type) {
	case lua.LString:
		val = string(v)
	case lua.LNumber, lua.LBool:
		val = v.String()
	default:
		L.ArgError(2, "kv.set value must be a string, number or boolean (use json.encode for tables)")
	}
	if len(val) > maxKVValue {
		s.cur.fail(L, ErrLimit, "kv.set: value of %d bytes exceeds %d", len(val), maxKVValue)
	}
	ttlS := float64(L.OptNumber(3, 0))
	if ttlS < 0 || math.IsNaN(ttlS) || ttlS > 10*365*24*3600 {
		L.ArgError(3, "ttl must be between 0 and 10 years, in seconds")
	}
	ttl := time.Duration(ttlS * float64(time.Second))
	c := s.cur
	if c.dry {
		s.overlay()[key] = &val
		c.trace.KVWrites = append(c.trace.KVWrites, KVWrite{Op: "set", Key: key, Value: val, TTL: ttl})
		return 0
	}
	if err := s.e.opts.KV.KVSet(c.ctx, s.ns(), key, val, ttl); err != nil {
		L.RaiseError("kv.set %q: %v", key, err)
	}
	return 0
}

func (s *vm) overlay() map[string]*string {
	if s.cur.overlay == nil {
		s.cur.overlay = map[string]*string{}
	}
	return s.cur.overlay
}

// kv.delete(key)
func (s *vm) kvDelete(L *lua.LState) int {
	key := s.kvCheck(L)
	c := s.cur
	if c.dry {
		s.overlay()[key] = nil
		c.trace.KVWrites = append(c.trace.KVWrites, KVWrite{Op: "delete", Key: key})
		return 0
	}
	if err := s.e.opts.KV.KVDelete(c.ctx, s.ns(), key); err != nil {
		L.RaiseError("kv.delete %q: %v", key, err)
	}
	return 0
}

// kv.incr(key [, delta]) -> new value
func (s *vm) kvIncr(L *lua.LState) int {
	key := s.kvCheck(L)
	d := L.OptNumber(2, 1)
	if float64(d) != math.Trunc(float64(d)) || math.Abs(float64(d)) > 1<<53 {
		L.ArgError(2, "delta must be an integer")
	}
	c := s.cur
	if c.dry {
		var cur int64
		if v, ok := c.overlay[key]; ok {
			if v != nil {
				n, err := strconv.ParseInt(*v, 10, 64)
				if err != nil {
					L.RaiseError("kv.incr %q: value is not an integer", key)
				}
				cur = n
			}
		} else {
			v, ok, err := s.kvRead(key)
			if err != nil {
				L.RaiseError("kv.incr %q: %v", key, err)
			}
			if ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					L.RaiseError("kv.incr %q: value is not an integer", key)
				}
				cur = n
			}
		}
		cur += int64(d)
		str := strconv.FormatInt(cur, 10)
		s.overlay()[key] = &str
		c.trace.KVWrites = append(c.trace.KVWrites, KVWrite{Op: "incr", Key: key, Value: str})
		L.Push(lua.LNumber(cur))
		return 1
	}
	n, err := s.e.opts.KV.KVIncr(c.ctx, s.ns(), key, int64(d))
	if err != nil {
		L.RaiseError("kv.incr %q: %v", key, err)
	}
	L.Push(lua.LNumber(n))
	return 1
}

// ---------------------------------------------------------------- config

// config.get("a.b.c" [, default]) -> value (a fresh copy) | default | nil
func (s *vm) configGet(L *lua.LState) int {
	key := L.CheckString(1)
	def := L.Get(2)
	cfg := *s.e.config.Load()
	var cur any = cfg
	for _, part := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			cur = nil
			break
		}
		cur, ok = m[part]
		if !ok {
			cur = nil
			break
		}
	}
	if cur == nil {
		L.Push(def)
		return 1
	}
	v, err := s.toLua(cur, 0)
	if err != nil {
		L.RaiseError("config.get %q: %v", key, err)
	}
	L.Push(v)
	return 1
}

// ---------------------------------------------------------------- time

// time.now() -> seconds since the epoch, with fraction
func (s *vm) timeNow(L *lua.LState) int {
	L.Push(lua.LNumber(float64(time.Now().UnixNano()) / 1e9))
	return 1
}

// time.unix() -> whole seconds since the epoch
func (s *vm) timeUnix(L *lua.LState) int {
	L.Push(lua.LNumber(time.Now().Unix()))
	return 1
}

var layouts = map[string]string{
	"rfc3339": time.RFC3339, "rfc3339nano": time.RFC3339Nano, "date": "2006-01-02",
	"datetime": "2006-01-02 15:04:05", "rfc1123": time.RFC1123Z,
}

func layoutOf(L *lua.LState, n int) string {
	name := L.OptString(n, "rfc3339")
	if l, ok := layouts[name]; ok {
		return l
	}
	if len(name) > 64 {
		L.ArgError(n, "layout too long")
	}
	return name
}

// time.format([seconds [, layout [, zone]]]) -> string (UTC unless zone)
func (s *vm) timeFormat(L *lua.LState) int {
	t := time.Now()
	if L.Get(1) != lua.LNil {
		sec := float64(L.CheckNumber(1))
		if math.IsNaN(sec) || math.Abs(sec) > 1e11 {
			L.ArgError(1, "time out of range")
		}
		t = time.Unix(0, int64(sec*1e9))
	}
	layout := layoutOf(L, 2)
	loc := time.UTC
	if z := L.OptString(3, ""); z != "" {
		l, err := time.LoadLocation(z)
		if err != nil {
			L.ArgError(3, "unknown time zone")
		}
		loc = l
	}
	L.Push(lua.LString(t.In(loc).Format(layout)))
	return 1
}

// time.parse(text [, layout]) -> seconds | nil, err
func (s *vm) timeParse(L *lua.LState) int {
	str := L.CheckString(1)
	if len(str) > 256 {
		L.Push(lua.LNil)
		L.Push(lua.LString("time.parse: text too long"))
		return 2
	}
	t, err := time.Parse(layoutOf(L, 2), str)
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(lua.LNumber(float64(t.UnixNano()) / 1e9))
	return 1
}

// time.sleep(seconds): sleeps at most until the call's deadline.
func (s *vm) timeSleep(L *lua.LState) int {
	sec := float64(L.CheckNumber(1))
	if sec <= 0 || math.IsNaN(sec) {
		return 0
	}
	d := time.Duration(math.Min(sec, 1e6) * float64(time.Second))
	ctx := s.cur.ctx
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		// Sleeping past the deadline: wait for it and fail now.
		<-ctx.Done()
		L.RaiseError("time.sleep(%g): %v", sec, ctx.Err())
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		L.RaiseError("time.sleep: %v", ctx.Err())
	}
	return 0
}

// time.remaining() -> seconds left before the call's deadline
func (s *vm) timeRemaining(L *lua.LState) int {
	if dl, ok := s.cur.ctx.Deadline(); ok {
		L.Push(lua.LNumber(math.Max(0, time.Until(dl).Seconds())))
		return 1
	}
	L.Push(lua.LNumber(math.Inf(1)))
	return 1
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
