package unixms

import (
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	for _, tm := range []time.Time{time.Time{}, time.Date(2026, 12, 4, 8, 0, 0, 123e6, time.UTC), time.UnixMilli(1).UTC()} {
		if got := Time(From(tm)); !got.Equal(tm) || got.Location() != time.UTC {
			t.Errorf("%v -> %d -> %v", tm, From(tm), got)
		}
	}
	if From(time.Time{}) != 0 || !Time(0).IsZero() {
		t.Fatal("zero time is not 0")
	}
}

func TestCeil(t *testing.T) {
	base := time.Date(2026, 12, 4, 8, 0, 0, 123e6, time.UTC)
	for _, c := range []struct {
		t    time.Time
		want int64
	}{
		{time.Time{}, 0},
		{base, base.UnixMilli()},
		{base.Add(1), base.UnixMilli() + 1},
		{base.Add(999_999), base.UnixMilli() + 1},
		{time.Unix(0, -1), 0}, // 1 ns before the epoch rounds up to 0 ms
	} {
		if got := Ceil(c.t); got != c.want {
			t.Errorf("Ceil(%v) = %d, want %d", c.t, got, c.want)
		}
		if got := Ceil(c.t); !c.t.IsZero() && Time(got).Before(c.t) && got != 0 {
			t.Errorf("Ceil(%v) = %d is earlier", c.t, got)
		}
	}
}
