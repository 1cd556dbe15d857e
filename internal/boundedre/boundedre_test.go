package boundedre

import (
	"regexp"
	"strings"
	"testing"
)

// TestSameAsBoundedRegexp compares the patterns and bounds acquit's
// packages pass to MustCompile (copied here from config, payments,
// pluginhost and the atos plugin: a pattern changed there is not seen by
// this test; the worldline plugin's test checks its own variables) with
// the bounded regular expressions they replaced, on strings of every
// length from 0 to 140 built from characters inside and outside the
// classes.
func TestSameAsBoundedRegexp(t *testing.T) {
	cases := []struct {
		old      string
		expr     string
		min, max int
	}{
		{`^[a-z][a-z0-9_-]{0,62}$`, `^[a-z][a-z0-9_-]*$`, 1, 63},
		{`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`, `^[A-Za-z0-9][A-Za-z0-9._-]*$`, 1, 128},
		{`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`, `^[A-Za-z0-9][A-Za-z0-9._-]*$`, 1, 63},
		{`^[0-9a-fA-F]{64}$`, `^[0-9a-fA-F]*$`, 64, 64},
		{`^[A-Za-z0-9_.-]{1,32}$`, `^[A-Za-z0-9_.-]*$`, 1, 32},
		{`^[a-z0-9][a-z0-9_-]{0,31}$`, `^[a-z0-9][a-z0-9_-]*$`, 1, 32},
		{`^[A-Za-z0-9._:/-]{1,64}$`, `^[A-Za-z0-9._:/-]*$`, 1, 64},
		{`^[0-9A-Za-z]{1,35}$`, `^[0-9A-Za-z]*$`, 1, 35},
		{`^[a-z0-9][a-z0-9_-]{0,62}$`, `^[a-z0-9][a-z0-9_-]*$`, 1, 63},
		{`^[a-z0-9][a-z0-9_-]{0,63}$`, `^[a-z0-9][a-z0-9_-]*$`, 1, 64},
		{`^[0-9A-Za-z]{1,32}$`, `^[0-9A-Za-z]*$`, 1, 32},
		{`^[0-9A-Za-z]{1,10}$`, `^[0-9A-Za-z]*$`, 1, 10},
		{`^[A-Z0-9_]{1,32}$`, `^[A-Z0-9_]*$`, 1, 32},
	}
	alpha := []string{"a", "Z", "0", "_", "-", ".", ":", "/", "f", "é", "\n", " ", "\x00"}
	for _, c := range cases {
		old, p := regexp.MustCompile(c.old), MustCompile(c.expr, c.min, c.max)
		for n := 0; n <= 140; n++ {
			for _, a := range alpha {
				for _, b := range alpha {
					for _, s := range []string{a + strings.Repeat(b, n), strings.Repeat(b, n) + a, a + strings.Repeat(b, n) + "\n"} {
						if old.MatchString(s) != p.MatchString(s) {
							t.Fatalf("%s against %q: bounded regexp %v, Pattern %v", c.old, s, old.MatchString(s), p.MatchString(s))
						}
					}
				}
			}
		}
	}
}
