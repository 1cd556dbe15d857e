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

// TestEncode: the time part of a published example (the README of
// evokegroup/ulid: 1698075890563 ms gives 01HDEKBMW3904VB2HYTVWWMSY5) and
// the random part's ends.
func TestEncode(t *testing.T) {
	for _, c := range []struct {
		ms   int64
		r    [10]byte
		want string
	}{
		{1698075890563, [10]byte{}, "01HDEKBMW30000000000000000"},
		{1698075890563, [10]byte{9: 1}, "01HDEKBMW30000000000000001"},
		{0, [10]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "0000000000ZZZZZZZZZZZZZZZZ"},
		{1<<48 - 1, [10]byte{0: 0x80}, "7ZZZZZZZZZG000000000000000"},
	} {
		if got := encode(c.ms, c.r); got != c.want {
			t.Errorf("encode(%d, %x) = %s, want %s", c.ms, c.r, got, c.want)
		}
	}
}

// TestRandomFresh: Random's ids of one millisecond share its time part and
// differ in their random part by more than a step of one.
func TestRandomFresh(t *testing.T) {
	at := time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)
	a, b := Random(at), Random(at)
	if a[:10] != b[:10] || a[:10] != encode(at.UnixMilli(), [10]byte{})[:10] {
		t.Fatalf("time parts %s, %s", a[:10], b[:10])
	}
	if a == b || a[10:25] == b[10:25] {
		t.Fatalf("random parts %s and %s: not fresh", a[10:], b[10:])
	}
}
