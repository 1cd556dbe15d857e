// Package schedule runs acquit's cron jobs: reconciliation with the card
// provider, fetching bank acknowledgements, Lua jobs.
//
// Each schedule has a cron spec (see Spec for the daylight-saving rules), a
// time zone and a job looked up by name in a Registry the daemon fills.
// Every run is recorded through store.Schedules (start, finish, outcome,
// summary, error). A run is never started while the previous run of the
// same schedule is still going, on this instance (checked in memory) or on
// another one sharing the database (StartRun's uniqueness). A run missed
// while the daemon was down runs once at start.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
)

// JobFunc is the work of a schedule. params are the schedule's params (a
// copy per run). The summary is recorded with the run and shown by
// `acquit schedules list`. ctx is cancelled at the schedule's timeout and
// on shutdown.
type JobFunc func(ctx context.Context, params map[string]string) (summary string, err error)

// Registry maps job names ("atos.reconcile", "lua") to functions. It is
// safe for concurrent use.
type Registry struct {
	mu   sync.RWMutex
	jobs map[string]JobFunc
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{jobs: map[string]JobFunc{}} }

// Register adds or replaces the job called name.
func (r *Registry) Register(name string, fn JobFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs[name] = fn
}

// Lookup returns the job called name.
func (r *Registry) Lookup(name string) (JobFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.jobs[name]
	return fn, ok
}

// Names returns the registered job names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.jobs))
}

// Entry is one schedule to run.
type Entry struct {
	// Name is unique; runs are recorded under it.
	Name string
	// Spec is the cron spec (see Parse).
	Spec string
	// Timezone is an IANA zone name ("" = local).
	Timezone string
	// Job names the JobFunc in the Registry.
	Job string
	// Params are handed to the job.
	Params map[string]string
	// Timeout bounds one run (default 10m).
	Timeout time.Duration
}

// Info describes a schedule for `acquit schedules list`.
type Info struct {
	// Name is the schedule's name.
	Name string
	// Spec is the cron spec as written.
	Spec string
	// Timezone is the zone the spec is read in ("Local" by default).
	Timezone string
	// Job is the job's name in the Registry.
	Job string
	// Next is the next due time (zero if none).
	Next time.Time
	// Running is true while a run started by this instance is going.
	Running bool
	// Last is the last recorded run (by any instance), nil if none.
	Last *store.Run
}

// Options configures a Scheduler.
type Options struct {
	// Store records runs (required).
	Store store.Schedules
	// Registry holds the jobs (required).
	Registry *Registry
	// Instance is recorded with each run (required).
	Instance string
	// Logger receives run logs.
	Logger zerolog.Logger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Clock is the time source (nil: the real clock).
	Clock clockwork.Clock
	// NoCatchUp disables running missed runs at start.
	NoCatchUp bool
	// AbandonGrace is added to the longest timeout before an unfinished
	// run is declared dead (its process died) and the schedule unblocked
	// (default 5m).
	AbandonGrace time.Duration
}

// entry is a parsed Entry.
type entry struct {
	Entry
	spec *Spec
}

// Scheduler runs schedules. Create it with New, then Start.
type Scheduler struct {
	opts    Options
	clock   clockwork.Clock
	log     zerolog.Logger
	metrics *metrics

	mu         sync.Mutex
	entries    map[string]*entry
	running    map[string]*atomic.Bool
	loopCancel context.CancelFunc
	loops      sync.WaitGroup
	jobs       sync.WaitGroup
	jobCtx     context.Context
	jobCancel  context.CancelFunc
	started    bool
	stopped    bool
	realClock  bool
}

