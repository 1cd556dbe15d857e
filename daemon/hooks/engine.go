// Package hooks runs acquit's business rules: Lua scripts (gopher-lua) bound
// to outbox events and schedule jobs, in a sandbox.
//
// Scripts are compiled once per version of the folder; a pool of Lua states
// serves calls; Reload swaps the whole folder atomically (calls in flight
// finish on the old version). Each call gets fresh globals, a deadline and
// a heap budget. See docs/lua.md for the API offered to hook authors.
//
// Use from the daemon:
//
//	eng, err := hooks.New(hooks.Options{Dir: dir, Bindings: bs, KV: st, Config: values,
//		Logger: log, Registerer: reg})
//	err = eng.Deliver(ctx, ev, ev.Attempts)          // outbox handler (claimed: 1 on first delivery)
//	tr, err := eng.Call(ctx, "reports", "daily", params) // schedule job
//	err = eng.Reload(dir, bs); eng.SetConfig(values)   // SIGHUP
//	diags := hooks.Check(dir)                          // acquit scripts check
//	ev, err := hooks.EventFromFile("payment.accepted", raw)
//	traces, err := eng.DryRun(ctx, ev, hooks.DryRunOptions{Offline: true})
package hooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	lua "github.com/yuin/gopher-lua"

	"github.com/acquit/acquit/daemon/store"
)

// Defaults of Options.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultPoolSize         = 4
	DefaultMemoryBudget     = 256 << 20
	DefaultMaxString        = 16 << 20
	DefaultMaxHTTPResponse  = 4 << 20
	DefaultHTTPTimeout      = 15 * time.Second
	defaultWatchdogInterval = 10 * time.Millisecond
)

// Binding ties event types to one function of one script.
type Binding struct {
	// Events are globs (path.Match syntax) over event types, e.g.
	// "payment.*", "transmission.rejected", "*".
	Events []string
	// Script is the file, relative to the folder, with or without ".lua"
	// ("shop", "lib/erp.lua").
	Script string
	// Function is a global function the script defines at top level.
	Function string
}

// Matches reports whether the binding applies to an event type.
func (b Binding) Matches(eventType string) bool {
	for _, g := range b.Events {
		if ok, _ := path.Match(g, eventType); ok {
			return true
		}
	}
	return false
}

// Options configure an Engine.
type Options struct {
	// Dir is the scripts folder.
	Dir string
	// Bindings say which function runs for which event types.
	Bindings []Binding
	// KV backs the kv module (namespaced per script); nil disables kv.
	KV store.KV
	// Config is what config.get reads (the config file's "lua" values,
	// for instance); it is never modified.
	Config map[string]any
	// Logger receives the scripts' log calls and the engine's own logs.
	Logger zerolog.Logger
	// Timeout bounds the execution of each call (default 30 s); a
	// shorter deadline of the caller's context wins. Waiting for a free
	// Lua state (PoolSize) is bounded by the caller's context only.
	Timeout time.Duration
	// PoolSize is the number of Lua states per version (default 4).
	PoolSize int
	// MemoryBudget is how much the heap may grow while a call runs before
	// the call is stopped (default 256 MiB; negative disables).
	MemoryBudget int64
	// HTTPClient is used by the http module (default: TLS verified, 15 s
	// timeout). Tests and dry runs inject their own transport here.
	HTTPClient *http.Client
	// HTTPAllow lists the loopback and private ranges (127.0.0.0/8, 10/8,
	// 172.16/12, 192.168/16, 100.64/10, ::1, fc00::/7) the http module may
	// connect to; by default none. Public addresses are always allowed;
	// link-local ones (cloud metadata) and AdminAddr never. Checked at
	// dial time, after DNS resolution and on every redirect. Ignored when
	// HTTPClient is set.
	HTTPAllow []netip.Prefix
	// AdminAddr is the daemon's admin listener (host:port), which the http
	// module never connects to.
	AdminAddr string
	// Registerer receives the hook metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// MaxString caps strings built by string.rep, table.concat, gsub,
	// json.encode, http bodies (default 16 MiB).
	MaxString int
	// MaxHTTPResponse caps a response body read by the http module
	// (default 4 MiB).
	MaxHTTPResponse int64
	// CallStackSize bounds the Lua call depth (default 200 frames).
	CallStackSize int
	// RegistryMaxSize bounds each Lua state's value stack (default 256 Ki
	// slots).
	RegistryMaxSize int
}

