package sdk

import (
	"os"

	hclog "github.com/hashicorp/go-hclog"
)

// ServeConfig says what a plugin executable serves; main passes it to
// pluginrpc.Serve. At least one of Gateway and Transport must be set.
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
