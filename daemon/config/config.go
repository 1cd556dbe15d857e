// Package config loads acquit's YAML configuration strictly: unknown keys,
// bad values and failed checks are all reported, each as "file:line:
// message", in one *Errors.
//
// String values may use ${VAR} and ${VAR:-default}. Secrets are never
// written in the file: a secret value is one of
//
//	!file /path/to/secret        the file's content (one trailing newline trimmed)
//	!credential name             $CREDENTIALS_DIRECTORY/name (systemd LoadCredential=)
//	!env NAME                    the environment variable NAME
//
// and is held in a Secret, which never prints its value.
//
// Relative paths (state.path, scripts.dir, plugins[].path, !file) are
// resolved against the working directory (Options.Dir), and stored
// absolute in Config.
//
// To add a block for a new feature, add a struct type with `yaml` tags and
// doc comments, a field in Config, its defaults in defaults() and its checks
// in validate(); the decoder handles strings, bools, integers,
// time.Duration, Size, Secret, netip.Prefix, slices, maps and nested
// structs.
package config

import (
	"maps"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/schedule"
)

// Config is acquit's whole configuration.
type Config struct {
	// Instance names this daemon instance (default: the host name). It is
	// recorded with schedule runs and event leases, so it must differ
	// between instances sharing one PostgreSQL database.
	Instance string `yaml:"instance"`
	// State selects the database.
	State State `yaml:"state"`
	// Listen configures the public and admin HTTP listeners.
	Listen Listen `yaml:"listen"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// Scripts configures the Lua engine.
	Scripts Scripts `yaml:"scripts"`
	// Hooks bind event types to Lua functions.
	Hooks []Hook `yaml:"hooks"`
	// Events configures the outbox dispatcher.
	Events Events `yaml:"events"`
	// Plugins lists the bank plugins to start.
	Plugins []Plugin `yaml:"plugins"`
	// Schedules lists the cron jobs.
	Schedules []Schedule `yaml:"schedules"`
	// Payments configures card payments (the Atos/Sips feature).
	Payments Payments `yaml:"payments"`
	// Banks lists the banks files are sent to (the EBICS feature).
	Banks []Bank `yaml:"banks"`
	// Transmissions configures what every bank's transfers share.
	Transmissions Transmissions `yaml:"transmissions"`

	// File is the absolute path the configuration was loaded from.
	File string `yaml:"-"`
}

// State selects and locates the database.
type State struct {
	// Driver is "sqlite" (default) or "postgres".
	Driver string `yaml:"driver"`
	// Path is the SQLite file (default $STATE_DIRECTORY/acquit.db under
	// systemd, else /var/lib/acquit/acquit.db). Used with driver sqlite.
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string (a secret, it holds the
	// password). Required with driver postgres.
	DSN Secret `yaml:"dsn"`
	// Spool is where files to send are kept until the bank took them
	// (default: "spool" beside the SQLite file).
	Spool string `yaml:"spool"`
	// RawRetention is how long a raw input that nothing verified (refused,
	// or its verification never finished) is kept before it is pruned
	// (default 720h; 0 keeps every raw input forever; at least 24h).
	// Verified inputs, and inputs a payment, acknowledgement or history
	// row names, are kept forever.
	RawRetention time.Duration `yaml:"raw_retention"`
}

// MinRawRetention is the shortest state.raw_retention accepted (other than
// 0): a refused input stays at least a day for whoever investigates it.
const MinRawRetention = 24 * time.Hour

// Listen configures both HTTP listeners.
type Listen struct {
	// Public is the listener banks and customers' browsers reach.
	Public Public `yaml:"public"`
	// Admin is the listener of the CLI, /metrics and health probes.
	Admin Admin `yaml:"admin"`
}

// Public configures the public listener.
type Public struct {
	// Addr is the TCP address (default ":8080").
	Addr string `yaml:"addr"`
	// MaxBodyBytes bounds request bodies (default 64KiB).
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// ReadHeaderTimeout bounds reading request headers (default 5s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request (default 10s).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response (default 10s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout bounds keep-alive idle connections (default 60s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// (default none). A bare address means a /32 or /128.
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
	// BaseURL is the public https URL of this listener, used to build the
	// notification URLs given to payment providers.
	BaseURL string `yaml:"base_url"`
}

// Admin configures the admin listener.
type Admin struct {
	// Addr is "host:port" (loopback advised) or "unix:/path/to/socket"
	// (default "127.0.0.1:8081").
	Addr string `yaml:"addr"`
	// Token is the bearer token the CLI presents (required).
	Token Secret `yaml:"token"`
	// Dashboard configures the web dashboard served under /ui/.
	Dashboard Dashboard `yaml:"dashboard"`
}

// Dashboard configures the web dashboard of the admin listener. It uses the
// admin token: sent as a bearer token, or typed once in its login form,
// which sets a session cookie.
type Dashboard struct {
	// Disabled turns the dashboard off (it is served by default).
	Disabled bool `yaml:"disabled"`
	// Timezone is the IANA time zone the dashboard shows times in
	// (default: the daemon's local zone, $TZ or /etc/localtime).
	Timezone string `yaml:"timezone"`
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// Log configures logging.
type Log struct {
	// Level is trace, debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is auto (default: console on a terminal, JSON otherwise),
	// json or console.
	Format string `yaml:"format"`
}

// Scripts configures the Lua engine.
type Scripts struct {
	// Dir holds the Lua scripts (default "scripts").
	Dir string `yaml:"dir"`
	// Timeout bounds one hook call (default 5s).
	Timeout time.Duration `yaml:"timeout"`
	// PoolSize is the number of Lua states kept ready (default 4).
	PoolSize int `yaml:"pool_size"`
	// MemoryBudget bounds the memory of the Lua states (default 256MiB).
	MemoryBudget Size `yaml:"memory_budget"`
	// HTTPAllow lists the loopback and private addresses or CIDR ranges
	// the hooks' http module may connect to (default none: only public
	// addresses; link-local ones and the admin listener never).
	HTTPAllow []string `yaml:"http_allow"`
	// Values is exposed to scripts as the "config" module. Values are
	// string, int64, float64, bool, nil, []any, map[string]any or Secret
	// (for tagged secrets; call Reveal when building the Lua value).
	Values map[string]any `yaml:"values"`
}

// Hook binds event types to a Lua function.
type Hook struct {
	// Events are event-type patterns ("payment.*", "transmission.rejected",
	// "*"); path.Match syntax.
	Events []string `yaml:"events"`
	// Script is the file in Scripts.Dir (relative name, as written).
	Script string `yaml:"script"`
	// Function is the global Lua function called with the event.
	Function string `yaml:"function"`
}

// Events configures the outbox dispatcher.
type Events struct {
	// Workers is the number of concurrent deliveries (default 4).
	Workers int `yaml:"workers"`
	// MaxAttempts before an event is dead (default 20).
	MaxAttempts int `yaml:"max_attempts"`
	// PoisonAfter dead-letters an event whose last PoisonAfter deliveries
	// were all in flight when the process died (a hook that kills the
	// daemon must not kill it again on every restart); default 3, a
	// negative value disables the check.
	PoisonAfter int `yaml:"poison_after"`
	// MaxAge after which a failing event is dead (default 72h).
	MaxAge time.Duration `yaml:"max_age"`
	// BackoffBase is the first retry delay (default 1s), doubled each time.
	BackoffBase time.Duration `yaml:"backoff_base"`
	// BackoffMax caps the retry delay (default 1h).
	BackoffMax time.Duration `yaml:"backoff_max"`
	// PollInterval is how often the outbox is polled when idle (default 1s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// Retention is how long delivered events are kept (dead ones are kept
	// until replayed); default 720h (30 days), 0 keeps them forever.
	Retention time.Duration `yaml:"retention"`
	// Lease is how long a delivering instance holds an event before
	// another may take it over if the first died (default 30s; renewed
	// while the hook runs).
	Lease time.Duration `yaml:"lease"`
}

// Plugin is one bank plugin process.
type Plugin struct {
	// Name is the plugin's short name ("atos", "ebics"), unique; jobs are
	// named "<name>.<job>".
	Name string `yaml:"name"`
	// Path is the plugin executable (absolute after loading).
	Path string `yaml:"path"`
	// SHA256 pins the executable's checksum (hex, optional): the daemon
	// refuses a different file.
	SHA256 string `yaml:"sha256"`
	// Settings is the plugin's free-form settings block, handed to the
	// plugin as JSON with secrets resolved.
	Settings Settings `yaml:"settings"`
	// MaxProcs is the plugin process's GOMAXPROCS (0: Go's default, one
	// per CPU). 1 makes each call to the plugin cheaper (fewer thread
	// wake-ups per gRPC round trip) at the price of running the plugin's
	// own work on one CPU at a time.
	MaxProcs int `yaml:"max_procs"`
}

// Schedule is one cron job.
type Schedule struct {
	// Name is unique; runs are recorded under it.
	Name string `yaml:"name"`
	// Cron is the spec: 5 fields, 6 with seconds first, or a descriptor
	// (@hourly, @daily, @every 5m). A CRON_TZ= prefix is accepted.
	Cron string `yaml:"cron"`
	// Timezone is an IANA zone (default: the local zone).
	Timezone string `yaml:"timezone"`
	// Job is "<plugin>.<job>" or "lua".
	Job string `yaml:"job"`
	// Params are passed to the job.
	Params map[string]string `yaml:"params"`
	// Script is the Lua file (job "lua").
	Script string `yaml:"script"`
	// Function is the Lua function (job "lua").
	Function string `yaml:"function"`
	// Timeout bounds one run (default 10m).
	Timeout time.Duration `yaml:"timeout"`
}

// Payments configures card payments.
type Payments struct {
	// ReconcileAfter is how long a payment may stay pending before acquit
	// asks the provider (default 15m).
	ReconcileAfter time.Duration `yaml:"reconcile_after"`
	// FinalDeadline is when a still-unknown payment raises an alert
	// (default 24h).
	FinalDeadline time.Duration `yaml:"final_deadline"`
	// Gateway is the plugin handling payments (optional; a configured
	// plugin).
	Gateway string `yaml:"gateway"`
	// Gateways are further payment gateway plugins taking payments beside
	// Gateway (a payment names its gateway when it starts; Gateway is the
	// default). Each gets its "<plugin>.reconcile" job.
	Gateways []string `yaml:"gateways"`
	// RecheckEvery is the first delay before asking the provider again
	// about a payment whose answer was not final; it doubles per check
	// (default 5m).
	RecheckEvery time.Duration `yaml:"recheck_every"`
	// FallbackReturnURL is where a returning customer goes when nothing is
	// known about the payment (optional).
	FallbackReturnURL string `yaml:"fallback_return_url"`
	// NotifyRate is how many notifications per second one client address
	// may send to /notify/... (token bucket of NotifyBurst); more are
	// answered 429 and not stored. 0 = no limit (default 20).
	NotifyRate int `yaml:"notify_rate"`
	// NotifyBurst is the bucket size of NotifyRate (default 200).
	NotifyBurst int `yaml:"notify_burst"`
	// RefusedBodyKeep is how much of a notification body refused before
	// verification (oversized, not UTF-8) is kept (default 4KiB).
	RefusedBodyKeep Size `yaml:"refused_body_keep"`
}

// Transmissions configures the file transfers of every bank.
type Transmissions struct {
	// MaxDocumentSize is the largest downloaded document (acknowledgement,
	// statement) acquit stores (default 2GiB). A larger one is refused
	// (the bank delivers it again): the EBICS plugin fails the download
	// (it is given the limit in sdk.DownloadRequest.MaxSize); one a plugin
	// hands over anyway is counted in
	// acquit_acks_rejected_input_total{reason="too_large"}. Documents go
	// from the plugin to the store through a spool file, so the limit is
	// the disk, not memory.
	MaxDocumentSize Size `yaml:"max_document_size"`
}

// Bank is one bank files are sent to.
type Bank struct {
	// Name is unique ("demo", "bnp").
	Name string `yaml:"name"`
	// Plugin is the configured plugin that talks to the bank.
	Plugin string `yaml:"plugin"`
	// AckDeadline is how long a transmission may wait for its
	// acknowledgement before an alert (default 24h).
	AckDeadline time.Duration `yaml:"ack_deadline"`
	// AckKinds are the acknowledgement kinds the bank offers and acquit
	// downloads with the fetch_acks job: psr, hac, ptk (default psr).
	AckKinds []string `yaml:"ack_kinds"`
	// PTKProfile names the PTK line patterns of the bank: de, en, fr
	// (default de).
	PTKProfile string `yaml:"ptk_profile"`
	// OutboxDir, when set, is watched: *.xml files dropped there are sent
	// to the bank, then moved to sent/ or failed/.
	OutboxDir string `yaml:"outbox_dir"`
	// Function is the business function of files from the outbox folder
	// and of uploads that name none (default sct).
	Function string `yaml:"function"`
}

// defaultStatePath is the SQLite file when state.path is not set.
const defaultStatePath = "/var/lib/acquit/acquit.db"

// defaults returns a Config holding every default.
func defaults(lookup func(string) (string, bool), hostname func() (string, error)) *Config {
	c := &Config{}
	if h, err := hostname(); err == nil {
		c.Instance = h
	}
	c.State.Driver = "sqlite"
	c.State.Path = defaultStatePath
	c.State.RawRetention = 720 * time.Hour
	if d, ok := lookup("STATE_DIRECTORY"); ok && d != "" {
		// systemd may pass several directories separated by ':'.
		d, _, _ = strings.Cut(d, ":")
		c.State.Path = d + "/acquit.db"
	}
	c.Listen.Public = Public{
		Addr:              ":8080",
		MaxBodyBytes:      64 * KiB,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	c.Listen.Admin.Addr = "127.0.0.1:8081"
	c.Listen.Admin.Dashboard.SessionTTL = 12 * time.Hour
	c.Log = Log{Level: "info", Format: "auto"}
	c.Scripts = Scripts{Dir: "scripts", Timeout: 5 * time.Second, PoolSize: 4, MemoryBudget: 256 * MiB}
	c.Events = Events{Workers: 4, MaxAttempts: 20, PoisonAfter: 3, MaxAge: 72 * time.Hour, BackoffBase: time.Second,
		BackoffMax: time.Hour, PollInterval: time.Second, Retention: 720 * time.Hour, Lease: 30 * time.Second}
	c.Transmissions = Transmissions{MaxDocumentSize: 2 * GiB}
	c.Payments = Payments{ReconcileAfter: 15 * time.Minute, FinalDeadline: 24 * time.Hour, RecheckEvery: 5 * time.Minute,
		NotifyRate: 20, NotifyBurst: 200, RefusedBodyKeep: 4 * KiB}
	return c
}

// setDefaults fills the defaults of a schedule decoded from a list.
func (s *Schedule) setDefaults() { s.Timeout = 10 * time.Minute }

// setDefaults fills the defaults of a bank decoded from a list.
func (b *Bank) setDefaults() {
	b.AckDeadline = 24 * time.Hour
	b.AckKinds = []string{"psr"}
	b.PTKProfile = "de"
	b.Function = "sct"
}

// Plugin returns the configured plugin named name.
func (c *Config) Plugin(name string) (*Plugin, bool) {
	for i := range c.Plugins {
		if c.Plugins[i].Name == name {
			return &c.Plugins[i], true
		}
	}
	return nil, false
}

// ScheduleEntries converts the schedules for schedule.New. For job "lua"
// the params also hold "script" (absolute path) and "function".
func (c *Config) ScheduleEntries() []schedule.Entry {
	out := make([]schedule.Entry, 0, len(c.Schedules))
	for _, s := range c.Schedules {
		params := maps.Clone(s.Params)
		if s.Job == "lua" {
			if params == nil {
				params = map[string]string{}
			}
			params["script"] = filepath.Join(c.Scripts.Dir, s.Script)
			params["function"] = s.Function
		}
		out = append(out, schedule.Entry{Name: s.Name, Spec: s.Cron, Timezone: s.Timezone, Job: s.Job,
			Params: params, Timeout: s.Timeout})
	}
	return out
}