// Engine runs Lua hooks. It is safe for concurrent use.
type Engine struct {
	opts    Options
	log     zerolog.Logger
	cur     atomic.Pointer[version]
	config  atomic.Pointer[map[string]any]
	mu      sync.Mutex // serialises Reload
	wd      *watchdog
	m       *hookMetrics
	http    *http.Client
	closed  atomic.Bool
	nextVer atomic.Int64
}

// version is one compiled scripts folder with its pool of states.
type version struct {
	id       int64
	dir      string
	scripts  map[string]*script
	bindings []Binding
	pool     chan *vm
	made     atomic.Int32
	size     int32
	retired  atomic.Bool
	done     chan struct{} // closed when retired
	once     sync.Once
}

// New compiles opts.Dir and checks opts.Bindings. It fails with a
// *LoadError listing every problem.
func New(opts Options) (*Engine, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = DefaultPoolSize
	}
	if opts.MemoryBudget == 0 {
		opts.MemoryBudget = DefaultMemoryBudget
	}
	if opts.MaxString <= 0 {
		opts.MaxString = DefaultMaxString
	}
	if opts.MaxHTTPResponse <= 0 {
		opts.MaxHTTPResponse = DefaultMaxHTTPResponse
	}
	if opts.CallStackSize <= 0 {
		opts.CallStackSize = 200
	}
	if opts.RegistryMaxSize <= 0 {
		opts.RegistryMaxSize = 256 * 1024
	}
	limitArrays.Do(func() {
		// gopher-lua fills the array part of a table up to any integer key
		// below MaxArrayIndex (2^26 by default) one slot at a time:
		// `t[2^26-1] = 1` is 16 s of uninterruptible CPU and 1 GiB. Keys
		// from 2^20 go to the hash part instead (process-wide setting).
		if lua.MaxArrayIndex > maxArrayIndex {
			lua.MaxArrayIndex = maxArrayIndex
		}
	})
	e := &Engine{opts: opts, log: opts.Logger.With().Str("component", "hooks").Logger()}
	cfg := opts.Config
	e.config.Store(&cfg)
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("hooks metrics: %w", err)
	}
	e.m = m
	e.http = opts.HTTPClient
	if e.http == nil {
		e.http = defaultHTTPClient(&dialGuard{allow: opts.HTTPAllow, admin: adminAddrPorts(opts.AdminAddr), refused: m.refused})
	}
	if opts.MemoryBudget > 0 {
		e.wd = newWatchdog(uint64(opts.MemoryBudget), defaultWatchdogInterval)
	}
	v, err := e.build(opts.Dir, opts.Bindings)
	if err != nil {
		return nil, err
	}
	e.cur.Store(v)
	return e, nil
}

// build compiles dir and validates bindings into a new version.
func (e *Engine) build(dir string, bindings []Binding) (*version, error) {
	scripts, diags := loadDir(dir)
	bs, bdiags := checkBindings(scripts, bindings)
	diags = append(diags, bdiags...)
	if len(diags) > 0 {
		return nil, &LoadError{Dir: dir, Diagnostics: diags}
	}
	return &version{
		id: e.nextVer.Add(1), dir: dir, scripts: scripts, bindings: bs,
		pool: make(chan *vm, e.opts.PoolSize), size: int32(e.opts.PoolSize), done: make(chan struct{}),
	}, nil
}

// checkBindings validates bindings against compiled scripts and returns
// them normalised.
func checkBindings(scripts map[string]*script, bindings []Binding) ([]Binding, []Diagnostic) {
	var bs []Binding
	var diags []Diagnostic
	for i, b := range bindings {
		where := fmt.Sprintf("binding %d", i+1)
		name := scriptName(b.Script)
		sc, ok := scripts[name]
		switch {
		case !ok:
			diags = append(diags, Diagnostic{File: name + ".lua", Message: fmt.Sprintf("%s: script %q not found or not loadable", where, b.Script)})
			continue
		case b.Function == "":
			diags = append(diags, Diagnostic{File: sc.file, Message: where + ": no function given"})
			continue
		case len(b.Events) == 0:
			diags = append(diags, Diagnostic{File: sc.file, Message: where + ": no events given"})
			continue
		}
		if _, ok := sc.funcs[b.Function]; !ok {
			diags = append(diags, Diagnostic{File: sc.file, Message: fmt.Sprintf("%s: function %q is not defined at the top level of %s", where, b.Function, sc.file)})
			continue
		}
		bad := false
		for _, g := range b.Events {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				diags = append(diags, Diagnostic{File: sc.file, Message: fmt.Sprintf("%s: bad event glob %q", where, g)})
				bad = true
			}
		}
		if bad {
			continue
		}
		bs = append(bs, Binding{Events: append([]string(nil), b.Events...), Script: name, Function: b.Function})
	}
	return bs, diags
}

