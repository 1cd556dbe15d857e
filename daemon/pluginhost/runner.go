package pluginhost

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin/runner"
)

// procRunner is the go-plugin runner.Runner of one plugin process.
//
// go-plugin (v1.8) creates a per-process socket folder inside
// UnixSocketConfig.TempDir, hands it to the plugin (PLUGIN_UNIX_SOCKET_DIR)
// and listens there itself for the broker connections that carry the
// plugin's Host callbacks, removing the folder when the plugin is killed,
// only when ClientConfig.RunnerFunc is set: with ClientConfig.Cmd its
// internal runner is used and the daemon's broker socket lands in the
// system temporary directory, where a daemon killed with SIGKILL leaves it.
// This runner does what the internal one does (start the executable with
// go-plugin's environment, stdout and stderr pipes, kill, wait) so that the
// socket folder is always the daemon's.
type procRunner struct {
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr io.ReadCloser
	pid    int // set by Start, before go-plugin reads it
}

var _ runner.Runner = (*procRunner)(nil)

// started is what the RunnerFunc of one launch made: the per-process socket
// folder go-plugin created and the runner (nil if it could not be made).
type started struct {
	sockDir string
	run     *procRunner
}

// runnerFunc returns the ClientConfig.RunnerFunc starting the instance's
// executable; st receives the runner, so that launch can read the process
// id once the handshake is done, and the socket folder, so that a failed
// start does not leave it behind (go-plugin removes it only when it killed
// a started process).
func (in *instance) runnerFunc(st *started) func(hclog.Logger, *exec.Cmd, string) (runner.Runner, error) {
	return func(_ hclog.Logger, spec *exec.Cmd, sockDir string) (runner.Runner, error) {
		st.sockDir = sockDir
		cmd := exec.Command(in.spec.Path, in.spec.Args...)
		// go-plugin's entries (magic cookie, protocol versions, client
		// certificate, socket folder) come last and win over any
		// duplicate of the plugin's own environment. Stdin stays
		// /dev/null.
		cmd.Env = append(in.env(), spec.Env...)
		setProcAttr(cmd)
		r, err := newProcRunner(cmd)
		if err != nil {
			return nil, err
		}
		st.run = r
		return r, nil
	}
}

func newProcRunner(cmd *exec.Cmd) (*procRunner, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("plugin stdout pipe: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		_ = stdout.Close()
		return nil, fmt.Errorf("plugin stderr pipe: %w", err)
	}
	return &procRunner{cmd: cmd, stdout: stdout, stderr: stderr}, nil
}

// Start implements runner.Runner: it starts the process.
func (r *procRunner) Start(context.Context) error {
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start plugin %s: %w", r.cmd.Path, err)
	}
	r.pid = r.cmd.Process.Pid
	return nil
}

// Wait implements runner.Runner: it waits for the process to exit and
// reaps it.
func (r *procRunner) Wait(context.Context) error {
	return r.cmd.Wait()
}

// Kill implements runner.Runner: SIGKILL, idempotent.
func (r *procRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill plugin %d: %w", r.pid, err)
	}
	return nil
}

// Stdout implements runner.Runner: the handshake and go-plugin's own
// protocol lines.
func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }

// Stderr implements runner.Runner: the plugin's log lines, relayed by
// go-plugin to the hclog adapter.
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }

// Name implements runner.Runner: the executable's path.
func (r *procRunner) Name() string { return r.cmd.Path }

// ID implements runner.Runner: the process id ("" before Start, which
// go-plugin's Kill takes as nothing to kill).
func (r *procRunner) ID() string {
	if r.pid == 0 {
		return ""
	}
	return strconv.Itoa(r.pid)
}

// PluginToHost implements runner.AddrTranslator: the plugin shares the
// daemon's file system and network.
func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

// HostToPlugin implements runner.AddrTranslator.
func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// Diagnose implements runner.Runner: why an executable may not have
// answered the handshake (permissions, architecture).
func (r *procRunner) Diagnose(context.Context) string {
	var b strings.Builder
	b.WriteString("the plugin did not answer the go-plugin handshake: it may not be an acquit plugin, " +
		"be built for another architecture, miss a shared library, or not be executable by this user")
	st, err := os.Stat(r.cmd.Path)
	if err != nil {
		fmt.Fprintf(&b, "\n  %v", err)
		return b.String()
	}
	fmt.Fprintf(&b, "\n  path %s, mode %s", r.cmd.Path, st.Mode())
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		fmt.Fprintf(&b, ", owner uid %d gid %d (daemon uid %d gid %d)", sys.Uid, sys.Gid, os.Getuid(), os.Getgid())
	}
	if f, err := elf.Open(r.cmd.Path); err == nil {
		fmt.Fprintf(&b, "\n  ELF %s (daemon %s)", f.Machine, runtime.GOARCH)
		_ = f.Close()
	} else {
		b.WriteString("\n  not an ELF executable")
	}
	return b.String()
}
