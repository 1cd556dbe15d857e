package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acquit/acquit/daemon/schedule"
	"github.com/acquit/acquit/internal/boundedre"
)

// The length bounds are checked apart from the patterns (boundedre): the
// bounded forms held about 290 KB of heap for the daemon's lifetime.
var (
	nameRE     = boundedre.MustCompile(`^[a-z][a-z0-9_-]*$`, 1, 63)
	schedRE    = boundedre.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`, 1, 128)
	instanceRE = boundedre.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`, 1, 63)
	luaIdentRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
	hexRE      = boundedre.MustCompile(`^[0-9a-fA-F]*$`, 64, 64)
	funcRE     = boundedre.MustCompile(`^[A-Za-z0-9_.-]*$`, 1, 32)
)

// maxPluginProcs bounds plugins[].max_procs.
const maxPluginProcs = 1024

// at reports a problem at the line of path, the message prefixed with the
// key path.
func (d *decoder) at(p, format string, args ...any) {
	if d.failed[p] {
		return
	}
	d.errs.add(d.file, d.line(p), p+": "+format, args...)
}

func (d *decoder) positive(p string, v time.Duration) {
	if v <= 0 {
		d.at(p, "must be positive, not %s", v)
	}
}

func (d *decoder) validate(c *Config) {
	if c.Instance == "" {
		if h, err := d.opts.Hostname(); err == nil {
			c.Instance = h
		}
	}
	if c.Instance == "" {
		d.at("instance", "is required (the host name could not be read)")
	} else if !instanceRE.MatchString(c.Instance) {
		d.at("instance", "invalid name %q (letters, digits, '.', '_', '-'; at most 63)", c.Instance)
	}

	switch c.State.Driver {
	case "sqlite":
		if c.State.Path == "" {
			d.at("state.path", "is required with driver sqlite")
		} else {
			c.State.Path = d.abs(c.State.Path)
		}
		if c.State.Spool != "" {
			c.State.Spool = d.abs(c.State.Spool)
		}
	case "postgres":
		if !c.State.DSN.IsSet() {
			d.at("state.dsn", "is required with driver postgres (e.g. dsn: !credential postgres-dsn)")
		}
		if c.State.Spool != "" {
			c.State.Spool = d.abs(c.State.Spool)
		}
	default:
		d.at("state.driver", "must be sqlite or postgres, not %q", c.State.Driver)
	}
	if r := c.State.RawRetention; r < 0 || (r > 0 && r < MinRawRetention) {
		d.at("state.raw_retention", "must be 0 (keep every raw input) or at least %s, not %s", MinRawRetention, r)
	}

	d.validateListen(&c.Listen)

	if !slices.Contains([]string{"trace", "debug", "info", "warn", "error"}, c.Log.Level) {
		d.at("log.level", "must be trace, debug, info, warn or error, not %q", c.Log.Level)
	}
	if !slices.Contains([]string{"auto", "json", "console"}, c.Log.Format) {
		d.at("log.format", "must be auto, json or console, not %q", c.Log.Format)
	}

	s := &c.Scripts
	s.Dir = d.abs(s.Dir)
	scriptsOK := true
	if !d.opts.SkipPathChecks {
		if fi, err := os.Stat(s.Dir); err != nil {
			d.at("scripts.dir", "%s: %s", s.Dir, describeFSError(err))
			scriptsOK = false
		} else if !fi.IsDir() {
			d.at("scripts.dir", "%s is not a directory", s.Dir)
			scriptsOK = false
		}
	}
	d.positive("scripts.timeout", s.Timeout)
	if s.PoolSize < 1 || s.PoolSize > 1024 {
		d.at("scripts.pool_size", "must be between 1 and 1024, not %d", s.PoolSize)
	}
	for i, a := range s.HTTPAllow {
		if _, err := netip.ParsePrefix(a); err != nil {
			if _, err := netip.ParseAddr(a); err != nil {
				d.at(fmt.Sprintf("scripts.http_allow[%d]", i), "%q is not an address or a CIDR prefix (127.0.0.1, 10.0.0.0/8)", a)
			}
		}
	}
	if s.MemoryBudget < MiB {
		d.at("scripts.memory_budget", "must be at least 1MiB, not %s", s.MemoryBudget)
	}

	for i, h := range c.Hooks {
		p := fmt.Sprintf("hooks[%d]", i)
		if len(h.Events) == 0 {
			d.at(p+".events", "at least one event pattern is required")
		}
		for j, e := range h.Events {
			if _, err := path.Match(e, ""); err != nil || e == "" || strings.ContainsAny(e, " \t") {
				d.at(fmt.Sprintf("%s.events[%d]", p, j), "invalid event pattern %q", e)
			}
		}
		d.script(p, h.Script, s.Dir, scriptsOK)
		d.function(p, h.Function)
	}

	e := c.Events
	if e.Workers < 1 || e.Workers > 1024 {
		d.at("events.workers", "must be between 1 and 1024, not %d", e.Workers)
	}
	if e.MaxAttempts < 1 {
		d.at("events.max_attempts", "must be at least 1, not %d", e.MaxAttempts)
	}
	d.positive("events.max_age", e.MaxAge)
	d.positive("events.backoff_base", e.BackoffBase)
	d.positive("events.backoff_max", e.BackoffMax)
	d.positive("events.poll_interval", e.PollInterval)
	if e.BackoffBase > e.BackoffMax {
		d.at("events.backoff_base", "%s is larger than backoff_max %s", e.BackoffBase, e.BackoffMax)
	}

	plugins := map[string]bool{}
	var pluginNames []string
	for i := range c.Plugins {
		pl := &c.Plugins[i]
		p := fmt.Sprintf("plugins[%d]", i)
		switch {
		case pl.Name == "":
			d.at(p+".name", "is required")
		case !nameRE.MatchString(pl.Name):
			d.at(p+".name", "invalid name %q (lower-case letters, digits, '_', '-')", pl.Name)
		case plugins[pl.Name]:
			d.at(p+".name", "duplicate plugin name %q", pl.Name)
		default:
			plugins[pl.Name] = true
			pluginNames = append(pluginNames, pl.Name)
		}
		if pl.SHA256 != "" && !hexRE.MatchString(pl.SHA256) {
			d.at(p+".sha256", "must be 64 hexadecimal digits")
		}
		if pl.MaxProcs < 0 || pl.MaxProcs > maxPluginProcs {
			d.at(p+".max_procs", "must be between 0 (Go's default) and %d, got %d", maxPluginProcs, pl.MaxProcs)
		}
		if pl.Path == "" {
			d.at(p+".path", "is required")
			continue
		}
		pl.Path = d.abs(pl.Path)
		if d.opts.SkipPathChecks {
			continue
		}
		fi, err := os.Stat(pl.Path)
		switch {
		case err != nil:
			d.at(p+".path", "%s: %s", pl.Path, describeFSError(err))
			continue
		case !fi.Mode().IsRegular():
			d.at(p+".path", "%s is not a regular file", pl.Path)
			continue
		case fi.Mode().Perm()&0o111 == 0:
			d.at(p+".path", "%s is not executable", pl.Path)
		case fi.Mode().Perm()&0o002 != 0:
			d.at(p+".path", "%s is writable by everyone: anyone could replace the plugin", pl.Path)
		}
		if pl.SHA256 != "" && hexRE.MatchString(pl.SHA256) {
			sum, err := fileSHA256(pl.Path)
			if err != nil {
				d.at(p+".sha256", "%s: %v", pl.Path, err)
			} else if !strings.EqualFold(sum, pl.SHA256) {
				d.at(p+".sha256", "checksum mismatch: %s has sha256 %s", pl.Path, sum)
			}
		}
	}
	known := "none configured"
	if len(pluginNames) > 0 {
		known = "configured: " + strings.Join(pluginNames, ", ")
	}

	names := map[string]bool{}
	for i := range c.Schedules {
		sc := &c.Schedules[i]
		p := fmt.Sprintf("schedules[%d]", i)
		switch {
		case sc.Name == "":
			d.at(p+".name", "is required")
		case !schedRE.MatchString(sc.Name):
			d.at(p+".name", "invalid name %q (letters, digits, '.', '_', '-')", sc.Name)
		case names[sc.Name]:
			d.at(p+".name", "duplicate schedule name %q", sc.Name)
		default:
			names[sc.Name] = true
		}
		loc := time.Local
		if sc.Timezone != "" {
			l, err := schedule.LoadLocation(sc.Timezone)
			if err != nil {
				d.at(p+".timezone", "unknown time zone %q", sc.Timezone)
			} else {
				loc = l
			}
		}
		if sc.Cron == "" {
			d.at(p+".cron", "is required")
		} else if _, err := schedule.Parse(sc.Cron, loc); err != nil {
			d.at(p+".cron", "%v", err)
		}
		d.positive(p+".timeout", sc.Timeout)
		switch {
		case sc.Job == "":
			d.at(p+".job", "is required (\"<plugin>.<job>\" or \"lua\")")
		case sc.Job == "lua":
			d.script(p, sc.Script, s.Dir, scriptsOK)
			d.function(p, sc.Function)
		case slices.Contains(d.opts.ExtraJobs, sc.Job):
		default:
			plug, job, ok := strings.Cut(sc.Job, ".")
			if !ok || plug == "" || job == "" || strings.Contains(job, ".") {
				d.at(p+".job", "must be \"<plugin>.<job>\" or \"lua\", not %q", sc.Job)
			} else if !plugins[plug] {
				d.at(p+".job", "unknown plugin %q (%s)", plug, known)
			}
			if sc.Script != "" || sc.Function != "" {
				d.at(p+".job", "script and function only apply to job \"lua\"")
			}
		}
	}

	if c.Transmissions.MaxDocumentSize < 1 {
		d.at("transmissions.max_document_size", "must be at least 1 byte")
	}

	pay := c.Payments
	d.positive("payments.reconcile_after", pay.ReconcileAfter)
	d.positive("payments.final_deadline", pay.FinalDeadline)
	d.positive("payments.recheck_every", pay.RecheckEvery)
	if pay.NotifyRate < 0 {
		d.at("payments.notify_rate", "must be >= 0 (0 = no limit)")
	}
	if pay.NotifyBurst < 1 {
		d.at("payments.notify_burst", "must be >= 1")
	}
	if pay.RefusedBodyKeep < 0 {
		d.at("payments.refused_body_keep", "must be >= 0")
	}
	if pay.Gateway != "" && !plugins[pay.Gateway] {
		d.at("payments.gateway", "unknown plugin %q (%s)", pay.Gateway, known)
	}
	seenGW := map[string]bool{pay.Gateway: true}
	for i, g := range pay.Gateways {
		switch {
		case !plugins[g]:
			d.at(fmt.Sprintf("payments.gateways[%d]", i), "unknown plugin %q (%s)", g, known)
		case seenGW[g]:
			d.at(fmt.Sprintf("payments.gateways[%d]", i), "%q named twice", g)
		}
		seenGW[g] = true
	}
	if len(pay.Gateways) > 0 && pay.Gateway == "" {
		d.at("payments.gateways", "needs payments.gateway (the default gateway)")
	}
	if pay.FallbackReturnURL != "" {
		if msg := checkURL(pay.FallbackReturnURL); msg != "" {
			d.at("payments.fallback_return_url", "%s", msg)
		}
	}

	banks := map[string]bool{}
	for i, b := range c.Banks {
		p := fmt.Sprintf("banks[%d]", i)
		switch {
		case b.Name == "":
			d.at(p+".name", "is required")
		case !nameRE.MatchString(b.Name):
			d.at(p+".name", "invalid name %q (lower-case letters, digits, '_', '-')", b.Name)
		case banks[b.Name]:
			d.at(p+".name", "duplicate bank name %q", b.Name)
		default:
			banks[b.Name] = true
		}
		if b.Plugin == "" {
			d.at(p+".plugin", "is required")
		} else if !plugins[b.Plugin] {
			d.at(p+".plugin", "unknown plugin %q (%s)", b.Plugin, known)
		}
		d.positive(p+".ack_deadline", b.AckDeadline)
		if len(b.AckKinds) == 0 {
			d.at(p+".ack_kinds", "at least one of psr, hac, ptk is required")
		}
		for j, k := range b.AckKinds {
			if !slices.Contains([]string{"psr", "hac", "ptk"}, k) {
				d.at(fmt.Sprintf("%s.ack_kinds[%d]", p, j), "must be psr, hac or ptk, not %q", k)
			}
		}
		if !slices.Contains([]string{"de", "en", "fr"}, b.PTKProfile) {
			d.at(p+".ptk_profile", "must be de, en or fr, not %q", b.PTKProfile)
		}
		if !funcRE.MatchString(b.Function) {
			d.at(p+".function", "invalid business function %q", b.Function)
		}
		if b.OutboxDir != "" {
			c.Banks[i].OutboxDir = d.abs(b.OutboxDir)
		}
	}
}

