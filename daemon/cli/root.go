// Package cli holds the cobra commands of the acquit binary.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/acquit/acquit/daemon/config"
	"github.com/acquit/acquit/daemon/hooks"
	"github.com/acquit/acquit/daemon/server"
	"github.com/acquit/acquit/daemon/store"
)

// Version is set at build time (-ldflags "-X ...cli.Version=...").
var Version = "dev"

type root struct {
	configPath string
	cf         clientFlags
}

// NewRoot builds the acquit command tree.
func NewRoot() *cobra.Command {
	r := &root{}
	cmd := &cobra.Command{
		Use:           "acquit",
		Short:         "acquit makes bank confirmations impossible to miss",
		Long:          "acquit records every card payment outcome exactly once (Atos/Worldline Sips) and tracks every EBICS\ntransmission until the bank's final word, delivering each event to Lua hooks durably.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	cmd.PersistentFlags().StringVarP(&r.configPath, "config", "c", envOr("ACQUIT_CONFIG", "/etc/acquit/acquit.yaml"), "configuration file")
	r.cf.bind(cmd)
	cmd.AddCommand(r.serveCmd(), r.configCmd(), r.scriptsCmd(), r.hooksCmd(), r.eventsCmd(), r.schedulesCmd(),
		r.paymentsCmd(), r.transmissionsCmd(), r.ebicsCmd(), r.pluginsCmd(), r.initCmd(), r.healthCmd())
	return cmd
}

// Main runs the CLI and returns the process exit status.
func Main() int {
	if err := NewRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "acquit:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// adminFromConfig reads the admin address and token from the config file,
// and nothing else of it: an operator needs the admin token, not every
// secret of the daemon.
func adminFromConfig(path string) (addr, token string, err error) {
	a, err := config.LoadAdmin(path, config.Options{})
	if err != nil {
		return "", "", fmt.Errorf("config %s: %w", path, err)
	}
	return a.Addr, a.Token.Reveal(), nil
}

func (r *root) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon in the foreground (as systemd does)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return server.Run(cmd.Context(), r.configPath, server.Options{})
		},
	}
}

func (r *root) configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check the configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Load and validate the configuration; every problem as file:line: message",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(r.configPath)
			if err != nil {
				var errs *config.Errors
				if errors.As(err, &errs) {
					for _, e := range errs.List {
						fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
					}
					return &exitError{code: 2, err: fmt.Errorf("%d problem(s) in %s", len(errs.List), r.configPath)}
				}
				return &exitError{code: 2, err: err}
			}
			if diags := hooks.Check(cfg.Scripts.Dir); len(diags) > 0 {
				for _, d := range diags {
					fmt.Fprintln(cmd.ErrOrStderr(), d.String())
				}
				return &exitError{code: 2, err: fmt.Errorf("%d script problem(s) in %s", len(diags), cfg.Scripts.Dir)}
			}
			for _, w := range cfg.Warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+r.configPath+": "+w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d plugins, %d schedules, %d hooks)\n", r.configPath, len(cfg.Plugins), len(cfg.Schedules), len(cfg.Hooks))
			return nil
		},
	})
	return cmd
}

func (r *root) scriptsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "scripts", Short: "Work with Lua scripts"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check DIR",
		Short: "Compile every Lua script in DIR and report file:line errors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			diags := hooks.Check(args[0])
			for _, d := range diags {
				fmt.Fprintln(cmd.ErrOrStderr(), d.String())
			}
			if len(diags) > 0 {
				return &exitError{code: 2, err: fmt.Errorf("%d problem(s)", len(diags))}
			}
			n, _ := filepath.Glob(filepath.Join(args[0], "*.lua"))
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d scripts ok\n", args[0], len(n))
			return nil
		},
	})
	return cmd
}

