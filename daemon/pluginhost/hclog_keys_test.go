package pluginhost

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestPluginLogLinesHaveUniqueKeys: go-plugin logs "plugin" = the
// executable's path on a logger that already carries "plugin" = the name;
// a JSON line with the key twice makes jq 'select(.plugin=="atos")' miss it.
func TestPluginLogLinesHaveUniqueKeys(t *testing.T) {
	var buf bytes.Buffer
	zl := zerolog.New(&buf).With().Str("component", "pluginhost").Str("plugin", "atos").Logger()
	a := newHCLogAdapter(zl)
	a.Info("plugin process exited", "plugin", "/usr/local/lib/acquit/acquit-plugin-atos", "id", 42, "component", "x", "level", "bad")
	line := strings.TrimSpace(buf.String())
	dec := json.NewDecoder(strings.NewReader(line))
	seen := map[string]int{}
	tok, _ := dec.Token()
	if tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", line)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		seen[k.(string)]++
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("key %q appears %d times in %s", k, n, line)
		}
	}
	var m map[string]any
	json.Unmarshal([]byte(line), &m)
	if m["plugin"] != "atos" || m["plugin_path"] != "/usr/local/lib/acquit/acquit-plugin-atos" || m["level"] != "info" {
		t.Fatalf("fields: %v", m)
	}
}
