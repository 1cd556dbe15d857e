// Package pluginhost starts and supervises the daemon's bank plugins
// (hashicorp/go-plugin over gRPC): checksum check before start, Describe
// and Configure with a Host backed by the store, health checks, restart
// with exponential backoff when a plugin dies, fast "unavailable" errors
// while it is down, and a clean Stop that leaves no child process behind.
//
// Callers get handles (Gateway, Transport, JobRunner) that always call the
// live instance of the plugin, across restarts.
package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	plugin "github.com/hashicorp/go-plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

// Spec is one plugin entry of the daemon's configuration.
type Spec struct {
	// Name is the instance name ("atos", "ebics-bnp"); it scopes the
	// plugin's state and names its jobs and metrics.
	Name string
	// Path is the plugin executable.
	Path string
	// SHA256, when set, is the hex digest the executable must have; it is
	// checked before every start and a mismatch prevents the start.
	SHA256 string
	// Settings is the plugin's settings block (JSON, secrets resolved).
	Settings []byte
	// Kind is the kind the plugin must report in Describe.
	Kind sdk.Kind
	// Args are extra command-line arguments.
	Args []string
	// Env are extra "KEY=value" environment entries. The plugin does not
	// inherit the daemon's environment beyond PATH, HOME, TMPDIR, locale,
	// time zone, CA and proxy variables (the daemon's may hold secrets).
	Env []string
}

// Options configures a Manager.
type Options struct {
	// State backs the plugins' sdk.Host (required).
	State store.PluginState
	// Logger receives the host's and the plugins' logs, with plugin=name.
	Logger zerolog.Logger
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// SocketDir is where plugin processes create their go-plugin unix
	// sockets (PLUGIN_UNIX_SOCKET_DIR), e.g. the daemon's runtime
	// directory; New creates it (0700) and removes the sockets nobody
	// listens on any more (left by killed plugins). Empty: the system
	// temporary directory, never cleaned.
	SocketDir string
	// HealthInterval is the period of health checks (default 10s).
	HealthInterval time.Duration
	// HealthTimeout bounds one health check (default 5s); after
	// HealthFailures consecutive transport failures (default 3) the plugin
	// is killed and restarted.
	HealthTimeout  time.Duration
	HealthFailures int
	// BackoffMin and BackoffMax bound the delay between restarts (default
	// 500ms and 1m); the delay doubles after each failed start and resets
	// once a plugin stayed up for BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// StartTimeout bounds the go-plugin handshake (default 30s).
	StartTimeout time.Duration
	// CallTimeout applies to plugin calls whose context has no deadline,
	// except Upload, Download, Keys and RunJob (default 60s).
	CallTimeout time.Duration
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HealthInterval, 10*time.Second)
	def(&o.HealthTimeout, 5*time.Second)
	def(&o.BackoffMin, 500*time.Millisecond)
	def(&o.BackoffMax, time.Minute)
	def(&o.StartTimeout, 30*time.Second)
	def(&o.CallTimeout, 60*time.Second)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.HealthFailures <= 0 {
		o.HealthFailures = 3
	}
}

// Errors of the plugin host.
var (
	ErrUnknownPlugin = errors.New("unknown plugin")
	ErrWrongKind     = errors.New("plugin is of another kind")
	ErrChecksum      = errors.New("plugin executable checksum mismatch")
	ErrBadSpec       = errors.New("bad plugin spec")
	ErrStopped       = errors.New("plugin host stopped")
)

// UnavailableError is returned by calls to a plugin whose process is not
// running (crashed and waiting for restart, or being restarted).
type UnavailableError struct {
	Plugin string
	State  State
	Cause  error
}

// Error implements error.
func (e *UnavailableError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("plugin %s unavailable (%s): %v", e.Plugin, e.State, e.Cause)
	}
	return fmt.Sprintf("plugin %s unavailable (%s)", e.Plugin, e.State)
}

// Unwrap returns the underlying failure, if any.
func (e *UnavailableError) Unwrap() error { return e.Cause }

// State is the lifecycle state of a plugin.
type State string

// The plugin states.
const (
	StateStarting   State = "starting"
	StateUp         State = "up"
	StateRestarting State = "restarting"
	StateStopped    State = "stopped"
)

// Status describes one plugin for the admin API.
type Status struct {
	Name      string
	Kind      sdk.Kind
	State     State
	Info      sdk.Info
	PID       int
	Restarts  int // restart attempts since Start
	LastError string
	Since     time.Time
}

