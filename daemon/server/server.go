// Package server assembles the acquit daemon from its parts (store, plugin
// host, Lua hooks, outbox dispatcher, schedules, payments, transmissions,
// HTTP listeners) and runs it until SIGTERM, reloading on SIGHUP.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/config"
	"github.com/acquit/acquit/daemon/dashboard"
	"github.com/acquit/acquit/daemon/hooks"
	"github.com/acquit/acquit/daemon/httpapi"
	"github.com/acquit/acquit/daemon/logging"
	"github.com/acquit/acquit/daemon/outbox"
	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/pluginhost"
	"github.com/acquit/acquit/daemon/schedule"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/docs"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

// Daemon is a running acquit.
type Daemon struct {
	cfgPath string
	cfg     *config.Config
	log     zerolog.Logger
	reg     *prometheus.Registry
	// rawPrune counts the pruning of raw inputs (rawPruneLoop).
	rawPrune *rawPruneMetrics

	Store         store.Store
	Plugins       *pluginhost.Manager
	Hooks         *hooks.Engine
	Dispatcher    *outbox.Dispatcher
	Scheduler     *schedule.Scheduler
	Payments      *payments.Service
	Transmissions *transmissions.Service

	publicL, adminL net.Listener
	public, admin   *http.Server
	ready           httpapi.Flag
	bg              sync.WaitGroup
	bgCancel        context.CancelFunc
	mu              sync.Mutex
}

// Options tune Start.
type Options struct {
	// LogOut receives the logs (default stdout).
	LogOut *os.File
	// Logger, when set, is used instead of one built from the config.
	Logger *zerolog.Logger
}

// Start loads the configuration and starts every part. The returned
// daemon serves until Shutdown.
func Start(ctx context.Context, cfgPath string, o Options) (*Daemon, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	var log zerolog.Logger
	if o.Logger != nil {
		log = *o.Logger
	} else {
		lo := logging.Options{Level: cfg.Log.Level, Format: cfg.Log.Format}
		if o.LogOut != nil {
			lo.Out = o.LogOut
		}
		log, err = logging.New(lo)
		if err != nil {
			return nil, err
		}
	}
	d := &Daemon{cfgPath: cfgPath, cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newStoreGauges(d))
	d.rawPrune = newRawPruneMetrics(d.reg)
	if err := d.start(ctx); err != nil {
		d.Shutdown(context.Background())
		return nil, err
	}
	return d, nil
}

// Config returns the configuration in force.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Registry returns the daemon's metrics registry.
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// PublicAddr and AdminAddr are the listeners' addresses.
func (d *Daemon) PublicAddr() string { return d.publicL.Addr().String() }

// AdminAddr is the admin listener's address.
func (d *Daemon) AdminAddr() string { return d.adminL.Addr().String() }

// maxRawBody is the largest raw input stored whole (store.RecordRaw).
// Downloaded documents do not go through it: they are streamed into
// raw_body_chunks (store.RecordRawStream), up to transmissions.max_document_size.
const maxRawBody = pluginrpc.MaxMessageSize

// Migrations are the schema sets the daemon applies at open beyond the
// core set: one per domain package it runs. A package the daemon does not
// list here has no tables.
func Migrations() []store.MigrationSet {
	return []store.MigrationSet{payments.Migrations(), transmissions.Migrations()}
}

func (d *Daemon) openStore(ctx context.Context) (store.Store, error) {
	opts := []store.Option{store.WithMaxRawBody(maxRawBody), store.WithMigrations(Migrations()...)}
	switch d.cfg.State.Driver {
	case "postgres":
		return postgres.Open(ctx, d.cfg.State.DSN.Reveal(), opts...)
	default:
		if err := os.MkdirAll(filepath.Dir(d.cfg.State.Path), 0o750); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
		return sqlite.Open(ctx, d.cfg.State.Path, opts...)
	}
}

// pluginKinds infers each plugin's kind from where the config uses it.
func pluginKinds(cfg *config.Config) map[string]sdk.Kind {
	k := map[string]sdk.Kind{}
	if cfg.Payments.Gateway != "" {
		k[cfg.Payments.Gateway] = sdk.KindPaymentGateway
	}
	for _, g := range cfg.Payments.Gateways {
		k[g] = sdk.KindPaymentGateway
	}
	for _, b := range cfg.Banks {
		k[b.Plugin] = sdk.KindBankTransport
	}
	return k
}

