package sips

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// MaxPostBody is the largest Paypage form body accepted: base64 of
// MaxDataLen plus room for the other fields.
const MaxPostBody = MaxDataLen*4/3 + 4096

// Account is one Sips merchant account as the protocol needs it.
type Account struct {
	MerchantID string
	// Keys maps keyVersion to secret key. Several may be valid at once
	// (rotation).
	Keys map[string]string
	// Algorithm is the seal algorithm the account uses.
	Algorithm SealAlgorithm
}

// AccountLookup finds an account by merchantId.
type AccountLookup func(merchantID string) (*Account, bool)

// PostForm is a Paypage POST (request or response) as its form fields.
type PostForm struct {
	Data             string // as posted (base64 text when Encode is set)
	Seal             string
	InterfaceVersion string
	Encode           string // "", "base64" or "base64url"
	SealAlgorithm    string
}

// Values returns the form fields to post.
func (p *PostForm) Values() url.Values {
	v := url.Values{}
	v.Set("Data", p.Data)
	v.Set("Seal", p.Seal)
	if p.InterfaceVersion != "" {
		v.Set("InterfaceVersion", p.InterfaceVersion)
	}
	if p.Encode != "" {
		v.Set("Encode", p.Encode)
	}
	if p.SealAlgorithm != "" {
		v.Set("SealAlgorithm", p.SealAlgorithm)
	}
	return v
}

// Map returns the form fields as a map.
func (p *PostForm) Map() map[string]string {
	m := map[string]string{}
	for k, v := range p.Values() {
		m[k] = v[0]
	}
	return m
}

// ParsePostForm reads a Paypage form body (application/x-www-form-urlencoded)
// strictly: size limit, each known field at most once, Data and Seal
// present.
func ParsePostForm(body []byte) (*PostForm, error) {
	if len(body) > MaxPostBody {
		return nil, reject(RejectTooLarge, "form body is %d bytes, limit %d", len(body), MaxPostBody)
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, reject(RejectMalformed, "form body: %v", err)
	}
	p := &PostForm{}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"Data", &p.Data}, {"Seal", &p.Seal}, {"InterfaceVersion", &p.InterfaceVersion}, {"Encode", &p.Encode}, {"SealAlgorithm", &p.SealAlgorithm}} {
		vs := vals[f.name]
		if len(vs) > 1 {
			return nil, reject(RejectMalformed, "form field %s appears %d times", f.name, len(vs))
		}
		if len(vs) == 1 {
			*f.dst = vs[0]
		}
	}
	if p.Data == "" {
		return nil, reject(RejectMissingField, "form field Data is missing")
	}
	if p.Seal == "" {
		return nil, reject(RejectMissingField, "form field Seal is missing")
	}
	return p, nil
}

// DecodedData returns Data decoded according to Encode.
func (p *PostForm) DecodedData() (string, error) {
	switch strings.ToLower(p.Encode) {
	case "":
		return p.Data, nil
	case "base64":
		if len(p.Data) > MaxDataLen*4/3+4 {
			return "", reject(RejectTooLarge, "Data is %d bytes of base64, limit %d", len(p.Data), MaxDataLen*4/3+4)
		}
		b, err := base64.StdEncoding.Strict().DecodeString(p.Data)
		if err != nil {
			return "", reject(RejectBadEncoding, "Data is not valid base64: %v", err)
		}
		return string(b), nil
	case "base64url":
		if len(p.Data) > MaxDataLen*4/3+4 {
			return "", reject(RejectTooLarge, "Data is %d bytes of base64, limit %d", len(p.Data), MaxDataLen*4/3+4)
		}
		enc := base64.URLEncoding.Strict()
		if !strings.HasSuffix(p.Data, "=") && len(p.Data)%4 != 0 {
			enc = base64.RawURLEncoding.Strict()
		}
		b, err := enc.DecodeString(p.Data)
		if err != nil {
			return "", reject(RejectBadEncoding, "Data is not valid base64url: %v", err)
		}
		return string(b), nil
	}
	return "", reject(RejectBadEncoding, "unknown Encode %q", clip(p.Encode, 20))
}

// BuildPost seals fields for account acc with the key of keyVersion and
// returns the form to post. merchantId and keyVersion are set in Data;
// encode is "", "base64" or "base64url".
func BuildPost(acc *Account, keyVersion string, fields map[string]string, encode, interfaceVersion string) (*PostForm, error) {
	key, ok := acc.Keys[keyVersion]
	if !ok {
		return nil, fmt.Errorf("sips post: merchant %s has no key version %q", acc.MerchantID, keyVersion)
	}
	f := make(map[string]string, len(fields)+2)
	for k, v := range fields {
		f[k] = v
	}
	f["merchantId"] = acc.MerchantID
	f["keyVersion"] = keyVersion
	data, err := EncodeData(f)
	if err != nil {
		return nil, fmt.Errorf("sips post: %w", err)
	}
	switch encode {
	case "":
	case "base64":
		data = base64.StdEncoding.EncodeToString([]byte(data))
	case "base64url":
		data = base64.URLEncoding.EncodeToString([]byte(data))
	default:
		return nil, fmt.Errorf("sips post: unknown encode %q", encode)
	}
	alg := acc.Algorithm
	if alg == "" {
		alg = HMACSHA256
	}
	return &PostForm{
		Data:             data,
		Seal:             ComputeSeal(alg, data, key),
		InterfaceVersion: interfaceVersion,
		Encode:           encode,
		SealAlgorithm:    string(alg),
	}, nil
}