func (d *decoder) validateListen(l *Listen) {
	pub := &l.Public
	if err := checkHostPort(pub.Addr); err != nil {
		d.at("listen.public.addr", "%v", err)
	}
	if pub.MaxBodyBytes <= 0 {
		d.at("listen.public.max_body_bytes", "must be positive")
	}
	d.positive("listen.public.read_header_timeout", pub.ReadHeaderTimeout)
	d.positive("listen.public.read_timeout", pub.ReadTimeout)
	d.positive("listen.public.write_timeout", pub.WriteTimeout)
	d.positive("listen.public.idle_timeout", pub.IdleTimeout)
	if pub.BaseURL != "" {
		if msg := checkURL(pub.BaseURL); msg != "" {
			d.at("listen.public.base_url", "%s", msg)
		} else {
			pub.BaseURL = strings.TrimRight(pub.BaseURL, "/")
		}
	}
	adm := &l.Admin
	if sock, ok := strings.CutPrefix(adm.Addr, "unix:"); ok {
		if sock == "" {
			d.at("listen.admin.addr", "unix: needs a socket path")
		} else {
			adm.Addr = "unix:" + d.abs(sock)
		}
	} else if err := checkHostPort(adm.Addr); err != nil {
		d.at("listen.admin.addr", "%v (or unix:/path/to/socket)", err)
	}
	if !adm.Token.IsSet() {
		d.at("listen.admin.token", "is required (e.g. token: !credential admin-token)")
	} else if len(adm.Token.Reveal()) < 16 {
		d.at("listen.admin.token", "is too short (at least 16 characters; e.g. openssl rand -hex 32)")
	}
	if tz := adm.Dashboard.Timezone; tz != "" {
		if _, err := schedule.LoadLocation(tz); err != nil {
			d.at("listen.admin.dashboard.timezone", "unknown time zone %q", tz)
		}
	}
	d.positive("listen.admin.dashboard.session_ttl", adm.Dashboard.SessionTTL)
}

