package pluginhost

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// TestRelayPluginLogLevels: what a plugin logs with zerolog or go-hclog
// (JSON) on its stderr is re-emitted by the host at the plugin's level,
// message and fields, under the plugin's name, so a plugin warning is a
// warning in journald; lines below the host's level are dropped; other
// lines are kept verbatim; a plugin cannot forge the host's keys.
func TestRelayPluginLogLevels(t *testing.T) {
	var plugin bytes.Buffer
	pz := zerolog.New(&plugin).With().Timestamp().Str("bank", "mybank").Logger()
	pz.Warn().Str("order_id", "A1B2").Int("segments", 3).Msg("bank slow to answer")
	pz.Error().Err(errTest("boom")).Msg("upload failed")
	pz.Debug().Msg("noise")
	pz.Info().Str("plugin", "forged").Str("component", "x").Msg("hello")
	hl := hclog.New(&hclog.LoggerOptions{JSONFormat: true, Output: &plugin, Level: hclog.Trace, Name: "sdk"})
	hl.Warn("hclog warning", "attempt", 2)
	plugin.WriteString("plain text line\n")

	var host bytes.Buffer
	zl := zerolog.New(&host).Level(zerolog.InfoLevel).With().Str("component", "pluginhost").Str("plugin", "atos").Logger()
	w := &lineWriter{log: func(l string) { relayPluginLine(zl, "stderr", zerolog.InfoLevel, l) }}
	if _, err := w.Write(plugin.Bytes()); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(host.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("host line is not JSON: %s", l)
		}
		got = append(got, m)
	}
	if len(got) != 5 {
		t.Fatalf("%d host lines, want 5 (debug dropped):\n%s", len(got), host.String())
	}
	want := []map[string]any{
		{"level": "warn", "message": "bank slow to answer", "plugin": "atos", "bank": "mybank", "order_id": "A1B2", "segments": float64(3)},
		{"level": "error", "message": "upload failed", "plugin": "atos", "error": "boom"},
		{"level": "info", "message": "hello", "plugin": "atos", "plugin_path": "forged", "plugin_component": "x", "component": "pluginhost"},
		{"level": "warn", "message": "hclog warning", "plugin": "atos", "attempt": float64(2), "module": "sdk"},
		{"level": "info", "message": "plain text line", "plugin": "atos", "stream": "stderr"},
	}
	for i, w := range want {
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, got[i][k], v, got[i])
			}
		}
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }
