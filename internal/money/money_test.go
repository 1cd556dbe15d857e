package money

import (
	"math"
	"testing"
)

func TestFormat(t *testing.T) {
	cases := []struct {
		minor    int64
		currency string
		want     string
	}{
		{1000, "EUR", "10.00 EUR"},
		{1, "EUR", "0.01 EUR"},
		{0, "EUR", "0.00 EUR"},
		{-5, "eur", "-0.05 EUR"},
		{123456789, "USD", "1234567.89 USD"},
		{1000, "JPY", "1000 JPY"},
		{1000, "KWD", "1.000 KWD"},
		{7, "TND", "0.007 TND"},
		{1000, "", "10.00"},
		{math.MinInt64, "EUR", "-92233720368547758.08 EUR"},
	}
	for _, c := range cases {
		if got := Format(c.minor, c.currency); got != c.want {
			t.Errorf("Format(%d, %q) = %q, want %q", c.minor, c.currency, got, c.want)
		}
	}
}

func TestFormatDecimal(t *testing.T) {
	cases := []struct{ amount, currency, want string }{
		{"1234.5", "EUR", "1234.50 EUR"},
		{"1234", "EUR", "1234.00 EUR"},
		{"0.01", "EUR", "0.01 EUR"},
		{"12.345", "KWD", "12.345 KWD"},
		{"500", "JPY", "500 JPY"},
		{"15000.00", "", "15000.00"},
		{"n/a", "EUR", "n/a EUR"},
	}
	for _, c := range cases {
		if got := FormatDecimal(c.amount, c.currency); got != c.want {
			t.Errorf("FormatDecimal(%q, %q) = %q, want %q", c.amount, c.currency, got, c.want)
		}
	}
}

func TestParseMajor(t *testing.T) {
	cases := []struct {
		in, currency string
		want         int64
		ok           bool
	}{
		{"10.00", "EUR", 1000, true},
		{"10", "EUR", 1000, true},
		{"10.5", "EUR", 1050, true},
		{"0.01", "EUR", 1, true},
		{"1000", "JPY", 1000, true},
		{"1.234", "KWD", 1234, true},
		{"10.001", "EUR", 0, false},
		{"10.5", "JPY", 0, false},
		{"-1", "EUR", 0, false},
		{"1e3", "EUR", 0, false},
		{"10.", "EUR", 0, false},
		{".5", "EUR", 0, false},
		{"", "EUR", 0, false},
		{"1234567890123456", "EUR", 0, false},
	}
	for _, c := range cases {
		got, err := ParseMajor(c.in, c.currency)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseMajor(%q, %q) = %d, %v; want %d ok=%v", c.in, c.currency, got, err, c.want, c.ok)
		}
		if c.ok && Major(got, c.currency) != FormatDecimal(c.in, c.currency)[:len(Major(got, c.currency))] {
			t.Errorf("round trip of %q: %q", c.in, Major(got, c.currency))
		}
	}
}