func (d *Daemon) pluginSpecs() []pluginhost.Spec {
	kinds := pluginKinds(d.cfg)
	specs := make([]pluginhost.Spec, 0, len(d.cfg.Plugins))
	for _, p := range d.cfg.Plugins {
		specs = append(specs, pluginhost.Spec{Name: p.Name, Path: p.Path, SHA256: p.SHA256, Settings: p.Settings.JSON(), Kind: kinds[p.Name], MaxProcs: p.MaxProcs})
	}
	return specs
}

func bindings(cfg *config.Config) []hooks.Binding {
	out := make([]hooks.Binding, 0, len(cfg.Hooks))
	for _, h := range cfg.Hooks {
		out = append(out, hooks.Binding{Events: h.Events, Script: h.Script, Function: h.Function})
	}
	return out
}

func banks(cfg *config.Config) []transmissions.Bank {
	out := make([]transmissions.Bank, 0, len(cfg.Banks))
	for _, b := range cfg.Banks {
		out = append(out, transmissions.Bank{Name: b.Name, Plugin: b.Plugin, AckDeadline: b.AckDeadline, AckKinds: b.AckKinds,
			PTKProfile: b.PTKProfile, OutboxDir: b.OutboxDir, Function: b.Function})
	}
	return out
}

func (d *Daemon) start(ctx context.Context) error {
	cfg := d.cfg
	var err error
	raw, err := d.openStore(ctx)
	if err != nil {
		return err
	}
	ws := &wakingStore{Store: raw}
	d.Store = ws
	d.log.Info().Str("driver", d.Store.Driver()).Str("instance", cfg.Instance).Msg("store open")
	for _, w := range cfg.Warnings() {
		d.log.Warn().Str("config", cfg.File).Msg(w)
	}

	// Listeners first: a port in use fails the start before plugins run.
	if d.publicL, err = httpapi.Listen(cfg.Listen.Public.Addr); err != nil {
		return err
	}
	if d.adminL, err = httpapi.Listen(cfg.Listen.Admin.Addr); err != nil {
		return err
	}

	if d.Plugins, err = pluginhost.New(pluginhost.Options{SocketDir: PluginSocketDir(cfg), State: d.Store, Logger: d.log, Registerer: d.reg}); err != nil {
		return err
	}
	if err := d.Plugins.Start(ctx, d.pluginSpecs()...); err != nil {
		return err
	}

	allow, err := hooks.ParseHTTPAllow(cfg.Scripts.HTTPAllow)
	if err != nil {
		return err
	}
	d.Hooks, err = hooks.New(hooks.Options{HTTPAllow: allow, AdminAddr: cfg.Listen.Admin.Addr, Dir: cfg.Scripts.Dir, Bindings: bindings(cfg), KV: d.Store, Config: cfg.Scripts.Values,
		Logger: d.log, Timeout: cfg.Scripts.Timeout, PoolSize: cfg.Scripts.PoolSize, MemoryBudget: cfg.Scripts.MemoryBudget.Bytes(),
		Registerer: d.reg})
	if err != nil {
		return err
	}

	dlog := d.log // outbox names its component itself
	// Lease holder name: instance/pid/nonce. A restarted process of this
	// instance takes back at once the events its killed predecessor held.
	workerName := fmt.Sprintf("%s/%d/%d", cfg.Instance, os.Getpid(), time.Now().UnixNano()%1_000_000)
	if n, err := ws.ExpireLeases(ctx, cfg.Instance+"/", workerName, time.Now()); err != nil {
		return err
	} else if n > 0 {
		d.log.Warn().Int("events", n).Msg("events leased by a previous process of this instance are delivered again")
	}
	d.Dispatcher, err = outbox.New(outbox.Config{Store: d.Store, Handler: d.deliver, Name: workerName,
		Workers: cfg.Events.Workers, Lease: cfg.Events.Lease, PollInterval: cfg.Events.PollInterval, BackoffBase: cfg.Events.BackoffBase,
		BackoffMax: cfg.Events.BackoffMax, MaxAttempts: cfg.Events.MaxAttempts, MaxAge: cfg.Events.MaxAge, PoisonAfter: cfg.Events.PoisonAfter,
		Registerer: d.reg, Logger: &dlog})
	if err != nil {
		return err
	}
	wake := d.Dispatcher.Wake
	ws.wake.Store(&wake)

	d.Payments = payments.New(payments.Deps{Store: d.Store, Gateway: d.Plugins.Gateway, Logger: d.log, // payments names its component itself
		Registerer: d.reg, Config: payments.Config{DefaultGateway: cfg.Payments.Gateway, ReconcileAfter: cfg.Payments.ReconcileAfter,
			RecheckEvery: cfg.Payments.RecheckEvery, FinalDeadline: cfg.Payments.FinalDeadline, PublicBaseURL: cfg.Listen.Public.BaseURL,
			FallbackReturnURL: cfg.Payments.FallbackReturnURL,
			NotifyRate:        float64(cfg.Payments.NotifyRate), NotifyBurst: cfg.Payments.NotifyBurst, RefusedBodyKeep: cfg.Payments.RefusedBodyKeep.Bytes(), MaxBodyBytes: cfg.Listen.Public.MaxBodyBytes.Bytes()}})
	spool := cfg.State.Spool
	if spool == "" {
		spool = filepath.Join(filepath.Dir(cfg.State.Path), "spool")
	}
	d.Transmissions, err = transmissions.New(transmissions.Deps{Store: d.Store, Transport: d.Plugins.Transport, Banks: banks(cfg),
		SpoolDir: spool, MaxDocumentSize: cfg.Transmissions.MaxDocumentSize.Bytes(),
		Logger: d.log.With().Str("component", "transmissions").Logger(), Registerer: d.reg})
	if err != nil {
		return err
	}

	reg := schedule.NewRegistry()
	d.registerJobs(reg)
	d.Scheduler, err = schedule.New(schedule.Options{Store: d.Store, Registry: reg, Instance: cfg.Instance, Logger: d.log, Registerer: d.reg},
		cfg.ScheduleEntries())
	if err != nil {
		return err
	}

	// HTTP.
	hm := httpapi.NewMetrics(d.reg)
	d.public = httpapi.NewPublicServer(httpapi.PublicOptions{Addr: cfg.Listen.Public.Addr, MaxBodyBytes: cfg.Listen.Public.MaxBodyBytes.Bytes(),
		ReadHeaderTimeout: cfg.Listen.Public.ReadHeaderTimeout, ReadTimeout: cfg.Listen.Public.ReadTimeout,
		WriteTimeout: cfg.Listen.Public.WriteTimeout, IdleTimeout: cfg.Listen.Public.IdleTimeout,
		TrustedProxies: cfg.Listen.Public.TrustedProxies}, d.publicMux(), d.log, hm)
	api := &httpapi.AdminAPI{Events: d.Store, Schedules: d.scheduleInfo, Wake: d.Dispatcher.Wake, Emit: d.emit}
	ao := httpapi.AdminOptions{Addr: cfg.Listen.Admin.Addr, Token: cfg.Listen.Admin.Token.Reveal()}
	if !cfg.Listen.Admin.Dashboard.Disabled {
		if ao.Dashboard, err = d.dashboard(api); err != nil {
			return err
		}
	}
	d.admin = httpapi.NewAdminServer(ao, d.adminMux(api), d.reg, d.readiness, d.log, hm)

	if err := d.Dispatcher.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if err := d.Scheduler.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.bgCancel = cancel
	d.bg.Add(1)
	go func() { defer d.bg.Done(); d.transmissionLoop(bgCtx) }()
	d.bg.Add(1)
	go func() { defer d.bg.Done(); d.rawPruneLoop(bgCtx) }()
	for _, pair := range []struct {
		s *http.Server
		l net.Listener
	}{{d.public, d.publicL}, {d.admin, d.adminL}} {
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			if err := httpapi.Serve(pair.s, pair.l); err != nil {
				d.log.Error().Err(err).Msg("http listener stopped")
			}
		}()
	}
	d.ready.Set(true)
	d.log.Info().Str("public", d.PublicAddr()).Str("admin", d.AdminAddr()).Int("plugins", len(cfg.Plugins)).
		Int("schedules", len(cfg.Schedules)).Int("hooks", len(cfg.Hooks)).Msg("acquit started")
	return nil
}

