package sips

// currencies maps ISO 4217 alphabetic codes to the numeric codes Sips uses
// in currencyCode (the list of currencies Sips documents, plus a few).
var currencies = map[string]string{
	"ARS": "032", "AUD": "036", "BHD": "048", "KHR": "116", "CAD": "124",
	"LKR": "144", "CNY": "156", "HRK": "191", "CZK": "203", "DKK": "208",
	"HKD": "344", "HUF": "348", "ISK": "352", "INR": "356", "ILS": "376",
	"JPY": "392", "KRW": "410", "KWD": "414", "MYR": "458", "MUR": "480",
	"MXN": "484", "NPR": "524", "NZD": "554", "NOK": "578", "QAR": "634",
	"RUB": "643", "SAR": "682", "SGD": "702", "ZAR": "710", "SEK": "752",
	"CHF": "756", "THB": "764", "AED": "784", "TND": "788", "GBP": "826",
	"USD": "840", "TWD": "901", "RSD": "941", "RON": "946", "TRY": "949",
	"XAF": "950", "XOF": "952", "XPF": "953", "BGN": "975", "EUR": "978",
	"UAH": "980", "PLN": "985", "BRL": "986", "MAD": "504",
}

var currenciesByNumber = func() map[string]string {
	m := make(map[string]string, len(currencies))
	for a, n := range currencies {
		m[n] = a
	}
	return m
}()

// CurrencyNumeric returns the ISO 4217 numeric code of an alphabetic one.
func CurrencyNumeric(alpha string) (string, bool) {
	n, ok := currencies[alpha]
	return n, ok
}

// CurrencyAlpha returns the ISO 4217 alphabetic code of a numeric one.
func CurrencyAlpha(numeric string) (string, bool) {
	a, ok := currenciesByNumber[numeric]
	return a, ok
}