// CheckBindings is Check plus the validation New and Reload apply to
// bindings (script exists, function defined at top level, valid globs):
// for `acquit config check`.
func CheckBindings(dir string, bindings []Binding) []Diagnostic {
	scripts, diags := loadDir(dir)
	_, bd := checkBindings(scripts, bindings)
	return append(diags, bd...)
}

// Reload compiles dir and swaps it in with bindings. Calls in flight finish
// on the old version. On failure the old version stays and the error (a
// *LoadError) lists every problem.
func (e *Engine) Reload(dir string, bindings []Binding) error {
	if e.closed.Load() {
		return ErrClosed
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.build(dir, bindings)
	if err != nil {
		e.m.reloads.WithLabelValues("error").Inc()
		e.log.Warn().Err(err).Str("dir", dir).Msg("hooks reload failed; previous scripts stay in force")
		return err
	}
	old := e.cur.Swap(v)
	if old != nil {
		old.retire()
	}
	e.m.reloads.WithLabelValues("ok").Inc()
	e.log.Info().Str("dir", dir).Int("scripts", len(v.scripts)).Int("bindings", len(v.bindings)).Int64("version", v.id).Msg("hooks loaded")
	return nil
}

// SetConfig replaces what config.get reads, for calls starting after it.
func (e *Engine) SetConfig(cfg map[string]any) { e.config.Store(&cfg) }

// Bindings returns the bindings in force (script names normalised).
func (e *Engine) Bindings() []Binding {
	v := e.cur.Load()
	return append([]Binding(nil), v.bindings...)
}

// Scripts lists the loaded script names ("shop", "lib/util").
func (e *Engine) Scripts() []string {
	v := e.cur.Load()
	out := make([]string, 0, len(v.scripts))
	for n := range v.scripts {
		out = append(out, n)
	}
	return out
}

// Close releases the Lua states. Calls in flight finish; later calls fail
// with ErrClosed.
func (e *Engine) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	if v := e.cur.Load(); v != nil {
		v.retire()
	}
	return nil
}

// retire closes idle states; busy ones are closed when returned.
func (v *version) retire() {
	v.retired.Store(true)
	v.once.Do(func() { close(v.done) })
	v.drain()
}

func (v *version) drain() {
	for {
		select {
		case s := <-v.pool:
			s.L.Close()
		default:
			return
		}
	}
}

// get takes a state from the pool, making one if the pool is not full.
func (e *Engine) get(ctx context.Context, v *version) (*vm, error) {
	select {
	case s := <-v.pool:
		return s, nil
	default:
	}
	for {
		n := v.made.Load()
		if n >= v.size {
			break
		}
		if v.made.CompareAndSwap(n, n+1) {
			return e.newVM(), nil
		}
	}
	select {
	case s := <-v.pool:
		return s, nil
	case <-v.done:
		// Retired while waiting: serve this call with a throwaway state
		// (closed by put) rather than make it wait for the new version.
		return e.newVM(), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free Lua state: %w", ctx.Err())
	}
}

// put returns a state; broken ones are dropped (and may be replaced).
func (v *version) put(s *vm, broken bool) {
	if broken || v.retired.Load() {
		s.L.Close()
		if broken {
			v.made.Add(-1)
		}
		return
	}
	select {
	case v.pool <- s:
	default:
		s.L.Close()
		v.made.Add(-1)
	}
	if v.retired.Load() {
		v.drain()
	}
}