// emit commits one event to the outbox.
func (d *Daemon) emit(ctx context.Context, ev store.NewEvent) (store.Event, error) {
	var out store.Event
	err := d.Store.InTx(ctx, func(tx store.Tx) error {
		var err error
		out, err = tx.Emit(ctx, ev)
		return err
	})
	return out, err
}

// deliver is the outbox handler: the event goes to its Lua hooks.
func (d *Daemon) deliver(ctx context.Context, ev store.Event) error {
	// ClaimEvents already counted this attempt: 1 on the first delivery.
	return d.Hooks.Deliver(ctx, ev, ev.Attempts)
}

func (d *Daemon) readiness(ctx context.Context) error {
	if !d.ready.Get() {
		return errors.New("starting or stopping")
	}
	if _, err := d.Store.CountEvents(ctx, store.EventDead); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, st := range d.Plugins.Status() {
		if st.State != pluginhost.StateUp {
			return fmt.Errorf("plugin %s is %s", st.Name, st.State)
		}
	}
	return nil
}

// registerJobs names the schedule jobs: "<gateway>.reconcile" for each
// payment gateway, "<transport>.fetch_acks" for each bank transport, "lua"
// for Lua functions, and every job a plugin declares in Describe
// ("<plugin>.<job>"). Queued files are sent by transmissionLoop, not by a
// job: see there.
func (d *Daemon) registerJobs(reg *schedule.Registry) {
	for name, kind := range pluginKinds(d.cfg) {
		switch kind {
		case sdk.KindPaymentGateway:
			reg.Register(name+".reconcile", func(ctx context.Context, p map[string]string) (string, error) {
				if p == nil {
					p = map[string]string{}
				}
				if p["gateway"] == "" {
					p["gateway"] = name
				}
				return d.Payments.Reconcile(ctx, p)
			})
		case sdk.KindBankTransport:
			reg.Register(name+".fetch_acks", func(ctx context.Context, p map[string]string) (string, error) {
				return d.Transmissions.FetchAcks(ctx, p)
			})
		}
	}
	for _, p := range d.cfg.Plugins {
		info, err := d.Plugins.Info(p.Name)
		if err != nil {
			continue
		}
		for _, job := range info.Jobs {
			full := p.Name + "." + job
			if _, ok := reg.Lookup(full); ok {
				continue
			}
			reg.Register(full, func(ctx context.Context, params map[string]string) (string, error) {
				r, err := d.Plugins.JobRunner(p.Name)
				if err != nil {
					return "", err
				}
				return r.RunJob(ctx, job, params)
			})
		}
	}
	reg.Register("lua", func(ctx context.Context, p map[string]string) (string, error) {
		script := strings.TrimPrefix(p["script"], d.cfg.Scripts.Dir+string(os.PathSeparator))
		tr, err := d.Hooks.Call(ctx, script, p["function"], p)
		if err != nil {
			return "", err
		}
		if tr.Err != nil {
			return "", tr.Err
		}
		return fmt.Sprint(tr.Return), nil
	})
}

