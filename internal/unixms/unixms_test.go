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
