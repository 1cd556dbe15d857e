// Package boundedre checks a string against a regular expression and a
// length bound kept apart from it.
//
// Go's regexp compiles a bounded repetition such as [a-z]{0,62} into 62
// copies of the class: each such pattern costs tens of kilobytes of heap,
// built at package initialisation and kept for the process's lifetime
// (GODEBUG=inittrace=1 showed 293 KB and 4,056 allocations for the
// daemon's config patterns, 118 KB for the Atos plugin's; issue 12, idle
// daemon). The same check as an unbounded pattern plus a length test
// costs a few kilobytes.
package boundedre

import (
	"fmt"
	"regexp"
)

// Pattern is a pattern without a length bound of its own and the length
// (in bytes) a matching string must have. With ASCII-only character
// classes, as every Pattern in acquit has, a length in bytes is a length
// in characters for each string the pattern accepts.
type Pattern struct {
	re       *regexp.Regexp
	min, max int
}

// MustCompile compiles expr (which must not bound its own repetitions)
// and keeps the bounds; it panics if expr does not compile, as
// regexp.MustCompile does.
func MustCompile(expr string, min, max int) Pattern {
	return Pattern{re: regexp.MustCompile(expr), min: min, max: max}
}

// MatchString reports whether s is min to max bytes long and matches the
// pattern.
func (p Pattern) MatchString(s string) bool {
	return len(s) >= p.min && len(s) <= p.max && p.re.MatchString(s)
}

// String returns the pattern and its length bound, for error messages.
func (p Pattern) String() string {
	if p.min == p.max {
		return fmt.Sprintf("%s (%d characters)", p.re, p.min)
	}
	return fmt.Sprintf("%s (%d to %d characters)", p.re, p.min, p.max)
}