// rawClient is what the sdk client shims offer beyond the kind interface.
type rawClient interface {
	sdk.Plugin
	sdk.JobRunner
	Done() <-chan struct{}
	Close()
}

// Manager runs the configured plugins.
type Manager struct {
	opts    Options
	log     zerolog.Logger
	metrics *metrics

	mu      sync.Mutex
	plugins map[string]*instance
	stopped bool
}

// New returns a Manager; plugins are started with Start.
func New(opts Options) (*Manager, error) {
	if opts.State == nil {
		return nil, fmt.Errorf("plugin host: %w: no plugin state store", ErrBadSpec)
	}
	opts.defaults()
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("plugin host metrics: %w", err)
	}
	if opts.SocketDir != "" {
		if err := os.MkdirAll(opts.SocketDir, 0o700); err != nil {
			return nil, fmt.Errorf("plugin socket directory: %w", err)
		}
		cleanStaleSockets(opts.SocketDir, opts.Logger)
	}
	return &Manager{opts: opts, log: opts.Logger, metrics: met, plugins: map[string]*instance{}}, nil
}

// cleanStaleSockets removes the unix sockets of dir that nobody listens on
// (a plugin killed with SIGKILL cannot remove its own); live ones, of
// another process sharing the directory, are kept.
func cleanStaleSockets(dir string, log zerolog.Logger) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		log.Warn().Err(err).Str("dir", dir).Msg("plugin socket directory not readable")
		return
	}
	removed := 0
	for _, e := range ents {
		if e.Type()&os.ModeSocket == 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if c, err := net.DialTimeout("unix", p, 200*time.Millisecond); err == nil {
			c.Close()
			continue
		}
		if err := os.Remove(p); err == nil {
			removed++
		}
	}
	if removed > 0 {
		log.Info().Int("sockets", removed).Str("dir", dir).Msg("stale plugin sockets removed")
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (s Spec) validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("%w: name %q must match %s", ErrBadSpec, s.Name, nameRE)
	}
	if s.Path == "" {
		return fmt.Errorf("%w: plugin %s: empty path", ErrBadSpec, s.Name)
	}
	if _, err := pluginrpc.PluginName(s.Kind); err != nil {
		return fmt.Errorf("%w: plugin %s: %v", ErrBadSpec, s.Name, err)
	}
	if s.SHA256 != "" {
		b, err := hex.DecodeString(s.SHA256)
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%w: plugin %s: sha256 must be 64 hex digits", ErrBadSpec, s.Name)
		}
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("%w: plugin %s: env entry %q is not KEY=value", ErrBadSpec, s.Name, e)
		}
	}
	return nil
}

// Start starts the given plugins, describes and configures them, and
// supervises them until Stop. It fails, leaving none of specs running, if
// a spec is invalid or duplicated, a checksum does not match, a plugin
// does not start, reports another kind or refuses its settings.
func (m *Manager) Start(ctx context.Context, specs ...Spec) error {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return ErrStopped
	}
	seen := map[string]bool{}
	for _, s := range specs {
		if err := s.validate(); err != nil {
			m.mu.Unlock()
			return err
		}
		if seen[s.Name] || m.plugins[s.Name] != nil {
			m.mu.Unlock()
			return fmt.Errorf("%w: plugin %s configured twice", ErrBadSpec, s.Name)
		}
		seen[s.Name] = true
	}
	m.mu.Unlock()

	started := make([]*instance, 0, len(specs))
	for _, s := range specs {
		in := newInstance(m, s)
		if err := in.launch(ctx, s.Settings); err != nil {
			for _, st := range started {
				st.shutdown()
			}
			return fmt.Errorf("start plugin %s: %w", s.Name, err)
		}
		started = append(started, in)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		for _, in := range started {
			in.shutdown()
		}
		return ErrStopped
	}
	for _, in := range started {
		m.plugins[in.spec.Name] = in
		in.supervised.Store(true)
		go in.supervise()
	}
	return nil
}

func (m *Manager) get(name string) (*instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.plugins[name]
	if in == nil {
		return nil, fmt.Errorf("plugin %s: %w", name, ErrUnknownPlugin)
	}
	return in, nil
}

