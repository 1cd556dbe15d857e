package ulid

import (
	"strings"
	"testing"
	"time"
)

// TestNewIncreases: ids of one process increase strictly, in the same
// millisecond, across milliseconds and when the clock goes back; each is
// 26 Crockford base32 characters.
func TestNewIncreases(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 14, 0, 0, 0, time.UTC)
	times := []time.Time{t0, t0, t0, t0.Add(time.Millisecond), t0.Add(-time.Hour), t0.Add(-time.Hour), t0.Add(time.Second)}
	prev := ""
	for i, at := range times {
		id := New(at)
		if len(id) != 26 || strings.Trim(id, crockford) != "" {
			t.Fatalf("id %d %q: not 26 Crockford base32 characters", i, id)
		}
		if id <= prev {
			t.Fatalf("id %d %q (at %s) not after %q", i, id, at.Format(time.RFC3339Nano), prev)
		}
		prev = id
	}
}

// TestNewTimePrefix: a later millisecond gives a later time prefix.
func TestNewTimePrefix(t *testing.T) {
	a := New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	b := New(time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC))
	if a[:10] >= b[:10] {
		t.Fatalf("time prefixes %q and %q do not follow the clock", a[:10], b[:10])
	}
}
