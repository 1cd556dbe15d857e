// Command acquit-demo runs acquit end to end against the Sips and EBICS
// simulators and prints what happened (`make demo`). It is a separate binary
// so that the production `acquit` binary carries no bank simulator.
//
// It starts the simulators on loopback, runs `acquit serve` (found next to
// this executable, or in -bin) on a generated configuration with the example
// scripts, drives card payments and EBICS uploads with faults, and exits
// non-zero if anything ended differently from what the banks decided.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/acquit/acquit/internal/demo"
)

func main() {
	o := demo.Options{Out: os.Stdout}
	flag.StringVar(&o.Dir, "dir", ".tmp/demo", "state folder (emptied first)")
	flag.StringVar(&o.BinDir, "bin", "", "folder of acquit and the plugins (default: this executable's)")
	flag.StringVar(&o.ScriptsDir, "scripts", "scripts", "Lua scripts folder")
	flag.IntVar(&o.Payments, "payments", 200, "card payments to run (0 skips)")
	flag.Float64Var(&o.DropAuto, "drop-automatic", 0.3, "share of automatic responses the bank drops")
	flag.Float64Var(&o.NoReturn, "never-return", 0.3, "share of customers who never come back to the shop")
	flag.IntVar(&o.Transfers, "transfers", 5000, "credit transfers per EBICS file (0 skips EBICS)")
	flag.Uint64Var(&o.Seed, "seed", 1, "seed of the simulated customers and faults")
	flag.BoolVar(&o.Verbose, "verbose", false, "show the daemon's log lines too")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "acquit-demo: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if o.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "acquit-demo:", err)
			os.Exit(1)
		}
		o.BinDir = filepath.Dir(exe)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	if err := demo.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "acquit-demo:", err)
		os.Exit(1)
	}
}
