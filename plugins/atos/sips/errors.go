package sips

import (
	"errors"

	"github.com/acquit/acquit/sdk"
)

// Stable RejectError codes for untrusted input.
const (
	RejectBadSeal           = "bad_seal"
	RejectUnknownKeyVersion = "unknown_key_version"
	RejectUnknownMerchant   = "unknown_merchant"
	RejectMissingField      = "missing_field"
	RejectTooLarge          = "too_large"
	RejectBadEncoding       = "bad_encoding"
	RejectMalformed         = "malformed"
)

// reject builds a *sdk.RejectError.
func reject(code, format string, args ...any) error {
	return sdk.Reject(code, format, args...)
}

// RejectCode returns the Code of a *sdk.RejectError in err's chain, or "".
func RejectCode(err error) string {
	var rej *sdk.RejectError
	if errors.As(err, &rej) {
		return rej.Code
	}
	return ""
}
