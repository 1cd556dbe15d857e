package schedule

import (
	"testing"
	"time"
)

// FuzzSpec: no spec makes Parse or Next panic, and Next always moves
// forward.
func FuzzSpec(f *testing.F) {
	for _, s := range []string{"30 2 * * *", "*/5 * * * *", "0 */5 * * * *", "@every 5m", "@hourly",
		"CRON_TZ=Europe/Paris 0 3 * * MON-FRI", "CRON_TZ=", "TZ=x", "0 0 29 2 *", "1-5/2 * * * *",
		"@every 1s", "* * * * * *", "0 0 31 4 *", "? * * * *"} {
		f.Add(s, int64(1806000000))
	}
	paris, err := LoadLocation("Europe/Paris")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, spec string, unix int64) {
		sp, err := Parse(spec, paris)
		if err != nil {
			return
		}
		cur := time.Unix(unix%(1<<33), 0)
		for i := 0; i < 5; i++ {
			n := sp.Next(cur)
			if n.IsZero() {
				return
			}
			if !n.After(cur) {
				t.Fatalf("%q: Next(%s) = %s, not after", spec, cur, n)
			}
			cur = n
		}
	})
}

func TestLatestDue(t *testing.T) {
	utc := func(s string) time.Time {
		x, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	tests := []struct{ spec, after, now, want string }{
		{"* * * * * *", "2027-01-01T00:00:00Z", "2027-01-08T12:34:56Z", "2027-01-08T12:34:56Z"},
		{"30 2 * * *", "2027-03-25T02:30:00Z", "2027-03-27T12:00:00Z", "2027-03-27T02:30:00Z"},
		{"0 0 1 1 *", "2020-01-01T00:00:00Z", "2027-06-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"@every 7m", "2027-01-01T00:00:00Z", "2027-01-01T10:00:00Z", "2027-01-01T09:56:00Z"}, // multiples of 7m since year 1
		{"* * 2 * * *", "2027-01-01T00:00:00Z", "2027-01-03T12:00:00Z", "2027-01-03T02:59:59Z"},
	}
	for _, tc := range tests {
		sp, err := Parse(tc.spec, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if got := latestDue(sp, utc(tc.after), utc(tc.now)); !got.Equal(utc(tc.want)) {
			t.Errorf("latestDue(%q, %s, %s) = %s, want %s", tc.spec, tc.after, tc.now, got, tc.want)
		}
	}
}

func BenchmarkLatestDueAfterAWeekDown(b *testing.B) {
	sp, err := Parse("* * * * * *", time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	after := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	now := after.Add(7 * 24 * time.Hour)
	for b.Loop() {
		latestDue(sp, after, now)
	}
}
