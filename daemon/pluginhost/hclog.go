package pluginhost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"sort"
	"strings"
	"sync"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// maxLogValue bounds each value a plugin puts in a log line: a plugin's
// stderr is outside input.
const maxLogValue = 4096

// hclogAdapter is an hclog.Logger writing into zerolog. go-plugin logs
// through it, and so do the JSON lines a plugin writes on stderr.
type hclogAdapter struct {
	zl    zerolog.Logger
	name  string
	args  []any
	mu    *sync.Mutex
	level *hclog.Level
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLogAdapter(zl zerolog.Logger) *hclogAdapter {
	lvl := hclogLevel(zl.GetLevel())
	return &hclogAdapter{zl: zl, mu: &sync.Mutex{}, level: &lvl}
}

func hclogLevel(l zerolog.Level) hclog.Level {
	switch {
	case l <= zerolog.TraceLevel:
		return hclog.Trace
	case l == zerolog.DebugLevel:
		return hclog.Debug
	case l == zerolog.InfoLevel:
		return hclog.Info
	case l == zerolog.WarnLevel:
		return hclog.Warn
	case l == zerolog.Disabled:
		return hclog.Off
	}
	return hclog.Error
}

func clipLog(s string) string {
	if len(s) > maxLogValue {
		return s[:maxLogValue] + "...(truncated)"
	}
	return s
}

// Log implements hclog.Logger.
func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if level < a.GetLevel() || level == hclog.Off {
		return
	}
	var ev *zerolog.Event
	switch level {
	case hclog.Trace:
		ev = a.zl.Trace()
	case hclog.Debug:
		ev = a.zl.Debug()
	case hclog.Info:
		ev = a.zl.Info()
	case hclog.Warn:
		ev = a.zl.Warn()
	default:
		ev = a.zl.Error()
	}
	if a.name != "" {
		ev = ev.Str("logger", a.name)
	}
	all := append(append([]any{}, a.args...), args...)
	for i := 0; i < len(all); i += 2 {
		key := ownKey(clipLog(fmt.Sprint(all[i])))
		if i+1 >= len(all) {
			ev = ev.Str("EXTRA_VALUE_AT_END", key)
			break
		}
		switch v := all[i+1].(type) {
		case error:
			ev = ev.Str(key, clipLog(v.Error()))
		case string:
			ev = ev.Str(key, clipLog(v))
		case int, int64, int32, uint, uint64, uint32, float64, bool:
			ev = ev.Interface(key, v)
		default:
			ev = ev.Str(key, clipLog(fmt.Sprint(v)))
		}
	}
	ev.Msg(clipLog(msg))
}

// reservedKeys are the fields the host's logger already sets on a plugin's
// lines; a plugin's (or go-plugin's) field of the same name is renamed so
// that each JSON line has unique keys (go-plugin logs "plugin" = the path).
var reservedKeys = map[string]string{
	"plugin": "plugin_path", "component": "plugin_component", "level": "plugin_level",
	"time": "plugin_time", "message": "plugin_message", "logger": "plugin_logger", "stream": "plugin_stream",
}

func ownKey(k string) string {
	if r, ok := reservedKeys[k]; ok {
		return r
	}
	return k
}

// Trace implements hclog.Logger.
func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }

// Debug implements hclog.Logger.
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }

// Info implements hclog.Logger.
func (a *hclogAdapter) Info(msg string, args ...any) { a.Log(hclog.Info, msg, args...) }

// Warn implements hclog.Logger.
func (a *hclogAdapter) Warn(msg string, args ...any) { a.Log(hclog.Warn, msg, args...) }

// Error implements hclog.Logger.
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

// IsTrace implements hclog.Logger.
func (a *hclogAdapter) IsTrace() bool { return a.GetLevel() <= hclog.Trace }

// IsDebug implements hclog.Logger.
func (a *hclogAdapter) IsDebug() bool { return a.GetLevel() <= hclog.Debug }

// IsInfo implements hclog.Logger.
func (a *hclogAdapter) IsInfo() bool { return a.GetLevel() <= hclog.Info }

// IsWarn implements hclog.Logger.
func (a *hclogAdapter) IsWarn() bool { return a.GetLevel() <= hclog.Warn }

// IsError implements hclog.Logger.
func (a *hclogAdapter) IsError() bool { return a.GetLevel() <= hclog.Error }

// ImpliedArgs implements hclog.Logger.
func (a *hclogAdapter) ImpliedArgs() []any { return a.args }

// With implements hclog.Logger.
func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.args = append(append([]any{}, a.args...), args...)
	return &c
}

// Name implements hclog.Logger.
func (a *hclogAdapter) Name() string { return a.name }

// Named implements hclog.Logger.
func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

// ResetNamed implements hclog.Logger.
func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

// SetLevel implements hclog.Logger.
func (a *hclogAdapter) SetLevel(level hclog.Level) {
	a.mu.Lock()
	*a.level = level
	a.mu.Unlock()
}

// GetLevel implements hclog.Logger.
func (a *hclogAdapter) GetLevel() hclog.Level {
	a.mu.Lock()
	defer a.mu.Unlock()
	return *a.level
}

// StandardLogger implements hclog.Logger.
func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

// StandardWriter implements hclog.Logger.
func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &lineWriter{log: func(line string) { a.Info(line) }}
}

// lineWriter calls log once per line written (lines are clipped).
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	log func(line string)
}

// Write implements io.Writer.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(string(w.buf[:i]), "\r"); line != "" {
			w.log(clipLog(line))
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLogValue {
		w.log(clipLog(string(w.buf)))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// relayPluginLine logs one line a plugin wrote to its stderr (or stdout).
// A JSON line from zerolog ("level", "message") or go-hclog ("@level",
// "@message") is re-emitted at its own level with its fields, on the
// host's logger that names the plugin, so a plugin's warning is a warning
// in journald; any other line is logged at level def, verbatim.
func relayPluginLine(zl zerolog.Logger, stream string, def zerolog.Level, line string) {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if !strings.HasPrefix(line, "{") || dec.Decode(&m) != nil || dec.More() {
		zl.WithLevel(def).Str("stream", stream).Msg(line)
		return
	}
	levelKey, msgKey := "level", "message"
	if _, ok := m["@level"]; ok {
		levelKey, msgKey = "@level", "@message"
	}
	lvl, _ := m[levelKey].(string)
	msg, _ := m[msgKey].(string)
	if _, ok := m[levelKey]; !ok {
		zl.WithLevel(def).Str("stream", stream).Msg(line)
		return
	}
	delete(m, levelKey)
	delete(m, msgKey)
	var ev *zerolog.Event
	switch strings.ToLower(lvl) {
	case "trace":
		ev = zl.Trace()
	case "debug":
		ev = zl.Debug()
	case "info", "":
		ev = zl.Info()
	case "warn", "warning":
		ev = zl.Warn()
	default: // error, fatal, panic and anything unknown
		ev = zl.Error()
	}
	if ev == nil {
		return // below the host's level
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := ownKey(clipLog(strings.TrimPrefix(k, "@")))
		switch v := m[k].(type) {
		case string:
			ev = ev.Str(key, clipLog(v))
		case json.Number, bool, nil:
			ev = ev.Interface(key, v)
		default:
			if b, err := json.Marshal(v); err == nil && len(b) <= maxLogValue {
				ev = ev.RawJSON(key, b)
			} else {
				ev = ev.Str(key, clipLog(fmt.Sprint(v)))
			}
		}
	}
	ev.Str("stream", stream).Msg(clipLog(msg))
}
