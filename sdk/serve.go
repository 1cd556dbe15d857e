package sdk

import (
	"fmt"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ServeConfig says what a plugin executable serves. At least one of Gateway
// and Transport must be set.
type ServeConfig struct {
	Gateway   PaymentGateway
	Transport BankTransport
	// Logger is the plugin's logger; nil means NewLogger("plugin"). It
	// must write to stderr only: stdout belongs to the handshake.
	Logger hclog.Logger
}

// LogLevelEnv names the environment variable read by NewLogger for the
// plugin's log level (trace, debug, info, warn, error); default info.
const LogLevelEnv = "ACQUIT_PLUGIN_LOG_LEVEL"

// NewLogger returns a logger for plugin code that writes JSON lines to
// stderr; the daemon parses them and re-logs them with the plugin's name.
func NewLogger(name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
}

// pluginSet builds the go-plugin set served for cfg.
func pluginSet(cfg ServeConfig) (plugin.PluginSet, error) {
	set := plugin.PluginSet{}
	if cfg.Gateway != nil {
		set[PluginNameGateway] = &GatewayPlugin{Impl: cfg.Gateway}
	}
	if cfg.Transport != nil {
		set[PluginNameTransport] = &TransportPlugin{Impl: cfg.Transport}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("sdk.Serve: neither Gateway nor Transport is set")
	}
	return set, nil
}

// Serve serves the plugin to the daemon that started this process and
// returns when the daemon is done with it. Call it from main; a process
// started by hand (without the handshake cookie) prints an explanation and
// exits with status 1.
func Serve(cfg ServeConfig) {
	set, err := pluginSet(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = NewLogger("plugin")
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         set,
		GRPCServer:      newGRPCServer,
		Logger:          logger,
	})
}

func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))
	return grpc.NewServer(opts...)
}