// Deliver runs every binding whose globs match ev.Type, in binding order,
// with the event as argument. An event without binding returns nil. The
// error joins the *HookError of every failed binding; the outbox retries the
// whole event, so hooks must be idempotent (use event.id).
func (e *Engine) Deliver(ctx context.Context, ev store.Event, attempt int) error {
	if e.closed.Load() {
		return ErrClosed
	}
	v := e.cur.Load()
	var errs []error
	for _, b := range v.bindings {
		if !b.Matches(ev.Type) {
			continue
		}
		c := &call{script: b.Script, function: b.Function, eventID: ev.ID, event: &ev, attempt: attempt}
		if _, err := e.run(ctx, v, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Call runs one function of one script with arg (converted to Lua: maps,
// slices, strings, numbers, booleans, nil, or anything JSON-encodable) and
// returns a Trace of what it did. It is what schedule jobs of type "lua"
// use. The error, if any, is also in Trace.Err.
func (e *Engine) Call(ctx context.Context, scriptName_, function string, arg any) (Trace, error) {
	if e.closed.Load() {
		return Trace{}, ErrClosed
	}
	v := e.cur.Load()
	name := scriptName(scriptName_)
	tr := &Trace{Script: name, Function: function}
	c := &call{script: name, function: function, arg: arg, hasArg: true, trace: tr}
	start := time.Now()
	ret, err := e.run(ctx, v, c)
	tr.Duration = time.Since(start)
	tr.Return, tr.Err = ret, err
	return *tr, err
}

// DryRunOptions tune DryRun.
type DryRunOptions struct {
	// Offline answers every http call with a synthetic 200 and an empty
	// body instead of sending it; the call is still recorded.
	Offline bool
	// Attempt is the attempt number shown to the hook (default 1).
	Attempt int
}

// DryRun runs every binding matching ev.Type like Deliver, but kv writes go
// to a scratch overlay (the store is not changed) and, if opts.Offline,
// http calls are not sent. It returns one Trace per binding run; a failed
// hook is reported in its Trace.Err, not as the error. ErrNoBinding when no
// binding matches.
func (e *Engine) DryRun(ctx context.Context, ev store.Event, opts DryRunOptions) ([]Trace, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	if opts.Attempt <= 0 {
		opts.Attempt = 1
	}
	v := e.cur.Load()
	var out []Trace
	for _, b := range v.bindings {
		if !b.Matches(ev.Type) {
			continue
		}
		tr := &Trace{Script: b.Script, Function: b.Function}
		c := &call{script: b.Script, function: b.Function, eventID: ev.ID, event: &ev, attempt: opts.Attempt,
			trace: tr, dry: true, offline: opts.Offline}
		start := time.Now()
		ret, err := e.run(ctx, v, c)
		tr.Duration = time.Since(start)
		tr.Return, tr.Err = ret, err
		out = append(out, *tr)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dry run %s: %w", ev.Type, ErrNoBinding)
	}
	return out, nil
}

// Trace is what one call did, for `acquit hooks run` and schedule job
// summaries.
type Trace struct {
	Script    string     // script name
	Function  string     // function called
	Logs      []LogEntry // log and print calls, in order
	HTTPCalls []HTTPCall // every http module request, in order
	KVWrites  []KVWrite  // kv changes of a dry run (not applied)
	// Return is the function's first return value converted to Go
	// (map[string]any, []any, string, float64, bool, nil).
	Return   any
	Err      error         // the call's error (a *HookError), nil on success
	Duration time.Duration // wall time of the call
}

// LogEntry is one log call of a script.
type LogEntry struct {
	Time    time.Time
	Level   string         // debug, info, warn, error
	Message string         // truncated to 8 KiB
	Fields  map[string]any // the fields table, secrets redacted
}

// HTTPCall is one request made by the http module.
type HTTPCall struct {
	Method   string
	URL      string            // secret-looking query values redacted
	Headers  map[string]string // request headers, secrets redacted
	BodySize int               // request body bytes
	Status   int               // response status, 0 if none
	Duration time.Duration
	Error    string // transport error, "" if a response came
	Sent     bool   // false in an offline dry run
}

// KVWrite is one kv change made during a dry run (not applied).
type KVWrite struct {
	Op    string        // "set", "delete", "incr"
	Key   string        // key within the script's namespace
	Value string        // value set, or the new value of incr
	TTL   time.Duration // ttl of a set, 0 = forever
}

// maxArrayIndex bounds the array part of Lua tables (see New).
const maxArrayIndex = 1 << 20

var limitArrays sync.Once
