package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// at parses a wall time with an explicit offset, so the expected instants
// are unambiguous ("2027-10-31T02:30:00+01:00").
func at(t testing.TB, s string) time.Time {
	t.Helper()
	x, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestSpecNext(t *testing.T) {
	tests := []struct {
		name, spec, zone, from string
		want                   []string // successive due times
	}{
		{"plain day", "30 2 * * *", "Europe/Paris", "2027-06-01T00:00:00+02:00",
			[]string{"2027-06-01T02:30:00+02:00", "2027-06-02T02:30:00+02:00"}},
		{"spring gap runs at 03:00 Paris", "30 2 * * *", "Europe/Paris", "2027-03-27T12:00:00+01:00",
			[]string{"2027-03-28T03:00:00+02:00", "2027-03-29T02:30:00+02:00"}},
		{"spring gap runs at 03:00 Berlin", "30 2 * * *", "Europe/Berlin", "2027-03-27T12:00:00+01:00",
			[]string{"2027-03-28T03:00:00+02:00", "2027-03-29T02:30:00+02:00"}},
		{"spring gap with seconds field", "0 30 2 * * *", "Europe/Paris", "2027-03-28T01:59:59+01:00",
			[]string{"2027-03-28T03:00:00+02:00"}},
		{"two due times in the gap fire once", "15,45 2 * * *", "Europe/Paris", "2027-03-28T00:00:00+01:00",
			[]string{"2027-03-28T03:00:00+02:00", "2027-03-29T02:15:00+02:00", "2027-03-29T02:45:00+02:00"}},
		{"gap and 03:00 fire once", "0 2,3 * * *", "Europe/Paris", "2027-03-28T00:00:00+01:00",
			[]string{"2027-03-28T03:00:00+02:00", "2027-03-29T02:00:00+02:00"}},
		{"fall-back fixed time runs once Paris", "30 2 * * *", "Europe/Paris", "2027-10-30T12:00:00+02:00",
			[]string{"2027-10-31T02:30:00+02:00", "2027-11-01T02:30:00+01:00"}},
		{"fall-back fixed time runs once Berlin", "30 2 * * *", "Europe/Berlin", "2027-10-30T12:00:00+02:00",
			[]string{"2027-10-31T02:30:00+02:00", "2027-11-01T02:30:00+01:00"}},
		{"fall-back from inside second occurrence", "*/15 2 * * *", "Europe/Paris", "2027-10-31T02:45:00+02:00",
			[]string{"2027-11-01T02:00:00+01:00"}},
		{"fall-back started in the second 02:10", "30 2 * * *", "Europe/Paris", "2027-10-31T02:10:00+01:00",
			[]string{"2027-11-01T02:30:00+01:00"}},
		{"wildcard hour fires in both occurrences", "0 * * * *", "Europe/Paris", "2027-10-31T01:30:00+02:00",
			[]string{"2027-10-31T02:00:00+02:00", "2027-10-31T02:00:00+01:00", "2027-10-31T03:00:00+01:00"}},
		{"wildcard hour every 30m over fall-back", "*/30 * * * *", "Europe/Berlin", "2027-10-31T02:15:00+02:00",
			[]string{"2027-10-31T02:30:00+02:00", "2027-10-31T02:00:00+01:00", "2027-10-31T02:30:00+01:00", "2027-10-31T03:00:00+01:00"}},
		{"wildcard hour over spring gap", "*/30 * * * *", "Europe/Paris", "2027-03-28T01:15:00+01:00",
			[]string{"2027-03-28T01:30:00+01:00", "2027-03-28T03:00:00+02:00", "2027-03-28T03:30:00+02:00"}},
		{"hourly descriptor over spring gap", "@hourly", "Europe/Paris", "2027-03-28T01:00:00+01:00",
			[]string{"2027-03-28T03:00:00+02:00", "2027-03-28T04:00:00+02:00"}},
		{"hourly descriptor over fall-back", "@hourly", "Europe/Paris", "2027-10-31T01:00:00+02:00",
			[]string{"2027-10-31T02:00:00+02:00", "2027-10-31T02:00:00+01:00", "2027-10-31T03:00:00+01:00"}},
		{"daily descriptor on DST day", "@daily", "Europe/Paris", "2027-03-27T23:00:00+01:00",
			[]string{"2027-03-28T00:00:00+01:00", "2027-03-29T00:00:00+02:00"}},
		{"weekly descriptor", "@weekly", "Europe/Berlin", "2027-03-24T10:00:00+01:00",
			[]string{"2027-03-28T00:00:00+01:00", "2027-04-04T00:00:00+02:00"}},
		{"monthly descriptor", "@monthly", "UTC", "2027-01-31T10:00:00Z",
			[]string{"2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"}},
		{"every is aligned", "@every 5m", "Europe/Paris", "2027-03-28T01:58:10+01:00",
			[]string{"2027-03-28T03:00:00+02:00", "2027-03-28T03:05:00+02:00"}},
		{"CRON_TZ prefix", "CRON_TZ=Europe/Berlin 30 2 * * *", "", "2027-03-28T00:00:00+01:00",
			[]string{"2027-03-28T03:00:00+02:00"}},
		{"seconds", "*/20 * * * * *", "UTC", "2027-01-01T00:00:05Z",
			[]string{"2027-01-01T00:00:20Z", "2027-01-01T00:00:40Z", "2027-01-01T00:01:00Z"}},
		{"day of week", "0 9 * * MON-FRI", "Europe/Paris", "2027-03-26T10:00:00+01:00",
			[]string{"2027-03-29T09:00:00+02:00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var loc *time.Location
			if tc.zone != "" {
				loc = mustLoc(t, tc.zone)
			}
			sp, err := Parse(tc.spec, loc)
			if err != nil {
				t.Fatal(err)
			}
			cur := at(t, tc.from)
			for i, w := range tc.want {
				got := sp.Next(cur)
				if !got.Equal(at(t, w)) {
					t.Fatalf("step %d: Next(%s) = %s, want %s", i, cur.Format(time.RFC3339), got.Format(time.RFC3339), w)
				}
				cur = got
			}
		})
	}
}

// TestSpecDailyOnceEveryDay walks a whole year of a daily schedule whose
// wall time falls in the spring gap in Paris, and one whose wall time is
// repeated on the fall-back day: each local day gets exactly one run.
func TestSpecDailyOnceEveryDay(t *testing.T) {
	for _, zone := range []string{"Europe/Paris", "Europe/Berlin", "America/New_York"} {
		for _, spec := range []string{"30 2 * * *", "0 2 * * *", "59 2 * * *", "15 1 * * *"} {
			loc := mustLoc(t, zone)
			sp, err := Parse(spec, loc)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Date(2027, 1, 1, 0, 0, 0, 0, loc)
			end := time.Date(2028, 1, 1, 0, 0, 0, 0, loc)
			days := map[string]int{}
			for cur := sp.Next(start); cur.Before(end); cur = sp.Next(cur) {
				days[cur.In(loc).Format("2006-01-02")]++
			}
			if len(days) != 365 {
				t.Errorf("%s %s: %d days with a run, want 365", zone, spec, len(days))
			}
			for d, n := range days {
				if n != 1 {
					t.Errorf("%s %s: %d runs on %s, want 1", zone, spec, n, d)
				}
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	tests := []struct {
		spec string
		loc  *time.Location
		want string
	}{
		{"", nil, "empty cron spec"},
		{"CRON_TZ=Europe/Paris", nil, "must be followed by a schedule"},
		{"TZ=Europe/Paris", nil, "must be followed by a schedule"},
		{"CRON_TZ=Mars/Olympus 0 * * * *", nil, `unknown time zone "Mars/Olympus"`},
		{"CRON_TZ=../../etc/passwd 0 * * * *", nil, "unknown time zone"},
		{"CRON_TZ=Europe/Berlin 0 * * * *", paris, "names time zone Europe/Berlin but the schedule's timezone is Europe/Paris"},
		{"61 * * * *", nil, "invalid cron spec"},
		{"* * * *", nil, "invalid cron spec"},
		{"* * * * * * *", nil, "invalid cron spec"},
		{"0 0 30 2 *", nil, "never fires"},
		{"@every 500ms", nil, "at least 1s"},
		{"@every -5m", nil, "at least 1s"},
		{"@every", nil, "invalid cron spec"},
		{"@fortnightly", nil, "invalid cron spec"},
		{"*/0 * * * *", nil, "invalid cron spec"},
		{"5-1 * * * *", nil, "invalid cron spec"},
		{strings.Repeat("1,", 200) + "1 * * * *", nil, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := Parse(tc.spec, tc.loc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) error = %v, want it to contain %q", tc.spec, err, tc.want)
			}
		})
	}
}

func BenchmarkSpecNext(b *testing.B) {
	loc := mustLoc(b, "Europe/Paris")
	for _, spec := range []string{"*/5 * * * *", "30 2 * * *", "@every 5m"} {
		sp, err := Parse(spec, loc)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(spec, func(b *testing.B) {
			t := time.Date(2027, 3, 28, 0, 0, 0, 0, loc)
			for b.Loop() {
				t = sp.Next(t)
			}
		})
	}
}

// TestSpecHourlyEveryElapsedHour: with "*" as hour, a year of hourly runs
// is one run per elapsed hour, DST days included (23 on the spring day, 25
// on the autumn one).
func TestSpecHourlyEveryElapsedHour(t *testing.T) {
	for _, zone := range []string{"Europe/Paris", "Europe/Berlin"} {
		loc := mustLoc(t, zone)
		sp, err := Parse("0 * * * *", loc)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2027, 1, 1, 0, 0, 0, 0, loc)
		end := time.Date(2028, 1, 1, 0, 0, 0, 0, loc)
		prev, n := start, 0
		perDay := map[string]int{}
		for cur := sp.Next(start); cur.Before(end); cur = sp.Next(cur) {
			if d := cur.Sub(prev); d != time.Hour {
				t.Fatalf("%s: %s after %s: gap %s", zone, cur, prev, d)
			}
			perDay[cur.In(loc).Format("2006-01-02")]++
			prev = cur
			n++
		}
		if n != 8760-1 { // the first run (00:00 on 1 January) is start itself
			t.Errorf("%s: %d runs", zone, n)
		}
		if perDay["2027-03-28"] != 23 || perDay["2027-10-31"] != 25 {
			t.Errorf("%s: %d runs on the spring day, %d on the autumn day", zone, perDay["2027-03-28"], perDay["2027-10-31"])
		}
	}
}