// New checks the entries and returns a Scheduler.
func New(opts Options, entries []Entry) (*Scheduler, error) {
	if opts.Store == nil || opts.Registry == nil || opts.Instance == "" {
		return nil, errors.New("schedule: Store, Registry and Instance are required")
	}
	realClock := opts.Clock == nil
	if realClock {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.AbandonGrace <= 0 {
		opts.AbandonGrace = 5 * time.Minute
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Scheduler{opts: opts, clock: opts.Clock, log: opts.Logger.With().Str("component", "schedule").Logger(),
		metrics: m, running: map[string]*atomic.Bool{}, realClock: realClock}
	es, err := parseEntries(entries)
	if err != nil {
		return nil, err
	}
	s.entries = es
	return s, nil
}

func parseEntries(entries []Entry) (map[string]*entry, error) {
	out := make(map[string]*entry, len(entries))
	var errs []error
	for _, e := range entries {
		if e.Name == "" {
			errs = append(errs, errors.New("schedule without a name"))
			continue
		}
		if _, dup := out[e.Name]; dup {
			errs = append(errs, fmt.Errorf("schedule %s: duplicate name", e.Name))
			continue
		}
		loc := time.Local
		if e.Timezone != "" {
			l, err := LoadLocation(e.Timezone)
			if err != nil {
				errs = append(errs, fmt.Errorf("schedule %s: %w", e.Name, err))
				continue
			}
			loc = l
		}
		sp, err := Parse(e.Spec, loc)
		if err != nil {
			errs = append(errs, fmt.Errorf("schedule %s: %w", e.Name, err))
			continue
		}
		if e.Timeout <= 0 {
			e.Timeout = 10 * time.Minute
		}
		e.Params = maps.Clone(e.Params)
		out[e.Name] = &entry{Entry: e, spec: sp}
	}
	return out, errors.Join(errs...)
}

// Start runs missed runs once (unless NoCatchUp) and starts waiting for the
// due times. It returns at once; ctx ends the schedules like Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("schedule: already started")
	}
	s.started = true
	s.jobCtx, s.jobCancel = context.WithCancel(context.WithoutCancel(ctx))
	lctx, cancel := context.WithCancel(ctx)
	s.loopCancel = cancel
	now := s.clock.Now()
	if n, err := s.opts.Store.AbandonInstanceRuns(ctx, s.opts.Instance); err != nil {
		s.log.Warn().Err(err).Msg("abandoning this instance's unfinished runs")
	} else if n > 0 {
		s.log.Warn().Int("runs", n).Msg("runs left unfinished by this instance's previous process marked failed")
	}
	if n, err := s.opts.Store.AbandonRuns(ctx, now.Add(-s.abandonAfter())); err != nil {
		s.log.Warn().Err(err).Msg("abandoning unfinished runs")
	} else if n > 0 {
		s.log.Warn().Int("runs", n).Msg("marked unfinished runs of a dead process as failed")
	}
	for _, e := range s.entries {
		s.startLoop(lctx, e, !s.opts.NoCatchUp)
	}
	go func() {
		<-ctx.Done()
		s.Stop(context.Background())
	}()
	return nil
}

// abandonAfter is how old an unfinished run must be to be declared dead.
// The caller holds s.mu.
func (s *Scheduler) abandonAfter() time.Duration {
	var longest time.Duration
	for _, e := range s.entries {
		longest = max(longest, e.Timeout)
	}
	return longest + s.opts.AbandonGrace
}

func (s *Scheduler) startLoop(ctx context.Context, e *entry, catchUp bool) {
	flag, ok := s.running[e.Name]
	if !ok {
		flag = &atomic.Bool{}
		s.running[e.Name] = flag
	}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		s.loop(ctx, e, flag, catchUp)
	}()
}

// Reload replaces the schedules: removed and changed ones stop waiting (a
// run in progress finishes), new ones start. Missed runs are not caught up.
// On error nothing changes.
func (s *Scheduler) Reload(ctx context.Context, entries []Entry) error {
	es, err := parseEntries(entries)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("schedule: stopped")
	}
	s.entries = es
	if !s.started {
		return nil
	}
	s.loopCancel()
	s.loops.Wait()
	lctx, cancel := context.WithCancel(ctx)
	s.loopCancel = cancel
	for _, e := range es {
		s.startLoop(lctx, e, false)
	}
	s.log.Info().Int("schedules", len(es)).Msg("schedules reloaded")
	return nil
}

// Stop stops starting runs and waits for the running ones until ctx ends;
// then it cancels them and waits for them to record their outcome.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.loopCancel()
	s.mu.Unlock()
	s.loops.Wait()
	done := make(chan struct{})
	go func() { s.jobs.Wait(); close(done) }()
	select {
	case <-done:
		s.jobCancel()
		return nil
	case <-ctx.Done():
		s.jobCancel()
		<-done
		return fmt.Errorf("schedule stop: %w", ctx.Err())
	}
}

