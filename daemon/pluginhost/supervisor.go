// The per-plugin supervisor: an instance starts its plugin process (after
// the checksum), configures it, checks its health and restarts it with
// backoff; the Manager (manager.go) holds the instances by name.

package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	plugin "github.com/hashicorp/go-plugin"
	"github.com/rs/zerolog"

	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

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
	if in.spec.MaxProcs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(in.spec.MaxProcs))
	}
	return append(env, in.spec.Env...)
}

// launch starts a process, describes and configures it, and makes it the
// live instance. On failure nothing is left running.
func (in *instance) launch(ctx context.Context, settings []byte) error {
	if err := in.checkSum(); err != nil {
		return err
	}
	zl := in.log
	var st started
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  pluginrpc.Handshake,
		Plugins:          pluginrpc.PluginMap(),
		RunnerFunc:       in.runnerFunc(&st),
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: in.m.opts.SocketDir},
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
	client := plugin.NewClient(cfg)
	fail := func(err error) error {
		client.Kill()
		if st.sockDir != "" {
			_ = os.RemoveAll(st.sockDir)
		}
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
	if st.run != nil {
		pid = st.run.pid
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
