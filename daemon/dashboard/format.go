package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/money"
)

// timeFormat is how times are shown: date, time and the zone's abbreviation.
const timeFormat = "2006-01-02 15:04:05 MST"

func funcs(loc *time.Location) template.FuncMap {
	return template.FuncMap{
		"money":   money.Format,
		"decimal": money.FormatDecimal,
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.In(loc).Format(timeFormat)
		},
		"iso": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
		"ago":        ago,
		"badge":      badge,
		"pretty":     pretty,
		"clip":       clip,
		"bytes":      humanBytes,
		"size":       func(b []byte) string { return humanBytes(int64(len(b))) },
		"hasPrefix":  strings.HasPrefix,
		"trimPrefix": strings.TrimPrefix,
		"took": func(a, b time.Time) string {
			if a.IsZero() || b.IsZero() {
				return "—"
			}
			return b.Sub(a).Round(time.Millisecond).String()
		},
		"events": func(evs []store.Event, csrf, back string) eventsArgs {
			return eventsArgs{Events: evs, CSRF: csrf, Back: back}
		},
	}
}

// eventsArgs feeds the eventTable template.
type eventsArgs struct {
	Events     []store.Event
	CSRF, Back string
}

// ago says how far t is from now, coarsely ("3m ago", "in 2h").
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Until(t)
	suffix := ""
	prefix := "in "
	if d < 0 {
		d, prefix, suffix = -d, "", " ago"
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		s = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return prefix + s + suffix
}

// badge is the CSS class of a state, verdict or outcome.
func badge(v any) string {
	switch fmt.Sprint(v) {
	case "accepted", "delivered", "decided", "ok", "up", "ACCP", "ACSC", "ACTC", "true":
		return "b-good"
	case "unknown", "conflict", "mismatch", "rejected", "partially_accepted", "unacknowledged", "dead", "failed",
		"down", "error", "RJCT", "PART", "false", "crashed", "stopped":
		return "b-bad"
	case "pending", "running", "queued", "submitted", "received", "signature_verified", "not_final", "restarting",
		"starting", "duplicate", "PDNG", "RCVD":
		return "b-wait"
	}
	return "b-neutral"
}

// pretty indents JSON; anything else is returned as text.
func pretty(v any) string {
	var raw []byte
	switch t := v.(type) {
	case json.RawMessage:
		raw = t
	case []byte:
		raw = t
	case string:
		raw = []byte(t)
	default:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
	// Re-encoded without Go's \u003c escapes, so that text reads as sent;
	// the template escapes it for HTML.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v2 any
	if dec.Decode(&v2) == nil && !dec.More() {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if enc.Encode(v2) == nil {
			return strings.TrimRight(buf.String(), "\n")
		}
	}
	return text(raw)
}

// text shows bytes as text: invalid UTF-8 is replaced.
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// clip cuts s to n runes with an ellipsis.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