func (s *Scheduler) loop(ctx context.Context, e *entry, flag *atomic.Bool, catchUp bool) {
	log := s.log.With().Str("schedule", e.Name).Logger()
	now := s.clock.Now()
	if catchUp {
		if due, ok := s.missed(ctx, e, now); ok {
			log.Info().Time("scheduled", due).Msg("running a run missed while the daemon was down")
			s.trigger(e, flag, due)
		}
	}
	next := e.spec.Next(now)
	for {
		if next.IsZero() {
			log.Warn().Str("spec", e.Spec).Msg("schedule has no next run")
			return
		}
		timer := s.clock.NewTimer(next.Sub(s.clock.Now()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.Chan():
		}
		s.trigger(e, flag, next)
		// Due times passed while the process was suspended are not run
		// one after the other: the next one is after now.
		next = e.spec.Next(later(next, s.clock.Now()))
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// missed reports the latest due time at or before now that comes after
// the last recorded run, if any.
func (s *Scheduler) missed(ctx context.Context, e *entry, now time.Time) (time.Time, bool) {
	last, err := s.opts.Store.LastRun(ctx, e.Name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && last == nil) {
		return time.Time{}, false
	}
	if err != nil {
		s.log.Warn().Err(err).Str("schedule", e.Name).Msg("reading the last run; no catch-up")
		return time.Time{}, false
	}
	due := e.spec.Next(last.Scheduled)
	if due.IsZero() || due.After(now) {
		return time.Time{}, false
	}
	return latestDue(e.spec, last.Scheduled, now), true
}

// catchUpWindows are the look-back windows tried, smallest first, to find
// the latest due time before now without walking every due time since
// the last run (a per-second schedule after a week down).
var catchUpWindows = []time.Duration{time.Minute, time.Hour, 25 * time.Hour, 32 * 24 * time.Hour,
	367 * 24 * time.Hour, 5 * 367 * 24 * time.Hour}

// latestDue returns the latest due time in (after, now]; the caller knows
// there is one.
func latestDue(sp *Spec, after, now time.Time) time.Time {
	for _, w := range catchUpWindows {
		from := now.Add(-w)
		if from.Before(after) {
			from = after
		}
		d := sp.Next(from)
		if d.IsZero() || d.After(now) {
			continue
		}
		for i := 0; i < 1_000_000; i++ {
			n := sp.Next(d)
			if n.IsZero() || n.After(now) {
				break
			}
			d = n
		}
		return d
	}
	return sp.Next(after)
}

// trigger starts a run due at scheduled unless one is still going.
func (s *Scheduler) trigger(e *entry, flag *atomic.Bool, scheduled time.Time) {
	if !flag.CompareAndSwap(false, true) {
		s.metrics.skipped.WithLabelValues(e.Name, "overlap").Inc()
		s.log.Warn().Str("schedule", e.Name).Time("scheduled", scheduled).
			Msg("previous run still going: run skipped")
		return
	}
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		defer flag.Store(false)
		s.run(e, scheduled)
	}()
}

// RunNow runs a schedule at once (due time: now) and waits for it; it is
// refused with store.ErrConflict if a run is going. Due times are stored
// in Unix milliseconds and unique per schedule: a manual run due within
// the millisecond of the latest run (or before it) is due 1 ms after it,
// so two manual runs in a row, or one at the very start of a planned
// run's second, are both recorded.
func (s *Scheduler) RunNow(ctx context.Context, name string) (*store.Run, error) {
	s.mu.Lock()
	e, ok := s.entries[name]
	flag := s.running[name]
	if flag == nil {
		flag = &atomic.Bool{}
		s.running[name] = flag
	}
	if s.jobCtx == nil {
		s.jobCtx, s.jobCancel = context.WithCancel(context.WithoutCancel(ctx))
	}
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("schedule %s: %w", name, store.ErrNotFound)
	}
	if !flag.CompareAndSwap(false, true) {
		s.metrics.skipped.WithLabelValues(e.Name, "overlap").Inc()
		return nil, fmt.Errorf("schedule %s: a run is going: %w", name, store.ErrConflict)
	}
	defer flag.Store(false)
	s.jobs.Add(1)
	defer s.jobs.Done()
	due := s.clock.Now()
	if last, err := s.opts.Store.LastRun(ctx, name); err == nil && !due.Truncate(time.Millisecond).After(last.Scheduled) {
		due = last.Scheduled.Add(time.Millisecond)
	}
	run, err := s.run(e, due)
	if err != nil {
		return nil, err
	}
	return run, nil
}

// run records and executes one run. It returns the finished run, or an
// error when the run could not be started.
func (s *Scheduler) run(e *entry, scheduled time.Time) (*store.Run, error) {
	ctx := s.jobCtx
	log := s.log.With().Str("schedule", e.Name).Str("job", e.Job).Time("scheduled", scheduled).Logger()
	now := s.clock.Now()
	s.mu.Lock()
	cutoff := now.Add(-s.abandonAfter())
	s.mu.Unlock()
	if n, err := s.opts.Store.AbandonRuns(ctx, cutoff); err != nil {
		log.Warn().Err(err).Msg("abandoning unfinished runs")
	} else if n > 0 {
		log.Warn().Int("runs", n).Msg("marked unfinished runs of a dead process as failed")
	}
	id, err := s.opts.Store.StartRun(ctx, e.Name, scheduled, s.opts.Instance, now)
	if errors.Is(err, store.ErrConflict) {
		s.metrics.skipped.WithLabelValues(e.Name, "taken").Inc()
		log.Debug().Msg("run already taken or still going elsewhere: skipped")
		return nil, fmt.Errorf("schedule %s: %w", e.Name, err)
	}
	if err != nil {
		s.metrics.runs.WithLabelValues(e.Name, "store_error").Inc()
		log.Error().Err(err).Msg("recording the start of a run failed: run skipped")
		return nil, fmt.Errorf("schedule %s: start run: %w", e.Name, err)
	}
	var summary string
	fn, ok := s.opts.Registry.Lookup(e.Job)
	if !ok {
		err = fmt.Errorf("job %q is not registered", e.Job)
	} else {
		jctx, cancel := s.withTimeout(ctx, e.Timeout)
		summary, err = call(jctx, fn, maps.Clone(e.Params))
		cancel()
	}
	finished := s.clock.Now()
	errText := ""
	outcome := "ok"
	if err != nil {
		errText, outcome = err.Error(), "error"
	}
	// Record the outcome even when shutting down.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if ferr := s.opts.Store.FinishRun(fctx, id, err == nil, summary, errText, finished); ferr != nil {
		log.Error().Err(ferr).Int64("run", id).Msg("recording the end of a run failed")
	}
	dur := finished.Sub(now)
	s.metrics.runs.WithLabelValues(e.Name, outcome).Inc()
	s.metrics.duration.WithLabelValues(e.Name).Observe(dur.Seconds())
	ev := log.Info()
	if err != nil {
		ev = log.Error().Str("error", errText)
	}
	ev.Int64("run", id).Dur("duration", dur).Str("summary", summary).Bool("ok", err == nil).Msg("schedule run finished")
	return &store.Run{ID: id, Schedule: e.Name, Scheduled: scheduled, Started: now, Finished: finished,
		OK: err == nil, Summary: summary, Error: errText, Instance: s.opts.Instance}, nil
}

