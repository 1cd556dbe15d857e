// Package sips is the Atos / Worldline Sips 2.0 protocol: the Paypage POST
// Data format and its seal, the Paypage JSON and Office JSON seal, the
// responseCode and acquirerResponseCode tables with their meaning for a
// payment, and clients for Paypage JSON paymentInit and Office
// getTransactionData. It has no dependency on the acquit daemon: only the
// sdk types (Outcome, RejectError) cross its API.
//
// # Data (Paypage POST)
//
// Data is a list of key=value fields joined by '|'. Nested fields are
// written with a dotted key (customerContact.email=a@b.c), lists with a
// comma-separated value (paymentMeanBrandList=VISA,MASTERCARD). Sips
// defines no escaping: there is no way to carry '|' inside a value, and a
// list element cannot contain ','. Worldline's own sample code splits each
// field on '=' and keeps the first two pieces, which truncates a value that
// contains '='. Values that legitimately contain '=' exist (base64 padding
// in returnContext or in 3-D Secure fields), so this package splits each
// field on its FIRST '=' only: the key can never contain '=', the value
// may. The encoder refuses a value containing '|' (it would forge a field)
// or ASCII control characters, and a list element containing ',' or '|'.
// The decoder is strict: empty fields, a field without '=', a malformed
// key, a duplicate key, control characters, non-UTF-8 bytes, more than
// MaxFields fields or more than MaxDataLen bytes are each refused with a
// *sdk.RejectError whose Code is stable (see the Reject* constants).
//
// # Seal
//
// The Paypage POST seal is the lowercase hex HMAC-SHA-256 of Data keyed by
// the merchant's secret key, or, for accounts still on the legacy
// algorithm, the hex SHA-256 of Data followed by the key. With
// Encode=base64 (or base64url) the seal covers the base64 text exactly as
// posted. Verification always uses the algorithm configured for the
// account, never the one a request claims (a posted SealAlgorithm that
// differs is refused as bad_seal: no downgrade), compares in constant time
// (hmac.Equal), and picks the key by the keyVersion found in Data, so that
// several keys can be valid at once during a rotation.
//
// # JSON seal (Paypage JSON, Office)
//
// The JSON seal is HMAC-SHA-256 over the values of the message's fields
// concatenated in the alphabetical order of their names, leaving out
// keyVersion, seal and sealAlgorithm. Worldline's reference code sorts
// nested objects by key recursively and walks arrays in their order,
// concatenating every leaf value; this package does the same: an object's
// leaves come in the order of its sorted keys, an array's in element order,
// strings as their decoded text, numbers as their literal text as sent,
// booleans as "true"/"false" (PHP's reference code would give "1" and "";
// no field acquit sends or reads is a boolean), null as nothing. For flat
// messages this agrees with every implementation seen (Worldline's PHP
// samples, community Python code). Verification works on the
// exact bytes received (numbers keep their literal text) and refuses a
// message with duplicate member names.
package sips
