// Package demo runs acquit end to end against the bank simulators: it is
// `acquit-demo` (cmd/acquit-demo, run by `make demo`) and the harness of the end-to-end tests. The daemon runs as
// a real child process (`acquit serve`) with real plugin processes, so a
// test can kill -9 it in the middle of the work.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/acquit/acquit/daemon/adminclient"
)

// Harness owns a state folder, a generated configuration, the simulators
// and the daemon process.
type Harness struct {
	Dir        string // state folder (database, spool, logs, secrets)
	BinDir     string // acquit and plugin executables
	ScriptsDir string
	ConfigPath string
	Token      string
	PublicAddr string
	AdminAddr  string
	Log        io.Writer // the daemon's stdout/stderr also go here (nil: only to Dir/acquit.log)
	// Env is added to the environment of the next Start (e.g. ACQUIT_CRASH_AT).
	Env []string

	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
	tmpl    TemplateData
}

// TemplateData fills the configuration template.
type TemplateData struct {
	Dir, BinDir, ScriptsDir string
	PublicAddr, AdminAddr   string
	TokenFile               string
	Atos                    *AtosData
	Worldline               *WorldlineData
	// FinalDeadline is payments.final_deadline ("" = 10m).
	FinalDeadline string
	Ebics         *EbicsData
	// MaxDocumentSize is transmissions.max_document_size ("" = default).
	MaxDocumentSize             string
	ReconcileEvery, FetchEvery  string
	ReconcileAfter, AckDeadline string
	Hooks                       []HookData
	// RecorderURL is handed to scripts as config.get("recorder.url").
	RecorderURL string
	// Instance names the daemon (default "demo"); PostgresDSNFile, when
	// set, selects PostgreSQL with the DSN read from that file.
	Instance, PostgresDSNFile string
}

// HookData binds events to a script function.
type HookData struct {
	Events   string // YAML flow list, e.g. ["payment.*"]
	Script   string
	Function string
}

// AtosData configures the Atos plugin against the Sips simulator.
type AtosData struct {
	PaypageURL, OfficeURL, MerchantID, KeyFile string
}

// WorldlineData configures the Worldline Direct plugin against its
// simulator.
type WorldlineData struct {
	APIURL, MerchantID, APIKeyID, APISecretFile, WebhookKeyID, WebhookSecretFile string
}

// EbicsData configures the EBICS plugin against the bank simulator.
type EbicsData struct {
	URL, HostID, PartnerID, UserID, PassFile string
	Profile                                  string // fr, de, v3
	SegmentSize                              int
	AuthHash, EncHash                        string
	BankName                                 string
	// AckKinds is a YAML flow list of the acknowledgement kinds to fetch,
	// e.g. [psr, hac, ptk]; PTKProfile names the PTK line patterns.
	AckKinds, PTKProfile string
}

// NewHarness prepares a state folder (emptied) and free loopback ports.
func NewHarness(dir, binDir, scriptsDir string) (*Harness, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		return nil, err
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	h := &Harness{Dir: abs(dir), BinDir: abs(binDir), ScriptsDir: abs(scriptsDir)}
	var b [16]byte
	_, _ = rand.Read(b[:])
	h.Token = hex.EncodeToString(b[:])
	if err := h.WriteSecret("admin-token", h.Token); err != nil {
		return nil, err
	}
	var err error
	if h.PublicAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if h.AdminAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	h.tmpl = TemplateData{Dir: h.Dir, BinDir: h.BinDir, ScriptsDir: h.ScriptsDir, PublicAddr: h.PublicAddr, AdminAddr: h.AdminAddr,
		TokenFile: filepath.Join(h.Dir, "secrets", "admin-token"), ReconcileEvery: "@every 2s", FetchEvery: "@every 2s",
		ReconcileAfter: "3s", AckDeadline: "30s"}
	return h, nil
}

// Template returns the configuration data to adjust before WriteConfig.
func (h *Harness) Template() *TemplateData { return &h.tmpl }

// WriteSecret writes a secret file under Dir/secrets and returns its path.
func (h *Harness) WriteSecret(name, value string) error {
	return os.WriteFile(filepath.Join(h.Dir, "secrets", name), []byte(value+"\n"), 0o600)
}

// SecretPath is the path of a secret written with WriteSecret.
func (h *Harness) SecretPath(name string) string { return filepath.Join(h.Dir, "secrets", name) }

// freeAddr returns a loopback address free now, for the daemon to listen
// on once started. It is taken below the kernel's ephemeral port range:
// a port the kernel handed out (":0") could be handed out again, to a
// listener or an outgoing connection of another test, between this check
// and the daemon's bind ("address already in use", seen in a full run).
// Ports are not handed out twice by one process.
func freeAddr() (string, error) {
	lo := ephemeralLow()
	addrMu.Lock()
	defer addrMu.Unlock()
	for range 200 {
		port := 10000 + mrand.IntN(lo-10000)
		if addrGiven[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		addrGiven[port] = true
		return l.Addr().String(), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

var (
	addrMu    sync.Mutex
	addrGiven = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), 32768 when unknown.
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 11000 {
				lo = v
			}
		}
	}
	return lo
}