// withTimeout is context.WithTimeout on the scheduler's clock.
func (s *Scheduler) withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if s.realClock {
		return context.WithTimeout(ctx, d)
	}
	c, cancel := context.WithCancelCause(ctx)
	t := s.clock.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	return timeoutCtx{Context: c, deadline: s.clock.Now().Add(d)}, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}

// timeoutCtx is a context cancelled by a timer of an injected clock.
type timeoutCtx struct {
	context.Context
	deadline time.Time
}

// Deadline returns the deadline on the injected clock.
func (c timeoutCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Err reports context.DeadlineExceeded when the timer fired.
func (c timeoutCtx) Err() error {
	err := c.Context.Err()
	if err != nil && errors.Is(context.Cause(c.Context), context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

// call runs fn, turning a panic into an error.
func call(ctx context.Context, fn JobFunc, params map[string]string) (summary string, err error) {
	defer func() {
		if r := recover(); r != nil {
			summary, err = "", fmt.Errorf("job panicked: %v", r)
		}
	}()
	if params == nil {
		params = map[string]string{}
	}
	return fn(ctx, params)
}

// List describes every schedule, sorted by name.
func (s *Scheduler) List(ctx context.Context) ([]Info, error) {
	s.mu.Lock()
	es := slices.Collect(maps.Values(s.entries))
	running := maps.Clone(s.running)
	s.mu.Unlock()
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	now := s.clock.Now()
	out := make([]Info, 0, len(es))
	for _, e := range es {
		in := Info{Name: e.Name, Spec: e.Spec, Timezone: e.spec.Location().String(), Job: e.Job,
			Next: e.spec.Next(now)}
		if f := running[e.Name]; f != nil {
			in.Running = f.Load()
		}
		last, err := s.opts.Store.LastRun(ctx, e.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("schedule %s: last run: %w", e.Name, err)
		default:
			in.Last = last
		}
		out = append(out, in)
	}
	return out, nil
}
