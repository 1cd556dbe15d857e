package hooks

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Sentinel errors. Every error returned by Deliver, Call and DryRun for a
// failed hook is a *HookError whose Kind is one of these, so callers can
// test with errors.Is.
var (
	// ErrHookFailed: the hook raised an error or returned nil/false plus a
	// message.
	ErrHookFailed = errors.New("hook failed")
	// ErrTimeout: the call ran past its deadline (Options.Timeout or the
	// caller's context).
	ErrTimeout = errors.New("hook timed out")
	// ErrMemoryLimit: the heap grew by more than Options.MemoryBudget while
	// the call ran.
	ErrMemoryLimit = errors.New("memory limit exceeded")
	// ErrLimit: a size limit of the sandbox was hit (string.rep, table.concat,
	// string.format width, http body, kv value...).
	ErrLimit = errors.New("sandbox limit exceeded")
	// ErrForbidden: the script used something the sandbox does not offer
	// (io, os, dofile, load, require of a path outside the folder...).
	ErrForbidden = errors.New("forbidden by the sandbox")
	// ErrNoScript: no script of that name in the loaded folder.
	ErrNoScript = errors.New("no such script")
	// ErrNoFunction: the script does not define that global function.
	ErrNoFunction = errors.New("no such function")
	// ErrNoBinding: DryRun found no binding for the event type.
	ErrNoBinding = errors.New("no hook bound to this event type")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("hook engine closed")
	// ErrLoad: the scripts folder could not be loaded (see the wrapped
	// diagnostics).
	ErrLoad = errors.New("scripts folder invalid")
)

// HookError is a failed hook call. File and Line come from Lua's own
// position information ("shop.lua:12: ...") when available.
type HookError struct {
	Script   string // script name, e.g. "shop"
	Function string // the hook function
	EventID  string // the event delivered, "" for Call
	File     string // file of the error position, e.g. "lib/erp.lua"
	Line     int    // line of the error position, 0 if unknown
	Message  string // the Lua error message, position included
	Kind     error  // one of the sentinel errors above
}

// Error renders "hook shop.on_paid (event 01H...): shop.lua:12: message".
func (e *HookError) Error() string {
	var b strings.Builder
	b.WriteString("hook ")
	b.WriteString(e.Script)
	if e.Function != "" {
		b.WriteString(".")
		b.WriteString(e.Function)
	}
	if e.EventID != "" {
		b.WriteString(" (event ")
		b.WriteString(e.EventID)
		b.WriteString(")")
	}
	b.WriteString(": ")
	msg := e.Message
	if msg == "" && e.Kind != nil {
		msg = e.Kind.Error()
	}
	if e.File != "" && !strings.HasPrefix(msg, e.File+":") {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	b.WriteString(msg)
	if e.Kind != nil && e.Kind != ErrHookFailed && !strings.Contains(msg, e.Kind.Error()) {
		b.WriteString(" (" + e.Kind.Error() + ")")
	}
	return b.String()
}

// Unwrap returns the Kind.
func (e *HookError) Unwrap() error { return e.Kind }

// Diagnostic is one problem found in a scripts folder.
type Diagnostic struct {
	File    string // path relative to the folder, "/" separated
	Line    int    // 0 when the problem is about the whole file
	Message string
}

// String renders "file:line: message".
func (d Diagnostic) String() string {
	if d.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", d.File, d.Line, d.Message)
	}
	return fmt.Sprintf("%s: %s", d.File, d.Message)
}

// LoadError is returned by New and Reload when the folder or the bindings
// are invalid; the previous version (if any) stays in force.
type LoadError struct {
	Dir         string       // the folder that failed to load
	Diagnostics []Diagnostic // every problem found
}

// Error lists every diagnostic.
func (e *LoadError) Error() string {
	parts := make([]string, 0, len(e.Diagnostics))
	for _, d := range e.Diagnostics {
		parts = append(parts, d.String())
	}
	return fmt.Sprintf("load scripts %s: %s", e.Dir, strings.Join(parts, "; "))
}

// Unwrap returns ErrLoad.
func (e *LoadError) Unwrap() error { return ErrLoad }

var posRe = regexp.MustCompile(`([A-Za-z0-9_./\-]+\.lua):(\d+):`)

// position extracts the first "file.lua:N:" of a message or trace.
func position(s string) (string, int) {
	m := posRe.FindStringSubmatch(s)
	if m == nil {
		return "", 0
	}
	n, _ := strconv.Atoi(m[2])
	return m[1], n
}
