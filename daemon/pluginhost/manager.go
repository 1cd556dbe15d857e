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
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/boundedre"
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
	// MaxProcs, when positive, is the process's GOMAXPROCS (not inherited
	// from the daemon otherwise): 1 saves the thread wake-ups of an idle
	// second P on every call, about a sixth of the CPU of a round trip.
	MaxProcs int
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
	// SocketDir holds every go-plugin unix socket, e.g. the daemon's
	// runtime directory: each plugin process gets a folder of its own in
	// it (go-plugin's UnixSocketConfig.TempDir, PLUGIN_UNIX_SOCKET_DIR for
	// the plugin) for its socket and the daemon's broker socket serving its
	// Host callbacks, removed when the process is stopped or restarted.
	// New creates SocketDir (0700) and removes what killed processes left
	// there (sockets nobody listens on, then their folders). The path must
	// leave room for go-plugin's names in the 107 bytes of a unix socket
	// path (MaxSocketDirLen). Empty: the system temporary directory,
	// cleaned only when the process stops normally.
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
		if err := privateDir(opts.SocketDir, opts.Logger); err != nil {
			return nil, err
		}
		cleanStaleSockets(opts.SocketDir, opts.Logger)
	}
	return &Manager{opts: opts, log: opts.Logger, metrics: met, plugins: map[string]*instance{}}, nil
}

// pluginSocketDirPrefix names the per-process folders go-plugin creates in
// Options.SocketDir (os.MkdirTemp(dir, "plugin-dir")): each holds the
// plugin's socket and the daemon's broker socket for its Host callbacks.
const pluginSocketDirPrefix = "plugin-dir"

// MaxSocketDirLen is the longest Options.SocketDir that leaves room, in
// the 107 bytes of a unix socket path (sun_path without its NUL), for
// go-plugin's per-process folder and socket names ("/plugin-dir" and
// "/plugin" each followed by up to 10 random digits).
const MaxSocketDirLen = 107 - len("/"+pluginSocketDirPrefix+"0123456789/plugin0123456789")

// emptyDirGrace keeps an empty per-process folder younger than this at
// start: it may belong to another daemon sharing the directory whose
// plugin is still starting (its handshake is bounded by StartTimeout).
const emptyDirGrace = 2 * time.Minute

// cleanStaleSockets removes the unix sockets of dir, and of go-plugin's
// per-process folders in it, that nobody listens on (a plugin or daemon
// killed with SIGKILL cannot remove its own), and the per-process folders
// left empty; live sockets, of another process sharing the directory, and
// the folders holding them are kept.
func cleanStaleSockets(dir string, log zerolog.Logger) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		log.Warn().Err(err).Str("dir", dir).Msg("plugin socket directory not readable")
		return
	}
	removed, dirs := 0, 0
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&os.ModeSocket != 0:
			if removeStaleSocket(p) {
				removed++
			}
		case e.IsDir() && strings.HasPrefix(e.Name(), pluginSocketDirPrefix):
			fi, err := e.Info()
			if err != nil {
				continue
			}
			sub, err := os.ReadDir(p)
			if err != nil {
				log.Warn().Err(err).Str("dir", p).Msg("plugin socket directory not readable")
				continue
			}
			stale := 0
			for _, se := range sub {
				if se.Type()&os.ModeSocket != 0 && removeStaleSocket(filepath.Join(p, se.Name())) {
					stale++
				}
			}
			removed += stale
			if stale == 0 && time.Since(fi.ModTime()) < emptyDirGrace {
				continue
			}
			if os.Remove(p) == nil { // only if nothing live is left in it
				dirs++
			}
		}
	}
	if removed > 0 || dirs > 0 {
		log.Info().Int("sockets", removed).Int("folders", dirs).Str("dir", dir).Msg("stale plugin sockets removed")
	}
}

// privateDir creates dir (0700) or checks that the existing one belongs to
// this process's user, and takes group and other access away from it. A
// folder someone else created (the short fallback folder has a predictable
// name in the system temporary directory) is refused: its owner could
// remove or replace the plugins' socket folders.
func privateDir(dir string, log zerolog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("plugin socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("plugin socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("plugin socket directory %s: not a directory (%s)", dir, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("plugin socket directory %s belongs to uid %d, not to this daemon's uid %d: remove it or choose another state folder", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("plugin socket directory %s: restrict to 0700: %w", dir, err)
		}
		log.Warn().Str("dir", dir).Str("was", fi.Mode().Perm().String()).Msg("plugin socket directory restricted to its owner (0700)")
	}
	return nil
}

// removeStaleSocket removes the unix socket p if nobody accepts
// connections on it, and reports whether it did.
func removeStaleSocket(p string) bool {
	if c, err := net.DialTimeout("unix", p, 200*time.Millisecond); err == nil {
		c.Close()
		return false
	}
	return os.Remove(p) == nil
}

var nameRE = boundedre.MustCompile(`^[a-z0-9][a-z0-9_-]*$`, 1, 63)

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
	if s.MaxProcs < 0 {
		return fmt.Errorf("%w: plugin %s: negative MaxProcs %d", ErrBadSpec, s.Name, s.MaxProcs)
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
		m.removeSocketDir()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("plugin host stop: %w", ctx.Err())
	}
}

// removeSocketDir removes Options.SocketDir once every plugin is stopped,
// if nothing is left in it: go-plugin removes each per-process folder when
// it stops that process, and the folder itself is made again at the next
// start. Without this, the short fallback folder in the system temporary
// directory (shortSocketDir in the server) outlived every daemon whose
// state folder was too deep for unix socket paths. A folder still holding
// anything (another daemon's live sockets) is kept.
func (m *Manager) removeSocketDir() {
	dir := m.opts.SocketDir
	if dir == "" {
		return
	}
	if err := os.Remove(dir); err == nil {
		m.log.Debug().Str("dir", dir).Msg("plugin socket directory removed")
	}
}