// checkURL returns a problem with an absolute http(s) URL, or "".
func checkURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil, u.Host == "", u.User != nil, u.RawQuery != "", u.Fragment != "":
		return fmt.Sprintf("must be an absolute http(s) URL without query, not %q", s)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Sprintf("scheme must be https (or http for tests), not %q", u.Scheme)
	}
	return ""
}

func checkHostPort(a string) error {
	if a == "" {
		return fmt.Errorf("address is required")
	}
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("invalid address %q (want host:port)", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port in %q", a)
	}
	return nil
}

// script checks a hook or schedule script name: relative, inside the
// scripts dir, existing.
func (d *decoder) script(p, name, dir string, check bool) {
	switch {
	case name == "":
		d.at(p+".script", "is required")
		return
	case filepath.IsAbs(name) || !filepath.IsLocal(name):
		d.at(p+".script", "%q must be a relative path inside scripts.dir", name)
		return
	}
	if !check || d.opts.SkipPathChecks {
		return
	}
	full := filepath.Join(dir, name)
	fi, err := os.Stat(full)
	switch {
	case err != nil:
		d.at(p+".script", "%s: %s", full, describeFSError(err))
	case !fi.Mode().IsRegular():
		d.at(p+".script", "%s is not a regular file", full)
	}
}