// Gateway returns a handle on the payment-gateway plugin name; the handle
// stays valid across restarts of the plugin.
func (m *Manager) Gateway(name string) (sdk.PaymentGateway, error) {
	in, err := m.get(name)
	if err != nil {
		return nil, err
	}
	if in.spec.Kind != sdk.KindPaymentGateway {
		return nil, fmt.Errorf("plugin %s is a %s: %w", name, in.spec.Kind, ErrWrongKind)
	}
	return &gatewayHandle{handle{in}}, nil
}

// Transport returns a handle on the bank-transport plugin name; the
// handle stays valid across restarts of the plugin.
func (m *Manager) Transport(name string) (sdk.BankTransport, error) {
	in, err := m.get(name)
	if err != nil {
		return nil, err
	}
	if in.spec.Kind != sdk.KindBankTransport {
		return nil, fmt.Errorf("plugin %s is a %s: %w", name, in.spec.Kind, ErrWrongKind)
	}
	return &transportHandle{handle{in}}, nil
}

// JobRunner returns a handle running the jobs of plugin name (any kind).
// RunJob returns an error wrapping sdk.ErrUnsupported for a plugin that
// offers no jobs.
func (m *Manager) JobRunner(name string) (sdk.JobRunner, error) {
	in, err := m.get(name)
	if err != nil {
		return nil, err
	}
	return &handle{in}, nil
}

// Info returns what the plugin said in its last Describe.
func (m *Manager) Info(name string) (sdk.Info, error) {
	in, err := m.get(name)
	if err != nil {
		return sdk.Info{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.info, nil
}

// Status returns the status of every plugin, sorted by name.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	ins := make([]*instance, 0, len(m.plugins))
	for _, in := range m.plugins {
		ins = append(ins, in)
	}
	m.mu.Unlock()
	out := make([]Status, 0, len(ins))
	for _, in := range ins {
		out = append(out, in.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Reconfigure hands new settings to a running plugin (SIGHUP). On error
// the plugin keeps its previous settings, which are also the ones used
// after a restart.
func (m *Manager) Reconfigure(ctx context.Context, name string, settings []byte) error {
	in, err := m.get(name)
	if err != nil {
		return err
	}
	// cfg serialises Reconfigure with restarts, so that a restarted
	// process always gets the settings last accepted.
	select {
	case in.cfg <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("reconfigure plugin %s: %w", name, ctx.Err())
	}
	defer func() { <-in.cfg }()
	raw, err := in.live()
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	if err := raw.Configure(ctx, settings, in.host); err != nil {
		return fmt.Errorf("reconfigure plugin %s: %w", name, in.classify(err))
	}
	in.mu.Lock()
	in.settings = append([]byte(nil), settings...)
	in.mu.Unlock()
	in.log.Info().Msg("plugin reconfigured")
	return nil
}

// Remove stops plugin name and forgets it (a plugin dropped from the
// configuration on reload); handles on it then return *UnavailableError.
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	in := m.plugins[name]
	delete(m.plugins, name)
	m.mu.Unlock()
	if in == nil {
		return fmt.Errorf("remove plugin %s: %w", name, ErrUnknownPlugin)
	}
	done := make(chan struct{})
	go func() {
		in.shutdown()
		close(done)
	}()
	select {
	case <-done:
		in.log.Info().Msg("plugin removed")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("remove plugin %s: %w", name, ctx.Err())
	}
}

// Stop kills every plugin process and waits until each one is reaped, or
// ctx ends (the kills then go on in the background). The Manager cannot be
// started again.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.stopped = true
	ins := make([]*instance, 0, len(m.plugins))
	for _, in := range m.plugins {
		ins = append(ins, in)
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, in := range ins {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in.shutdown()
			}()
		}
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("plugin host stop: %w", ctx.Err())
	}
}

// instance is one configured plugin and its current process.
type instance struct {
	m    *Manager
	spec Spec
	log  zerolog.Logger
	host *storeHost

	mu       sync.Mutex
	state    State
	since    time.Time
	client   *plugin.Client
	raw      rawClient
	info     sdk.Info
	pid      int
	settings []byte
	restarts int
	lastErr  error
	upSince  time.Time

	supervised atomic.Bool
	stopOnce   sync.Once
	stopCh     chan struct{}
	doneCh     chan struct{} // closed when supervise returns
	cfg        chan struct{} // 1-slot semaphore: Reconfigure vs restart
}

func newInstance(m *Manager, s Spec) *instance {
	return &instance{
		m: m, spec: s,
		log:    m.log.With().Str("plugin", s.Name).Logger(),
		host:   &storeHost{state: m.opts.State, plugin: s.Name},
		state:  StateStarting,
		since:  time.Now(),
		stopCh: make(chan struct{}),
		doneCh: make(chan struct{}),
		cfg:    make(chan struct{}, 1),
	}
}

func (in *instance) setState(s State, err error) {
	in.state, in.since = s, time.Now()
	if err != nil {
		in.lastErr = err
	}
	up := 0.0
	if s == StateUp {
		up = 1
	}
	in.m.metrics.up.WithLabelValues(in.spec.Name).Set(up)
}

func (in *instance) status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := Status{Name: in.spec.Name, Kind: in.spec.Kind, State: in.state, Info: in.info, PID: in.pid,
		Restarts: in.restarts, Since: in.since}
	if in.lastErr != nil {
		st.LastError = in.lastErr.Error()
	}
	return st
}

