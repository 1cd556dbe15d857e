package direct

import (
	"regexp"
	"strings"
	"testing"
)

// TestSplitPaymentIDSameAsRegexp compares SplitPaymentID with the bounded
// regular expression it replaced, on strings of 0 to 140 characters: two
// runs of digits around '_' of every length pair up to 140 in all, each
// with a character inside or outside the classes at its start, at its end
// or in place of the '_'.
func TestSplitPaymentIDSameAsRegexp(t *testing.T) {
	old := regexp.MustCompile(`^([0-9]{1,20})_([0-9]{1,10})$`)
	check := func(s string) {
		t.Helper()
		p, o, err := SplitPaymentID(s)
		m := old.FindStringSubmatch(s)
		switch {
		case m == nil && err == nil:
			t.Fatalf("%q: the regexp refused it, SplitPaymentID gave %q, %q", s, p, o)
		case m != nil && (err != nil || p != m[1] || o != m[2]):
			t.Fatalf("%q: the regexp gave %q, %q; SplitPaymentID %q, %q, %v", s, m[1], m[2], p, o, err)
		}
	}
	alpha := []string{"", "0", "9", "_", "a", "-", " ", "\n", "\x00", "é", "٣"}
	for n := 0; n <= 140; n++ {
		for m := 0; n+m <= 139; m++ {
			l, r := strings.Repeat("1", n), strings.Repeat("7", m)
			for _, a := range alpha {
				check(a + l + "_" + r)
				check(l + "_" + r + a)
				check(l + a + r)
			}
		}
		for _, a := range alpha {
			for _, b := range alpha {
				check(a + strings.Repeat(b, n))
				check(strings.Repeat(b, n) + a)
			}
		}
	}
}
