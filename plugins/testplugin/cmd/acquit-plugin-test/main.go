// Command acquit-plugin-test is the test payment-gateway plugin. It is
// started by the acquit daemon; see package testplugin for the
// misbehaviour switches read from the environment.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"

	"github.com/acquit/acquit/plugins/testplugin"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

func main() {
	if f := os.Getenv(testplugin.EnvStartedFile); f != "" {
		if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "acquit-plugin-test:", err)
			os.Exit(5)
		}
	}
	if os.Getenv(testplugin.EnvExitAtStart) == "1" {
		fmt.Fprintln(os.Stderr, "acquit-plugin-test: exiting at start on purpose")
		os.Exit(4)
	}
	if os.Getenv(testplugin.EnvHangAtStart) == "1" {
		select {}
	}
	if os.Getenv(testplugin.EnvStdoutGarbage) == "1" {
		fmt.Fprintln(os.Stdout, "this is not a go-plugin handshake line\x00\xff")
	}
	logger := sdk.NewLogger(testplugin.Name)
	logger.Info("starting", "version", testplugin.Version)
	cfg := sdk.ServeConfig{Logger: logger}
	mis := testplugin.MisbehaviourFromEnv()
	switch os.Getenv(testplugin.EnvServe) {
	case "transport":
		cfg.Transport = testplugin.NewTransport(mis)
	case "both":
		cfg.Gateway, cfg.Transport = testplugin.New(mis), testplugin.NewTransport(mis)
	default:
		cfg.Gateway = testplugin.New(mis)
	}
	if f := os.Getenv(testplugin.EnvCPUProfile); f != "" {
		out, err := os.Create(f)
		if err == nil {
			err = pprof.StartCPUProfile(out)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "acquit-plugin-test: cpu profile:", err)
			os.Exit(5)
		}
		defer func() { pprof.StopCPUProfile(); _ = out.Close() }()
	}
	pluginrpc.Serve(cfg)
}