// transmissionLoop sends queued files, watches the outbox folders and
// raises the unacknowledged alarm every few seconds, and prunes delivered
// events past the retention hourly.
//
// It is the only sender of queued files (there is no "<bank>.send_pending"
// schedule job): upload retries back off from 5 s, which only a loop of
// a few seconds honours (a cron job would delay every first upload and
// retry by up to its period), a file dropped in an outbox folder goes out
// without the operator having to configure anything, and each instance
// runs it safely since Send takes a per-transmission lease. Attempts and
// errors are recorded on the transmission (acquit transmissions show).
func (d *Daemon) transmissionLoop(ctx context.Context) {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	var lastPrune time.Time
	for {
		if _, err := d.Transmissions.ScanOutbox(ctx, d.cfg.Instance, 2*time.Second); err != nil && ctx.Err() == nil {
			d.log.Warn().Err(err).Msg("outbox folder scan")
		}
		if _, err := d.Transmissions.SendPending(ctx, d.cfg.Instance); err != nil && ctx.Err() == nil {
			d.log.Warn().Err(err).Msg("send pending transmissions")
		}
		if _, err := d.Transmissions.CheckDeadlines(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn().Err(err).Msg("transmission deadlines")
		}
		if time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			if p := d.Store; d.cfg.Events.Retention > 0 {
				if n, err := p.PruneEvents(ctx, time.Now().Add(-d.cfg.Events.Retention)); err != nil && ctx.Err() == nil {
					d.log.Warn().Err(err).Msg("prune delivered events")
				} else if n > 0 {
					d.log.Info().Int("events", n).Msg("delivered events past retention pruned")
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Daemon) publicMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/notify/", d.Payments.PublicHandler())
	return mux
}

// dashboard builds the web dashboard of the admin listener (/ui/).
func (d *Daemon) dashboard(api *httpapi.AdminAPI) (http.Handler, error) {
	cfg := d.cfg.Listen.Admin
	loc := time.Local
	if cfg.Dashboard.Timezone != "" {
		l, err := schedule.LoadLocation(cfg.Dashboard.Timezone)
		if err != nil {
			return nil, fmt.Errorf("listen.admin.dashboard.timezone: %w", err)
		}
		loc = l
	}
	deps := dashboard.Deps{Token: cfg.Token.Reveal(), Store: d.Store, Schedules: d.Scheduler, Plugins: d.Plugins.Status,
		Replay: api.Replay, Location: loc, SessionTTL: cfg.Dashboard.SessionTTL, Instance: d.cfg.Instance,
		Logger: d.log, Registerer: d.reg}
	if d.cfg.Payments.Gateway != "" {
		deps.Payments = d.Payments
	}
	if len(d.cfg.Banks) > 0 {
		deps.Transmissions = d.Transmissions
	}
	return dashboard.New(deps)
}

func (d *Daemon) adminMux(api *httpapi.AdminAPI) http.Handler {
	mux := http.NewServeMux()
	api.Register(mux)
	ph := d.Payments.AdminHandler()
	mux.Handle("/v1/payments", ph)
	mux.Handle("/v1/payments/", ph)
	th := d.Transmissions.AdminHandler(d.cfg.Instance, 512<<20)
	mux.Handle("/v1/transmissions", th)
	mux.Handle("/v1/transmissions/", th)
	mux.Handle("/v1/banks/", th)
	mux.HandleFunc("POST /v1/schedules/{name}/run", func(w http.ResponseWriter, r *http.Request) {
		run, err := d.Scheduler.RunNow(r.Context(), r.PathValue("name"))
		if err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, run)
	})
	mux.HandleFunc("GET /v1/plugins", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, d.Plugins.Status())
	})
	mux.HandleFunc("GET /v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(docs.OpenAPI)
	})
	mux.HandleFunc("POST /v1/banks/{bank}/keys", func(w http.ResponseWriter, r *http.Request) {
		var req sdk.KeyRequest
		if err := httpapi.DecodeJSON(r, &req); err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		req.Bank = r.PathValue("bank")
		plugin := ""
		for _, b := range d.Config().Banks {
			if b.Name == req.Bank {
				plugin = b.Plugin
			}
		}
		if plugin == "" {
			httpapi.WriteError(w, http.StatusNotFound, fmt.Errorf("unknown bank %q", req.Bank))
			return
		}
		tr, err := d.Plugins.Transport(plugin)
		if err != nil {
			httpapi.WriteError(w, http.StatusNotFound, err)
			return
		}
		res, err := tr.Keys(r.Context(), req)
		if err != nil {
			httpapi.WriteError(w, http.StatusBadGateway, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, res)
	})
	return mux
}

