package worldline

import (
	"regexp"
	"strings"
	"testing"
)

// TestPatternsSameAsBoundedRegexp compares each length-bounded pattern of
// the plugin (boundedre) with the bounded regular expression it replaced,
// on strings of every length from 0 to 140 built from characters inside
// and outside the classes (as internal/boundedre's TestSameAsBoundedRegexp).
func TestPatternsSameAsBoundedRegexp(t *testing.T) {
	cases := []struct {
		old string
		new interface{ MatchString(string) bool }
	}{
		{`^[a-z0-9][a-z0-9_-]{0,63}$`, reName},
		{`^[0-9A-Za-z_.-]{1,64}$`, reMerchantID},
		{`^[0-9A-Za-z_.-]{1,128}$`, reKeyID},
		{`^[0-9A-Za-z]{1,40}$`, reReference},
		{`^[0-9A-Za-z-]{1,64}$`, reEventID},
	}
	alpha := []string{"a", "Z", "0", "9", "_", "-", ".", ":", "/", "é", "\n", " ", "\x00"}
	for _, c := range cases {
		old := regexp.MustCompile(c.old)
		for n := 0; n <= 140; n++ {
			for _, a := range alpha {
				for _, b := range alpha {
					for _, s := range []string{a + strings.Repeat(b, n), strings.Repeat(b, n) + a, a + strings.Repeat(b, n) + "\n"} {
						if old.MatchString(s) != c.new.MatchString(s) {
							t.Fatalf("%s against %q: bounded regexp %v, now %v", c.old, s, old.MatchString(s), c.new.MatchString(s))
						}
					}
				}
			}
		}
	}
}