// Response is a verified Paypage response (automatic or manual).
type Response struct {
	Fields               Fields
	MerchantID           string
	KeyVersion           string
	TransactionReference string // "" with the s10 style
	S10TransactionID     string // legacy 6-digit id, "" with transactionReference
	S10TransactionIDDate string // YYYYMMDD of the s10 id
	Amount               int64  // minor units
	CurrencyCode         string // ISO 4217 numeric
	ResponseCode         string
	AcquirerResponseCode string
	AuthorisationID      string
	InterfaceVersion     string
	Interpretation       Interpretation
}

// Reference returns the reference naming the payment and its date (the
// date is set for s10 references only, unique per day).
func (r *Response) Reference() (ref, date string) {
	if r.TransactionReference != "" {
		return r.TransactionReference, ""
	}
	return r.S10TransactionID, r.S10TransactionIDDate
}

// VerifyPost verifies a Paypage response form and decodes it. Checks, in
// order: Data decoding (bad_encoding, too_large), Data syntax (malformed),
// merchantId (missing_field, unknown_merchant), keyVersion (missing_field,
// unknown_key_version), SealAlgorithm matching the account (bad_seal), the
// seal over Data as posted (bad_seal), then the fields every response must
// carry (missing_field, malformed).
func VerifyPost(p *PostForm, lookup AccountLookup) (*Response, error) {
	data, err := p.DecodedData()
	if err != nil {
		return nil, err
	}
	f, err := ParseData(data)
	if err != nil {
		return nil, err
	}
	mid := f["merchantId"]
	if mid == "" {
		return nil, reject(RejectMissingField, "Data has no merchantId")
	}
	acc, ok := lookup(mid)
	if !ok {
		return nil, reject(RejectUnknownMerchant, "merchantId %q is not configured", clip(mid, 20))
	}
	kv := f["keyVersion"]
	if kv == "" {
		return nil, reject(RejectMissingField, "Data has no keyVersion")
	}
	key, ok := acc.Keys[kv]
	if !ok {
		return nil, reject(RejectUnknownKeyVersion, "merchant %s has no key version %q", mid, clip(kv, 10))
	}
	alg := acc.Algorithm
	if alg == "" {
		alg = HMACSHA256
	}
	if p.SealAlgorithm != "" {
		claimed, err := ParseSealAlgorithm(p.SealAlgorithm)
		if err != nil || claimed != alg {
			return nil, reject(RejectBadSeal, "SealAlgorithm %q does not match the account's %s", clip(p.SealAlgorithm, 20), alg)
		}
	}
	if !CheckSeal(alg, p.Data, key, p.Seal) {
		return nil, reject(RejectBadSeal, "seal does not match Data (merchant %s, key version %s, %s)", mid, kv, alg)
	}
	return responseFromFields(f, p.InterfaceVersion)
}

// responseFromFields reads the fields of a verified response.
func responseFromFields(f Fields, interfaceVersion string) (*Response, error) {
	r := &Response{
		Fields:               f,
		MerchantID:           f["merchantId"],
		KeyVersion:           f["keyVersion"],
		TransactionReference: f["transactionReference"],
		S10TransactionID:     first(f["s10TransactionReference.s10TransactionId"], f["s10TransactionId"]),
		S10TransactionIDDate: first(f["s10TransactionReference.s10TransactionIdDate"], f["s10TransactionIdDate"]),
		CurrencyCode:         f["currencyCode"],
		ResponseCode:         f["responseCode"],
		AcquirerResponseCode: f["acquirerResponseCode"],
		AuthorisationID:      f["authorisationId"],
		InterfaceVersion:     interfaceVersion,
	}
	if r.ResponseCode == "" {
		return nil, reject(RejectMissingField, "Data has no responseCode")
	}
	if r.TransactionReference == "" && r.S10TransactionID == "" {
		return nil, reject(RejectMissingField, "Data has neither transactionReference nor s10TransactionReference.s10TransactionId")
	}
	if r.TransactionReference == "" && r.S10TransactionIDDate == "" {
		return nil, reject(RejectMissingField, "Data has an s10TransactionId without its s10TransactionIdDate")
	}
	if r.S10TransactionID != "" && !isDigits(r.S10TransactionID, 6, 6) {
		return nil, reject(RejectMalformed, "s10TransactionId %q is not 6 digits", clip(r.S10TransactionID, 12))
	}
	if r.S10TransactionIDDate != "" && !isDigits(r.S10TransactionIDDate, 8, 8) {
		return nil, reject(RejectMalformed, "s10TransactionIdDate %q is not YYYYMMDD", clip(r.S10TransactionIDDate, 12))
	}
	amt := f["amount"]
	if amt == "" {
		return nil, reject(RejectMissingField, "Data has no amount")
	}
	if !isDigits(amt, 1, 12) {
		return nil, reject(RejectMalformed, "amount %q is not a number of minor units", clip(amt, 16))
	}
	r.Amount, _ = strconv.ParseInt(amt, 10, 64)
	if r.CurrencyCode == "" {
		return nil, reject(RejectMissingField, "Data has no currencyCode")
	}
	r.Interpretation = Interpret(r.ResponseCode, r.AcquirerResponseCode)
	return r, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// isDigits reports whether s is min..max ASCII digits.
func isDigits(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