func (d *Daemon) scheduleInfo() []httpapi.ScheduleInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := d.Scheduler.List(ctx)
	if err != nil {
		d.log.Warn().Err(err).Msg("list schedules")
		return nil
	}
	out := make([]httpapi.ScheduleInfo, 0, len(list))
	for _, s := range list {
		si := httpapi.ScheduleInfo{Name: s.Name, Spec: s.Spec, TimeZone: s.Timezone, Job: s.Job, Running: s.Running}
		if !s.Next.IsZero() {
			si.Next = s.Next.Format(time.RFC3339)
		}
		if s.Last != nil {
			ok := s.Last.OK
			si.LastOK = &ok
			si.LastStarted = s.Last.Started.Format(time.RFC3339)
			si.LastSummary, si.LastError = s.Last.Summary, s.Last.Error
			if s.Last.Finished.IsZero() {
				si.LastOK = nil
			}
		}
		out = append(out, si)
	}
	return out
}

// Reload re-reads the configuration: a configuration that fails validation
// leaves the running one in force. Scripts, hook bindings, schedules,
// plugin settings and the log level change in place; listener addresses,
// the store and the plugin list need a restart (logged).
func (d *Daemon) Reload(ctx context.Context) error {
	cfg, err := config.Load(d.cfgPath)
	if err != nil {
		d.log.Error().Err(err).Msg("reload refused: configuration invalid; the running one stays in force")
		return err
	}
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	if err := d.Hooks.Reload(cfg.Scripts.Dir, bindings(cfg)); err != nil {
		d.log.Error().Err(err).Msg("reload refused: scripts do not compile; the running ones stay in force")
		return err
	}
	d.Hooks.SetConfig(cfg.Scripts.Values)
	if err := d.Scheduler.Reload(ctx, cfg.ScheduleEntries()); err != nil {
		d.log.Error().Err(err).Msg("reload: schedules kept as they were")
		return err
	}
	for _, p := range cfg.Plugins {
		if op, ok := old.Plugin(p.Name); ok && string(op.Settings.JSON()) != string(p.Settings.JSON()) {
			if err := d.Plugins.Reconfigure(ctx, p.Name, p.Settings.JSON()); err != nil {
				d.log.Error().Err(err).Str("plugin", p.Name).Msg("reload: plugin kept its previous settings")
			}
		}
	}
	if restartNeeded(old, cfg) {
		d.log.Warn().Msg("reload: listener, state, transmissions or plugin list changes take effect at the next restart")
	}
	if l, err := zerolog.ParseLevel(cfg.Log.Level); err == nil {
		d.log = d.log.Level(l)
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.log.Info().Msg("configuration reloaded")
	return nil
}

// restartNeeded reports whether cfg changes settings that Reload does not
// apply: listeners, state (but state.raw_retention, read at each pruning
// run), the transmissions block (transmissions.New reads it once) and the
// plugin processes (path, digest, max_procs).
func restartNeeded(old, cfg *config.Config) bool {
	oldState, newState := old.State, cfg.State
	oldState.RawRetention, newState.RawRetention = 0, 0
	return !reflect.DeepEqual(old.Listen, cfg.Listen) || !reflect.DeepEqual(oldState, newState) ||
		!reflect.DeepEqual(old.Transmissions, cfg.Transmissions) || !reflect.DeepEqual(pluginPaths(old), pluginPaths(cfg))
}

func pluginPaths(c *config.Config) []string {
	var out []string
	for _, p := range c.Plugins {
		out = append(out, p.Name+"="+p.Path+"@"+p.SHA256+"/"+strconv.Itoa(p.MaxProcs))
	}
	return out
}

// Shutdown drains in-flight HTTP requests and hook calls, stops the
// schedules and the plugins and closes the store.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.ready.Set(false)
	var errs []error
	for _, s := range []*http.Server{d.public, d.admin} {
		if s != nil {
			if err := s.Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, l := range []net.Listener{d.publicL, d.adminL} {
		if l != nil {
			l.Close()
		}
	}
	if d.bgCancel != nil {
		d.bgCancel()
	}
	if d.Scheduler != nil {
		if err := d.Scheduler.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if d.Dispatcher != nil {
		if err := d.Dispatcher.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	d.bg.Wait()
	if d.Hooks != nil {
		d.Hooks.Close()
	}
	if d.Plugins != nil {
		if err := d.Plugins.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if d.Store != nil {
		if err := d.Store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	d.log.Info().Msg("acquit stopped")
	return errors.Join(errs...)
}

// PluginSocketDir is where the daemon run with cfg has its plugins create
// their go-plugin unix sockets:
// $RUNTIME_DIRECTORY/plugins under systemd (RuntimeDirectory=acquit), else
// "plugin-sockets" beside the SQLite file (or the spool with PostgreSQL).
// A unix socket path is limited to 107 bytes (sun_path): when that folder
// is too deep for go-plugin's socket names, a short folder of its own in
// the system temporary directory is used instead, named after the state
// folder so that a restart finds (and cleans) its predecessor's sockets.
// It is exported for the end-to-end tests, which remove what their killed
// daemons leave there.
func PluginSocketDir(cfg *config.Config) string {
	if rt := os.Getenv("RUNTIME_DIRECTORY"); rt != "" {
		return shortSocketDir(filepath.Join(strings.SplitN(rt, ":", 2)[0], "plugins"))
	}
	base := filepath.Dir(cfg.State.Path)
	if cfg.State.Driver == "postgres" && cfg.State.Spool != "" {
		base = filepath.Dir(cfg.State.Spool)
	}
	return shortSocketDir(filepath.Join(base, "plugin-sockets"))
}

func shortSocketDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if len(dir) <= pluginhost.MaxSocketDirLen {
		return dir
	}
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(os.TempDir(), "acquit-sockets-"+hex.EncodeToString(sum[:6]))
}
