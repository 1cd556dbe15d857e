// Package unixms converts between time.Time and the one time unit of
// acquit's schema: Unix milliseconds in a BIGINT, 0 for "no time".
package unixms

import "time"

// From returns t as Unix milliseconds (0 for the zero time).
func From(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Time returns the UTC time of v Unix milliseconds (the zero time for 0).
func Time(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// Ceil returns t as Unix milliseconds rounded up (0 for the zero time): a
// deadline (a lease's end, an expiry) stored this way is never earlier than
// t, where From would cut up to a millisecond off it.
func Ceil(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}
