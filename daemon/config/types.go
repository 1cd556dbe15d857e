package config

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a number of bytes, written 65536, 64KiB, 1MiB, 1GiB, 64KB or 1MB.
type Size int64

// Size units.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
)

// Bytes returns the size as an int64.
func (s Size) Bytes() int64 { return int64(s) }

// String formats the size with the largest exact binary unit.
func (s Size) String() string {
	switch {
	case s != 0 && s%GiB == 0:
		return strconv.FormatInt(int64(s/GiB), 10) + "GiB"
	case s != 0 && s%MiB == 0:
		return strconv.FormatInt(int64(s/MiB), 10) + "MiB"
	case s != 0 && s%KiB == 0:
		return strconv.FormatInt(int64(s/KiB), 10) + "KiB"
	}
	return strconv.FormatInt(int64(s), 10)
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize parses a size such as "64KiB", "1MiB", "1000000" or "10MB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (want e.g. 65536, 64KiB, 1MiB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Size(n * mult), nil
}

// Settings is a plugin's free-form settings block. It keeps two JSON
// renderings: JSON() with secrets revealed, for the plugin's Configure
// call, and Redacted() with secrets shown as "[redacted]", for logs and
// `acquit config show`. String and MarshalJSON use the redacted one.
type Settings struct {
	revealed []byte
	redacted []byte
}

// JSON returns the settings as a JSON object with secrets revealed ("{}"
// when empty). Hand it to the plugin only; never log it.
func (s Settings) JSON() []byte {
	if len(s.revealed) == 0 {
		return []byte("{}")
	}
	return s.revealed
}

// Redacted returns the settings as a JSON object with secrets replaced by
// "[redacted]".
func (s Settings) Redacted() []byte {
	if len(s.redacted) == 0 {
		return []byte("{}")
	}
	return s.redacted
}

// String returns the redacted JSON.
func (s Settings) String() string { return string(s.Redacted()) }

// GoString returns the redacted JSON.
func (s Settings) GoString() string { return s.String() }

// MarshalJSON returns the redacted JSON.
func (s Settings) MarshalJSON() ([]byte, error) { return s.Redacted(), nil }

// newSettings renders a decoded free-form value (map[string]any possibly
// holding Secret values) both ways.
func newSettings(v map[string]any) (Settings, error) {
	if v == nil {
		return Settings{}, nil
	}
	rev, err := json.Marshal(revealTree(v))
	if err != nil {
		return Settings{}, fmt.Errorf("settings to JSON: %w", err)
	}
	red, err := json.Marshal(v) // Secret marshals as "[redacted]"
	if err != nil {
		return Settings{}, fmt.Errorf("settings to JSON: %w", err)
	}
	return Settings{revealed: rev, redacted: red}, nil
}

// revealTree copies a free-form tree with Secret values replaced by their
// values.
func revealTree(v any) any {
	switch t := v.(type) {
	case Secret:
		return t.Reveal()
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = revealTree(x)
		}
		return m
	case []any:
		l := make([]any, len(t))
		for i, x := range t {
			l[i] = revealTree(x)
		}
		return l
	}
	return v
}

// Error is one configuration problem at a line of a file.
type Error struct {
	// File is the configuration file's path as given to Load.
	File string
	// Line is 1-based; 0 when the problem has no line (e.g. the file
	// cannot be read).
	Line int
	// Msg describes the problem, usually prefixed by the key path
	// ("schedules[0].cron: ...").
	Msg string
}

// Error formats the problem as "file:line: message".
func (e Error) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Msg
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// maxErrors bounds the problems listed; the rest are counted.
const maxErrors = 100

// Errors is every problem found in a configuration (the first 100), in
// file order.
type Errors struct {
	// List holds the problems, sorted by line; when more than 100 were
	// found, a last entry without line says how many are not shown.
	List []Error
	// total counts every problem found, listed or not.
	total int
}

// Error joins the problems, one per line.
func (e *Errors) Error() string {
	var b strings.Builder
	for i, x := range e.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(x.Error())
	}
	return b.String()
}

// Unwrap returns the problems as errors.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, x := range e.List {
		out[i] = x
	}
	return out
}

func (e *Errors) add(file string, line int, format string, args ...any) {
	e.total++
	if len(e.List) < maxErrors {
		e.List = append(e.List, Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
}

// finish sorts the problems by line and notes those not listed.
func (e *Errors) finish(file string) {
	sortErrors(e.List)
	if more := e.total - len(e.List); more > 0 {
		e.List = append(e.List, Error{File: file, Msg: fmt.Sprintf("%d more problems not shown", more)})
	}
}
