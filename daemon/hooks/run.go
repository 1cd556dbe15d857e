package hooks

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/zerolog"
	lua "github.com/yuin/gopher-lua"

	"github.com/acquit/acquit/daemon/store"
)

// call is the state of one hook call.
type call struct {
	script   string
	function string
	eventID  string
	event    *store.Event
	attempt  int
	arg      any
	hasArg   bool
	trace    *Trace
	dry      bool
	offline  bool

	ctx       context.Context
	v         *version
	env       *lua.LTable
	loaded    map[string]lua.LValue
	loading   map[string]bool
	violation error // last sandbox error raised by a Go function
	logger    *zerolog.Logger
	logCount  int
	overlay   map[string]*string // dry-run kv overlay (nil value: deleted)
}

// fail records a sandbox violation and raises it as a Lua error.
func (c *call) fail(L *lua.LState, kind error, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.violation = fmt.Errorf("%s: %w", msg, kind)
	L.RaiseError("%s (%s)", msg, kind.Error())
}

// run executes c on version v and returns the first return value converted
// to Go.
func (e *Engine) run(parent context.Context, v *version, c *call) (ret any, err error) {
	sc, ok := v.scripts[c.script]
	if !ok {
		return nil, &HookError{Script: c.script, Function: c.function, EventID: c.eventID, Kind: ErrNoScript,
			Message: fmt.Sprintf("script %q is not loaded", c.script)}
	}
	start := time.Now()
	defer func() {
		e.m.observe(c.script, c.function, time.Since(start), err)
		if err != nil {
			ev := e.log.Warn()
			if c.eventID != "" {
				ev = ev.Str("event_id", c.eventID)
			}
			ev.Err(err).Str("script", c.script).Str("hook", c.function).Msg("hook failed")
		}
	}()
	// Waiting for a free state is bounded by the caller only; Timeout
	// bounds the execution.
	s, err := e.get(parent, v)
	if err != nil {
		return nil, &HookError{Script: c.script, Function: c.function, EventID: c.eventID, Kind: kindOf(parent, ErrTimeout), Message: err.Error()}
	}
	cctx, cancelCause := context.WithCancelCause(parent)
	defer cancelCause(nil)
	ctx, cancel := context.WithTimeoutCause(cctx, e.opts.Timeout, ErrTimeout)
	defer cancel()
	if e.wd != nil {
		w := e.wd.add(cancelCause)
		defer e.wd.remove(w)
	}
	c.ctx, c.v = ctx, v
	broken := true
	defer func() {
		if r := recover(); r != nil {
			err = &HookError{Script: c.script, Function: c.function, EventID: c.eventID, Kind: ErrHookFailed,
				Message: fmt.Sprintf("lua engine panic: %v", r)}
		}
		s.cur = nil
		s.L.RemoveContext()
		s.L.SetTop(0)
		v.put(s, broken || ctx.Err() != nil)
		if errors.Is(err, ErrMemoryLimit) {
			// Give the hog's memory back now: otherwise the GC pacer,
			// tuned on the hog's live heap, lets garbage pile up.
			debug.FreeOSMemory()
		}
	}()
	L := s.L
	s.cur = c
	L.SetContext(ctx)
	c.env = s.newEnv()
	chunk := L.NewFunctionFromProto(sc.proto)
	chunk.Env = c.env
	L.Push(chunk)
	if perr := L.PCall(0, 0, nil); perr != nil {
		broken = false
		return nil, e.hookError(ctx, c, sc, perr)
	}
	fnv := c.env.RawGetString(c.function)
	fn, ok := fnv.(*lua.LFunction)
	if !ok {
		broken = false
		return nil, &HookError{Script: c.script, Function: c.function, EventID: c.eventID, File: sc.file, Kind: ErrNoFunction,
			Message: fmt.Sprintf("%s defines no global function %q", sc.file, c.function)}
	}
	var arg lua.LValue = lua.LNil
	if c.event != nil {
		arg, err = s.eventTable(c)
	} else if c.hasArg {
		arg, err = s.toLua(c.arg, 0)
	}
	if err != nil {
		broken = false
		return nil, &HookError{Script: c.script, Function: c.function, EventID: c.eventID, Kind: ErrLimit, Message: "argument: " + err.Error()}
	}
	L.Push(fn)
	L.Push(arg)
	if perr := L.PCall(1, 2, nil); perr != nil {
		broken = false
		return nil, e.hookError(ctx, c, sc, perr)
	}
	r1, r2 := L.Get(-2), L.Get(-1)
	L.Pop(2)
	broken = false
	if lua.LVIsFalse(r1) && r2 != lua.LNil {
		msg := lua.LVAsString(r2)
		if msg == "" {
			msg = r2.String()
		}
		return nil, &HookError{Script: c.script, Function: c.function, EventID: c.eventID, File: sc.file,
			Line: fn.Proto.LineDefined, Kind: ErrHookFailed, Message: msg}
	}
	out, cerr := s.fromLua(r1, 0)
	if cerr != nil {
		out = r1.String()
	}
	return out, nil
}

// kindOf tells a timeout from a memory stop from a cancelled caller.
func kindOf(ctx context.Context, def error) error {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, ErrMemoryLimit):
		return ErrMemoryLimit
	case errors.Is(cause, ErrTimeout), errors.Is(cause, context.DeadlineExceeded):
		return ErrTimeout
	case cause != nil:
		return cause
	}
	return def
}

// hookError turns a Lua error into a *HookError with file:line.
func (e *Engine) hookError(ctx context.Context, c *call, sc *script, perr error) error {
	he := &HookError{Script: c.script, Function: c.function, EventID: c.eventID, Kind: ErrHookFailed}
	msg := perr.Error()
	trace := ""
	var ae *lua.ApiError
	if errors.As(perr, &ae) {
		if ae.Object != nil {
			if s, ok := ae.Object.(lua.LString); ok {
				msg = string(s)
			} else if t, ok := ae.Object.(*lua.LTable); ok {
				if m := t.RawGetString("message"); m != lua.LNil {
					msg = m.String()
				} else {
					msg = "error object: " + t.String()
				}
			} else {
				msg = ae.Object.String()
			}
		}
		trace = ae.StackTrace
	}
	he.Message = strings.TrimSpace(msg)
	he.File, he.Line = position(he.Message)
	if he.File == "" {
		he.File, he.Line = position(trace)
	}
	if he.File == "" {
		he.File = sc.file
	}
	if ctx.Err() != nil {
		he.Kind = kindOf(ctx, ErrTimeout)
		if he.Kind == ErrMemoryLimit {
			he.Message = strings.Replace(he.Message, "context canceled", "memory limit exceeded", 1)
		} else if he.Kind == ErrTimeout {
			he.Message = strings.Replace(he.Message, "context deadline exceeded", "timed out", 1)
		}
		return he
	}
	if c.violation != nil {
		var k error
		for _, s := range []error{ErrLimit, ErrForbidden} {
			if errors.Is(c.violation, s) {
				k = s
			}
		}
		if k != nil && strings.Contains(he.Message, "("+k.Error()+")") {
			he.Kind = k
		}
	}
	if strings.Contains(he.Message, "stack overflow") || strings.Contains(he.Message, "registry overflow") {
		he.Kind = ErrLimit
	}
	return he
}
