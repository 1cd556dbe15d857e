// Package money formats amounts for people: minor units (what acquit stores
// and what the bank protocols carry) to major units with the currency, using
// the ISO 4217 number of decimals of the currency.
package money

import (
	"fmt"
	"strconv"
	"strings"
)

// exponents lists the ISO 4217 currencies whose minor unit is not 1/100.
var exponents = map[string]int{
	// no minor unit
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	// 1/1000
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	// 1/10000
	"CLF": 4, "UYW": 4,
}

// Exponent returns the number of decimals of currency's minor unit (2 for
// an unknown or empty code).
func Exponent(currency string) int {
	if e, ok := exponents[strings.ToUpper(currency)]; ok {
		return e
	}
	return 2
}

// Major renders minor units as a decimal number in major units, e.g.
// Major(1000, "EUR") = "10.00", Major(-5, "EUR") = "-0.05", Major(1000, "JPY") = "1000".
func Major(minor int64, currency string) string {
	e := Exponent(currency)
	neg := minor < 0
	// Work on the decimal digits so that math.MinInt64 does not overflow.
	digits := strconv.FormatInt(minor, 10)
	if neg {
		digits = digits[1:]
	}
	if e > 0 {
		if len(digits) <= e {
			digits = strings.Repeat("0", e-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-e] + "." + digits[len(digits)-e:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// Format renders minor units with the currency, e.g. Format(1000, "EUR") =
// "10.00 EUR". Without a currency it renders the major amount alone.
func Format(minor int64, currency string) string {
	if currency == "" {
		return Major(minor, currency)
	}
	return Major(minor, currency) + " " + strings.ToUpper(currency)
}

// FormatDecimal renders an amount that is already decimal text in major
// units (as in a pain.001 file) with its currency, e.g. "1234.5" + "EUR" =
// "1234.50 EUR". Text that is not a plain decimal is returned as it is, with
// the currency appended.
func FormatDecimal(amount, currency string) string {
	out := amount
	intPart, frac, hasDot := strings.Cut(amount, ".")
	unsigned := strings.TrimPrefix(intPart, "-")
	if unsigned != "" && isDigits(unsigned) && isDigits(frac) && (!hasDot || frac != "") {
		if e := Exponent(currency); len(frac) < e {
			frac += strings.Repeat("0", e-len(frac))
		}
		out = intPart
		if frac != "" {
			out += "." + frac
		}
	}
	if currency == "" {
		return out
	}
	return out + " " + strings.ToUpper(currency)
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ParseMajor reads a decimal amount in major units ("10", "10.5", "10.50")
// and returns it in minor units of currency. More decimals than the
// currency has, signs, exponents and anything but digits and one dot are
// refused.
func ParseMajor(s, currency string) (int64, error) {
	intPart, frac, hasDot := strings.Cut(strings.TrimSpace(s), ".")
	e := Exponent(currency)
	switch {
	case intPart == "" || !isDigits(intPart) || !isDigits(frac) || (hasDot && frac == ""):
		return 0, fmt.Errorf("amount %q: want digits with an optional decimal point, e.g. 10.50", s)
	case len(frac) > e:
		return 0, fmt.Errorf("amount %q: %s has %d decimals", s, strings.ToUpper(currency), e)
	case len(intPart) > 15:
		return 0, fmt.Errorf("amount %q: too large", s)
	}
	frac += strings.Repeat("0", e-len(frac))
	return strconv.ParseInt(intPart+frac, 10, 64)
}
