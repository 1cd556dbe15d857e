package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time zones load the same everywhere, even without /usr/share/zoneinfo

	"github.com/robfig/cron/v3"
)

// parser accepts 5 fields, 6 with seconds first, and descriptors
// (@yearly, @monthly, @weekly, @daily, @midnight, @hourly, @every <dur>).
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom |
	cron.Month | cron.Dow | cron.Descriptor)

// starBit is robfig/cron's marker of a field written "*".
const starBit = 1 << 63

// maxSpecLen bounds a cron spec.
const maxSpecLen = 256

// Spec is a parsed cron schedule in a time zone, with acquit's daylight
// saving rules, which differ from robfig/cron's:
//
//   - A due wall time that does not exist (it falls in a spring-forward gap,
//     e.g. 02:30 in Europe/Paris on the last Sunday of March) fires at the end
//     of the gap (03:00 local) instead of being skipped.
//   - A due wall time that occurs twice (fall-back) fires once, at its first
//     occurrence, when the hour field is not "*"; schedules with "*" as hour
//     (and @hourly) fire in both occurrences, like cron's wildcard jobs, since
//     they are about elapsed time rather than a time of day.
//   - @every <d> fires at the multiples of d (counted from year 1 UTC), so
//     every instance computes the same due times.
type Spec struct {
	text     string
	loc      *time.Location
	every    time.Duration
	abs      *cron.SpecSchedule // in loc: absolute semantics (robfig)
	civil    *cron.SpecSchedule // same fields in UTC: wall-clock search
	wildHour bool
}

// LoadLocation loads an IANA time zone; "Local" and "UTC" are accepted.
func LoadLocation(name string) (*time.Location, error) {
	if name == "" || len(name) > 64 || strings.ContainsAny(name, " \t\n\x00") {
		return nil, fmt.Errorf("invalid time zone %q", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	return loc, nil
}

// Parse parses a cron spec: "m h dom mon dow", "s m h dom mon dow", or a
// descriptor, optionally prefixed by "CRON_TZ=<zone> ". loc is the zone of
// the schedule when the spec names none (nil means time.Local); a spec
// naming a different zone than a non-Local loc is an error. A spec that
// never fires (e.g. 30 February) is an error.
func Parse(text string, loc *time.Location) (s *Spec, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("invalid cron spec %q", text)
		}
	}()
	if loc == nil {
		loc = time.Local
	}
	body := strings.TrimSpace(text)
	if body == "" {
		return nil, errors.New("empty cron spec")
	}
	if len(body) > maxSpecLen {
		return nil, fmt.Errorf("cron spec longer than %d characters", maxSpecLen)
	}
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		rest, ok := strings.CutPrefix(body, p)
		if !ok {
			continue
		}
		zone, spec, ok := strings.Cut(rest, " ")
		if !ok || strings.TrimSpace(spec) == "" {
			return nil, fmt.Errorf("invalid cron spec %q: %s<zone> must be followed by a schedule", text, p)
		}
		l, err := LoadLocation(zone)
		if err != nil {
			return nil, fmt.Errorf("invalid cron spec %q: %w", text, err)
		}
		if loc != time.Local && loc.String() != l.String() {
			return nil, fmt.Errorf("cron spec %q names time zone %s but the schedule's timezone is %s", text, l, loc)
		}
		loc, body = l, strings.TrimSpace(spec)
		break
	}
	sched, err := parser.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("invalid cron spec %q: %v", text, err)
	}
	s = &Spec{text: text, loc: loc}
	switch t := sched.(type) {
	case cron.ConstantDelaySchedule:
		d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(body, "@every")))
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("invalid cron spec %q: @every needs a duration of at least 1s", text)
		}
		s.every = d.Truncate(time.Second)
	case *cron.SpecSchedule:
		abs, civil := *t, *t
		abs.Location, civil.Location = loc, time.UTC
		s.abs, s.civil = &abs, &civil
		s.wildHour = t.Hour&starBit != 0
	default:
		return nil, fmt.Errorf("invalid cron spec %q: unsupported schedule type %T", text, sched)
	}
	if s.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("cron spec %q never fires", text)
	}
	return s, nil
}

// String returns the spec as written.
func (s *Spec) String() string { return s.text }

// Location returns the spec's time zone.
func (s *Spec) Location() *time.Location { return s.loc }

// Next returns the first due time strictly after t, in t's location, or
// the zero time if none within five years.
func (s *Spec) Next(t time.Time) time.Time {
	if s.every > 0 {
		return t.Truncate(s.every).Add(s.every).In(t.Location())
	}
	var best time.Time
	// Wall-clock search: each matching wall time maps to its first
	// occurrence, or to the end of the gap it falls in.
	c := civilOf(t.In(s.loc))
	for i := 0; i < 200000; i++ {
		c = s.civil.Next(c)
		if c.IsZero() {
			break
		}
		if x := s.instant(c); x.After(t) {
			best = x
			break
		}
	}
	// Schedules with "*" as hour also fire in the second occurrence of
	// repeated wall times: robfig's absolute search does that.
	if s.wildHour {
		if y := s.abs.Next(t); !y.IsZero() && (best.IsZero() || y.Before(best)) {
			best = y
		}
	}
	if best.IsZero() {
		return best
	}
	return best.In(t.Location())
}

// civilOf encodes t's wall time in UTC.
func civilOf(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
}

func sameWall(a, c time.Time) bool {
	return a.Year() == c.Year() && a.Month() == c.Month() && a.Day() == c.Day() &&
		a.Hour() == c.Hour() && a.Minute() == c.Minute() && a.Second() == c.Second()
}

// instant maps a wall time (encoded in UTC) to the first instant the
// schedule's zone shows it, or, for a wall time skipped by a forward
// jump, to the instant of the jump.
func (s *Spec) instant(c time.Time) time.Time {
	_, offBefore := c.Add(-30 * time.Hour).In(s.loc).Zone()
	_, offAfter := c.Add(30 * time.Hour).In(s.loc).Zone()
	var first time.Time
	for _, off := range [2]int{offBefore, offAfter} {
		x := c.Add(-time.Duration(off) * time.Second)
		if sameWall(x.In(s.loc), c) && (first.IsZero() || x.Before(first)) {
			first = x
		}
	}
	if !first.IsZero() {
		return first
	}
	// In a gap: read with the offset in force before it, the wall time lands
	// after the jump; the zone period it lands in starts at the jump.
	x := c.Add(-time.Duration(offBefore) * time.Second).In(s.loc)
	start, _ := x.ZoneBounds()
	if start.IsZero() || start.After(x) {
		return x
	}
	return start
}