// WriteConfig renders the configuration file.
func (h *Harness) WriteConfig() error {
	t, err := template.New("acquit.yaml").Parse(configTemplate)
	if err != nil {
		return err
	}
	h.ConfigPath = filepath.Join(h.Dir, "acquit.yaml")
	f, err := os.Create(h.ConfigPath)
	if err != nil {
		return err
	}
	defer f.Close()
	return t.Execute(f, h.tmpl)
}

// Start runs `acquit serve` as a child process and waits until /readyz
// answers 200.
func (h *Harness) Start(ctx context.Context) error {
	if h.ConfigPath == "" {
		if err := h.WriteConfig(); err != nil {
			return err
		}
	}
	var err error
	h.logFile, err = os.OpenFile(filepath.Join(h.Dir, "acquit.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(h.BinDir, "acquit"), "serve", "--config", h.ConfigPath)
	var out io.Writer = h.logFile
	if h.Log != nil {
		out = io.MultiWriter(h.logFile, h.Log)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if len(h.Env) > 0 {
		cmd.Env = append(os.Environ(), h.Env...)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start acquit: %w", err)
	}
	h.cmd = cmd
	// The goroutine closes its own channel: a later Start replaces
	// h.exited while this one may still be running.
	exited := make(chan struct{})
	h.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-h.exited:
			return fmt.Errorf("acquit exited during start (%v); see %s", cmd.ProcessState, h.logFile.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get("http://" + h.AdminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("acquit not ready after 60s; see %s", h.logFile.Name())
}

// Pid is the daemon's process id (0 when not running).
func (h *Harness) Pid() int {
	if h.cmd == nil || h.cmd.Process == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// Kill9 sends SIGKILL to the daemon and, when withPlugins, to its plugin
// processes too: to its whole process group, which the plugins share with
// it (Setpgid), as systemd's KillMode=control-group does, so plugins left
// by a daemon that already died (crashed, or killed by a test) are killed
// as well. It waits for the daemon to be reaped, and for the group to be
// gone.
func (h *Harness) Kill9(withPlugins bool) error {
	if h.cmd == nil {
		return errors.New("not running")
	}
	pid := h.cmd.Process.Pid
	kids := childrenOf(pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err // ESRCH: it died already and was reaped
	}
	<-h.exited
	if withPlugins {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		for _, k := range kids { // in case one left the group
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
		for _, k := range procsWhere(func(_, pgrp int) bool { return pgrp == pid }) {
			waitGone(k, 10*time.Second)
		}
	}
	// Orphaned plugins notice their host is gone and exit; make sure.
	for _, k := range kids {
		waitGone(k, 10*time.Second)
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	h.cmd = nil
	h.logFile.Close()
	return nil
}

// Stop sends SIGTERM and waits for a clean exit (status 0).
func (h *Harness) Stop() error {
	if h.cmd == nil {
		return nil
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(60 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
		return errors.New("acquit did not stop within 60s after SIGTERM")
	}
	st := h.cmd.ProcessState
	h.cmd = nil
	h.logFile.Close()
	if st != nil && st.ExitCode() != 0 {
		return fmt.Errorf("acquit exited with %v", st)
	}
	return nil
}

// Client is an admin API client for the daemon.
func (h *Harness) Client() *adminclient.Client { return adminclient.New(h.AdminAddr, h.Token) }

// PluginPids lists the daemon's direct child processes (its plugins).
func (h *Harness) PluginPids() []int { return childrenOf(h.Pid()) }

// childrenOf lists the direct children of pid from /proc.
func childrenOf(pid int) []int {
	return procsWhere(func(ppid, _ int) bool { return ppid == pid })
}

// procsWhere lists the processes whose parent and process group (from
// /proc/<pid>/stat) match.
func procsWhere(match func(ppid, pgrp int) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			fields := strings.Fields(string(b[i+1:]))
			if len(fields) > 2 {
				ppid, _ := strconv.Atoi(fields[1])
				pgrp, _ := strconv.Atoi(fields[2])
				if match(ppid, pgrp) {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// waitGone waits up to d for pid's process to be gone (processGone) and
// reports whether it is.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if processGone(pid) {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processGone reports whether pid's process has released what it held
// (its sockets, its files): it no longer exists, or all that is left is
// a zombie thread group leader with no other thread. A multi-threaded
// process killed with SIGKILL shows its leader as a zombie ("Z" in
// /proc/<pid>/stat) while its other threads are still exiting and the
// descriptor table they share is still open: a plugin's listening
// socket then still accepts connections.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z") {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err != nil || len(tasks) <= 1
}