func (d *decoder) function(p, name string) {
	if name == "" {
		d.at(p+".function", "is required")
	} else if !luaIdentRE.MatchString(name) {
		d.at(p+".function", "invalid Lua function name %q", name)
	}
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Warnings lists what is valid but unsafe in the configuration, as
// "key: message" lines; `acquit config check` prints them and the daemon
// logs them at start.
func (c *Config) Warnings() []string {
	var out []string
	if addr := c.Listen.Admin.Addr; !strings.HasPrefix(addr, "unix:") && !loopbackAddr(addr) {
		out = append(out, fmt.Sprintf("listen.admin.addr: %q is not a loopback address: the admin API "+
			"(bearer token, event replay, payments) would be served in plain HTTP on the network; "+
			"listen on 127.0.0.1, ::1 or a unix: socket and put a TLS reverse proxy in front if it must be reached remotely", addr))
	}
	// Silence nobody would hear: the deadlines that turn a missing answer
	// into an event run in the scheduled jobs.
	gateways := slices.Clone(c.Payments.Gateways)
	if c.Payments.Gateway != "" {
		gateways = append([]string{c.Payments.Gateway}, gateways...)
	}
	for _, g := range gateways {
		if !c.scheduled(".reconcile", "gateway", g, false) {
			out = append(out, fmt.Sprintf("payments: no schedule runs %s.reconcile: a payment of %s whose responses never arrive "+
				"stays pending and payment.unknown is never raised; add a schedule with job %s.reconcile", g, g, g))
		}
	}
	for i, b := range c.Banks {
		if !c.scheduled(".fetch_acks", "bank", b.Name, true) {
			out = append(out, fmt.Sprintf("banks[%d] (%s): no schedule runs fetch_acks for it: its acknowledgements are never "+
				"downloaded and every file it takes ends unacknowledged; add a schedule with job %s.fetch_acks "+
				"(params bank: %s, or none for every bank)", i, b.Name, b.Plugin, b.Name))
		}
	}
	return out
}

// scheduled reports whether a schedule runs a job named "<prefix><suffix>"
// for value: its params[param] is value, or it has none and the job
// covers value anyway: every value with allWithout (a fetch_acks job
// fetches for every bank), else the prefix's own (a reconcile job is its
// gateway's).
func (c *Config) scheduled(suffix, param, value string, allWithout bool) bool {
	for _, s := range c.Schedules {
		prefix, ok := strings.CutSuffix(s.Job, suffix)
		if !ok || prefix == "" {
			continue
		}
		if p := s.Params[param]; p == value || (p == "" && (allWithout || prefix == value)) {
			return true
		}
	}
	return false
}

// loopbackAddr reports whether host:port names only the loopback
// interface ("localhost" or a loopback IP; an empty host is every
// interface).
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