// live returns the current plugin client, or an *UnavailableError.
func (in *instance) live() (rawClient, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.raw == nil || in.state != StateUp {
		return nil, &UnavailableError{Plugin: in.spec.Name, State: in.state}
	}
	return in.raw, nil
}

// checkSum verifies the executable's digest before it is started.
func (in *instance) checkSum() error {
	if in.spec.SHA256 == "" {
		return nil
	}
	f, err := os.Open(in.spec.Path)
	if err != nil {
		return fmt.Errorf("open %s: %w", in.spec.Path, err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash %s: %w", in.spec.Path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, in.spec.SHA256) {
		return fmt.Errorf("%w: %s has sha256 %s, configured %s", ErrChecksum, in.spec.Path, got, strings.ToLower(in.spec.SHA256))
	}
	return nil
}

// inheritedEnv lists the daemon environment variables a plugin inherits.
var inheritedEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", sdk.LogLevelEnv}

func (in *instance) env() []string {
	var env []string
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if d := in.m.opts.SocketDir; d != "" {
		env = append(env, plugin.EnvUnixSocketDir+"="+d)
	}
	return append(env, in.spec.Env...)
}

// launch starts a process, describes and configures it, and makes it the
// live instance. On failure nothing is left running.
func (in *instance) launch(ctx context.Context, settings []byte) error {
	if err := in.checkSum(); err != nil {
		return err
	}
	cmd := exec.Command(in.spec.Path, in.spec.Args...)
	cmd.Env = in.env()
	setProcAttr(cmd)
	zl := in.log
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  pluginrpc.Handshake,
		Plugins:          pluginrpc.PluginMap(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          true,
		SkipHostEnv:      true,
		StartTimeout:     in.m.opts.StartTimeout,
		Logger:           newHCLogAdapter(zl),
		SyncStdout:       &lineWriter{log: func(l string) { relayPluginLine(zl, "stdout", zerolog.WarnLevel, l) }},
		SyncStderr:       &lineWriter{log: func(l string) { relayPluginLine(zl, "stderr", zerolog.InfoLevel, l) }},
		GRPCDialOptions:  pluginrpc.DialOptions(),
	}
	if in.spec.SHA256 != "" {
		sum, _ := hex.DecodeString(in.spec.SHA256)
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cfg)
	fail := func(err error) error {
		client.Kill()
		return err
	}
	proto, err := client.Client()
	if err != nil {
		return fail(fmt.Errorf("handshake with %s: %w", filepath.Base(in.spec.Path), err))
	}
	dispName, _ := pluginrpc.PluginName(in.spec.Kind)
	d, err := proto.Dispense(dispName)
	if err != nil {
		return fail(fmt.Errorf("dispense %s: %w", dispName, err))
	}
	raw, ok := d.(rawClient)
	if !ok {
		return fail(fmt.Errorf("dispense %s: unexpected client %T", dispName, d))
	}
	cctx, cancel := context.WithTimeout(ctx, in.m.opts.CallTimeout)
	defer cancel()
	info, err := raw.Describe(cctx)
	if errors.Is(err, sdk.ErrUnsupported) {
		return fail(fmt.Errorf("%w: the plugin does not serve %s: %v", ErrWrongKind, in.spec.Kind, err))
	}
	if err != nil {
		return fail(fmt.Errorf("describe: %w", err))
	}
	if info.Kind != in.spec.Kind {
		return fail(fmt.Errorf("%w: configured as %s, plugin says %s", ErrWrongKind, in.spec.Kind, info.Kind))
	}
	if err := raw.Configure(cctx, settings, in.host); err != nil {
		raw.Close()
		return fail(fmt.Errorf("configure: %w", err))
	}
	pid := 0
	if cmd.Process != nil {
		pid = cmd.Process.Pid
	}
	in.mu.Lock()
	in.client, in.raw, in.info, in.pid = client, raw, info, pid
	in.settings = append([]byte(nil), settings...)
	in.upSince = time.Now()
	in.setState(StateUp, nil)
	in.mu.Unlock()
	in.log.Info().Str("plugin_name", info.Name).Str("version", info.Version).Int("pid", pid).Msg("plugin started")
	return nil
}

// teardown kills the current process (if any) and marks the plugin as s.
func (in *instance) teardown(s State, cause error) {
	in.mu.Lock()
	client, raw := in.client, in.raw
	in.client, in.raw, in.pid = nil, nil, 0
	in.setState(s, cause)
	in.mu.Unlock()
	if raw != nil {
		raw.Close()
	}
	if client != nil {
		client.Kill() // waits for the process to be reaped
	}
}

// shutdown stops supervision and kills the process.
func (in *instance) shutdown() {
	in.stopOnce.Do(func() { close(in.stopCh) })
	if in.supervised.Load() {
		<-in.doneCh
	}
	in.teardown(StateStopped, nil)
}

// supervise watches the process: it restarts it with backoff when it dies
// or fails its health checks, until stopCh is closed.
func (in *instance) supervise() {
	defer close(in.doneCh)
	backoff := in.m.opts.BackoffMin
	ticker := time.NewTicker(in.m.opts.HealthInterval)
	defer ticker.Stop()
	failures := 0
	for {
		in.mu.Lock()
		raw := in.raw
		in.mu.Unlock()
		var exited <-chan struct{}
		if raw != nil {
			exited = raw.Done()
		}
		var cause error
		select {
		case <-in.stopCh:
			return
		case <-exited:
			cause = errors.New("plugin process exited")
		case <-ticker.C:
			if raw == nil {
				continue
			}
			if in.healthy(raw) {
				failures = 0
				continue
			}
			failures++
			if failures < in.m.opts.HealthFailures {
				continue
			}
			cause = fmt.Errorf("plugin failed %d health checks in a row", failures)
		}
		failures = 0
		in.mu.Lock()
		if time.Since(in.upSince) >= in.m.opts.BackoffMax {
			backoff = in.m.opts.BackoffMin
		}
		in.mu.Unlock()
		in.log.Warn().Err(cause).Dur("backoff", backoff).Msg("plugin down, restarting")
		in.teardown(StateRestarting, cause)
		for {
			select {
			case <-in.stopCh:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, in.m.opts.BackoffMax)
			in.m.metrics.restarts.WithLabelValues(in.spec.Name).Inc()
			in.cfg <- struct{}{}
			in.mu.Lock()
			settings := in.settings
			in.restarts++
			in.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), in.m.opts.StartTimeout+in.m.opts.CallTimeout)
			err := in.launch(ctx, settings)
			cancel()
			<-in.cfg
			if err == nil {
				break
			}
			in.mu.Lock()
			in.setState(StateRestarting, err)
			in.mu.Unlock()
			in.log.Error().Err(err).Dur("backoff", backoff).Msg("plugin restart failed")
		}
	}
}

// healthy runs one health check; only a transport failure (the process
// does not answer) counts as unhealthy: a plugin reporting that its bank
// is unreachable is running fine.
func (in *instance) healthy(raw rawClient) bool {
	ctx, cancel := context.WithTimeout(context.Background(), in.m.opts.HealthTimeout)
	defer cancel()
	err := raw.Health(ctx)
	if err == nil {
		return true
	}
	var re *pluginrpc.RemoteError
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &re) && re.Unavailable()) {
		in.log.Warn().Err(err).Msg("plugin health check failed")
		return false
	}
	in.log.Debug().Err(err).Msg("plugin reports unhealthy")
	return true
}

// classify turns an error from the live client into the error callers
// see: a broken connection becomes an *UnavailableError.
func (in *instance) classify(err error) error {
	var re *pluginrpc.RemoteError
	if errors.As(err, &re) && re.Unavailable() {
		return &UnavailableError{Plugin: in.spec.Name, State: StateRestarting, Cause: err}
	}
	return err
}