func (r *root) hooksCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "hooks", Short: "Try hooks before deploying them"}
	var eventFile, scriptsDir string
	var offline bool
	run := &cobra.Command{
		Use:   "run EVENT --event event.json",
		Short: "Run the hooks bound to EVENT against a sample event and print what they did",
		Long: "Runs every hook the configuration binds to EVENT (e.g. payment.accepted) with the payload read from\n" +
			"--event (a JSON object: the event's data, or a whole event with id/subject/data). kv writes are not\n" +
			"applied; http calls are sent unless --offline. Exits non-zero if a hook failed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(r.configPath)
			if err != nil {
				return err
			}
			if scriptsDir != "" {
				cfg.Scripts.Dir = scriptsDir
			}
			var raw []byte
			if eventFile == "-" {
				raw, err = io.ReadAll(os.Stdin)
			} else {
				raw, err = os.ReadFile(eventFile)
			}
			if err != nil {
				return fmt.Errorf("--event: %w", err)
			}
			ev, err := hooks.EventFromFile(args[0], raw)
			if err != nil {
				return err
			}
			var kv store.KV = nil
			allow, err := hooks.ParseHTTPAllow(cfg.Scripts.HTTPAllow)
			if err != nil {
				return err
			}
			eng, err := hooks.New(hooks.Options{HTTPAllow: allow, AdminAddr: cfg.Listen.Admin.Addr, Dir: cfg.Scripts.Dir, Bindings: bindingsOf(cfg), KV: kv, Config: cfg.Scripts.Values,
				Timeout: cfg.Scripts.Timeout, PoolSize: 1, MemoryBudget: cfg.Scripts.MemoryBudget.Bytes()})
			if err != nil {
				return err
			}
			defer eng.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), cfg.Scripts.Timeout+5*time.Second)
			defer cancel()
			traces, err := eng.DryRun(ctx, ev, hooks.DryRunOptions{Offline: offline})
			if err != nil {
				return err
			}
			failed := 0
			if r.cf.json {
				type out struct {
					hooks.Trace
					Error string `json:"error,omitempty"`
				}
				var list []out
				for _, t := range traces {
					o := out{Trace: t}
					if t.Err != nil {
						o.Error = t.Err.Error()
						failed++
					}
					list = append(list, o)
				}
				if err := printJSON(cmd.OutOrStdout(), list); err != nil {
					return err
				}
			} else {
				for _, t := range traces {
					if printTrace(cmd.OutOrStdout(), t) {
						failed++
					}
				}
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d hook(s) failed", failed)}
			}
			return nil
		},
	}
	run.Flags().StringVar(&eventFile, "event", "", "JSON file with the event (- for stdin)")
	run.Flags().StringVar(&scriptsDir, "scripts", "", "scripts folder (default: scripts.dir of the config)")
	run.Flags().BoolVar(&offline, "offline", false, "do not send http calls; answer them with an empty 200")
	_ = run.MarkFlagRequired("event")
	cmd.AddCommand(run)
	return cmd
}

func bindingsOf(cfg *config.Config) []hooks.Binding {
	out := make([]hooks.Binding, 0, len(cfg.Hooks))
	for _, h := range cfg.Hooks {
		out = append(out, hooks.Binding{Events: h.Events, Script: h.Script, Function: h.Function})
	}
	return out
}

// printTrace prints one hook run and reports whether it failed.
func printTrace(w io.Writer, t hooks.Trace) bool {
	fmt.Fprintf(w, "hook %s:%s (%s)\n", t.Script, t.Function, t.Duration.Round(time.Microsecond))
	for _, l := range t.Logs {
		fields := ""
		if len(l.Fields) > 0 {
			b, _ := json.Marshal(l.Fields)
			fields = " " + string(b)
		}
		fmt.Fprintf(w, "  log   %-5s %s%s\n", l.Level, l.Message, fields)
	}
	for _, c := range t.HTTPCalls {
		status := fmt.Sprint(c.Status)
		if c.Error != "" {
			status = "error: " + c.Error
		}
		if !c.Sent {
			status += " (not sent)"
		}
		fmt.Fprintf(w, "  http  %s %s -> %s (%d bytes, %s)\n", c.Method, c.URL, status, c.BodySize, c.Duration.Round(time.Millisecond))
	}
	for _, k := range t.KVWrites {
		fmt.Fprintf(w, "  kv    %s %s=%q (not applied)\n", k.Op, k.Key, k.Value)
	}
	if t.Err != nil {
		fmt.Fprintf(w, "  FAILED: %s\n", strings.ReplaceAll(t.Err.Error(), "\n", "\n          "))
		return true
	}
	b, _ := json.Marshal(t.Return)
	fmt.Fprintf(w, "  ok, returned %s\n", b)
	return false
}
