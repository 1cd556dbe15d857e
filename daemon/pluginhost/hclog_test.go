package pluginhost

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

func TestHCLogAdapter(t *testing.T) {
	tests := []struct {
		name  string
		level zerolog.Level
		log   func(l hclog.Logger)
		want  map[string]any // nil: nothing logged
	}{
		{"info with fields", zerolog.InfoLevel, func(l hclog.Logger) {
			l.Named("acquit-plugin-test").Info("starting", "version", "0.1.0", "n", 3, "err", errors.New("boom"))
		}, map[string]any{"level": "info", "message": "starting", "logger": "acquit-plugin-test", "version": "0.1.0", "n": float64(3), "err": "boom"}},
		{"debug filtered at info", zerolog.InfoLevel, func(l hclog.Logger) { l.Debug("noise") }, nil},
		{"implied args and odd args", zerolog.DebugLevel, func(l hclog.Logger) { l.With("a", "b").Warn("w", "dangling") },
			map[string]any{"level": "warn", "a": "b", "EXTRA_VALUE_AT_END": "dangling"}},
		{"oversized value clipped", zerolog.InfoLevel, func(l hclog.Logger) { l.Error(strings.Repeat("x", 1<<20)) },
			map[string]any{"level": "error"}},
		{"no level means info", zerolog.InfoLevel, func(l hclog.Logger) { l.Log(hclog.NoLevel, "m") }, map[string]any{"level": "info"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(newHCLogAdapter(zerolog.New(&buf).Level(tc.level)))
			if tc.want == nil {
				if buf.Len() != 0 {
					t.Fatalf("logged %s", buf.String())
				}
				return
			}
			if buf.Len() > 2*maxLogValue {
				t.Fatalf("log line of %d bytes not clipped", buf.Len())
			}
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("%v: %s", err, buf.String())
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v (%s)", k, got[k], v, buf.String())
				}
			}
		})
	}
}

func TestLineWriter(t *testing.T) {
	var lines []string
	w := &lineWriter{log: func(l string) { lines = append(lines, l) }}
	for _, chunk := range []string{"par", "tial\r\nsecond\n\n", strings.Repeat("g", 3*maxLogValue)} {
		if n, err := w.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatal(n, err)
		}
	}
	if len(lines) != 3 || lines[0] != "partial" || lines[1] != "second" || len(lines[2]) > maxLogValue+20 {
		t.Fatalf("lines %q", lines)
	}
}
