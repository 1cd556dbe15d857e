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
