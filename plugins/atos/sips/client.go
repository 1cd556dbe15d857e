package sips

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acquit/acquit/sdk"
)

// Office and Paypage JSON paths, relative to the platform's base URL.
const (
	PathGetTransactionData = "/rs-services/v2/diagnostic/getTransactionData"
	PathPaymentInitJSON    = "/rs-services/v2/paymentInit"
	PathPaymentInitPost    = "/paymentInit"
)

// Client calls Sips JSON services (Paypage JSON paymentInit, Office).
type Client struct {
	// HTTP is the client used; nil means one with Timeout.
	HTTP *http.Client
	// Timeout bounds one call (default 20s).
	Timeout time.Duration
	// MaxResponse bounds a response body (default 256 KiB).
	MaxResponse int64
}

// APIError is a Sips answer that is not a statement about a payment:
// a refused request (bad seal 34, unknown merchant 03, format 30...) or an
// HTTP error.
type APIError struct {
	Op           string
	HTTPStatus   int
	ResponseCode string
	Message      string
}

func (e *APIError) Error() string {
	if e.ResponseCode != "" {
		return fmt.Sprintf("sips %s: responseCode %s: %s", e.Op, e.ResponseCode, e.Message)
	}
	return fmt.Sprintf("sips %s: HTTP %d: %s", e.Op, e.HTTPStatus, e.Message)
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: c.timeout()}
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 20 * time.Second
}

func (c *Client) maxResponse() int64 {
	if c.MaxResponse > 0 {
		return c.MaxResponse
	}
	return 256 << 10
}

// postJSON posts body and returns the response body, bounded in size.
func (c *Client) postJSON(ctx context.Context, op, url string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sips %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("sips %s: %w", op, err)
	}
	defer resp.Body.Close()
	limit := c.maxResponse()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("sips %s: reading response: %w", op, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("sips %s: %w", op, reject(RejectTooLarge, "response over %d bytes", limit))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Op: op, HTTPStatus: resp.StatusCode, Message: clip(strings.TrimSpace(string(raw)), 200)}
	}
	return raw, nil
}

// unsealedOK lists responseCodes Sips may answer without a seal: request
// refusals, which acquit turns into errors or "ask later", never into a
// payment outcome.
var unsealedOK = map[string]bool{"03": true, "12": true, "30": true, "34": true, "40": true, "90": true, "99": true}

// verifyJSON checks a JSON answer's seal with the account key of
// keyVersion (the answer's own keyVersion when it carries one) and
// returns its fields.
func verifyJSON(raw []byte, acc *Account, keyVersion, codeField string) (Fields, error) {
	flat, f, err := FlattenJSON(raw)
	if err != nil {
		return nil, err
	}
	seal := f["seal"]
	if seal == "" {
		if unsealedOK[f[codeField]] {
			return f, nil
		}
		return nil, reject(RejectMissingField, "answer has no seal")
	}
	kv := keyVersion
	if v := f["keyVersion"]; v != "" {
		kv = v
	}
	key, ok := acc.Keys[kv]
	if !ok {
		return nil, reject(RejectUnknownKeyVersion, "answer sealed with unknown key version %q", clip(kv, 10))
	}
	alg := acc.Algorithm
	if alg == "" {
		alg = HMACSHA256
	}
	if !CheckSeal(alg, flat, key, seal) {
		return nil, reject(RejectBadSeal, "answer seal does not match (merchant %s, key version %s)", acc.MerchantID, kv)
	}
	return f, nil
}

// Reference names a transaction in either style.
type Reference struct {
	TransactionReference string
	S10TransactionID     string
	S10TransactionIDDate string // YYYYMMDD
}

func (r Reference) String() string {
	if r.TransactionReference != "" {
		return r.TransactionReference
	}
	return r.S10TransactionIDDate + "/" + r.S10TransactionID
}

// addTo writes the reference into a JSON message.
func (r Reference) addTo(msg map[string]any) error {
	switch {
	case r.TransactionReference != "":
		msg["transactionReference"] = r.TransactionReference
	case isDigits(r.S10TransactionID, 6, 6) && isDigits(r.S10TransactionIDDate, 8, 8):
		msg["s10TransactionReference"] = map[string]any{
			"s10TransactionId":     r.S10TransactionID,
			"s10TransactionIdDate": r.S10TransactionIDDate,
		}
	default:
		return fmt.Errorf("reference needs a transactionReference or a 6-digit s10TransactionId with its YYYYMMDD date")
	}
	return nil
}

// matches reports whether the answer's fields name the same transaction
// (fields absent from the answer are not held against it).
func (r Reference) matches(f Fields) bool {
	if r.TransactionReference != "" {
		got := f["transactionReference"]
		return got == "" || got == r.TransactionReference
	}
	id := first(f["s10TransactionReference.s10TransactionId"], f["s10TransactionId"])
	date := first(f["s10TransactionReference.s10TransactionIdDate"], f["s10TransactionIdDate"])
	return (id == "" || id == r.S10TransactionID) && (date == "" || date == r.S10TransactionIDDate)
}

// TransactionData is Office's answer to getTransactionData.
type TransactionData struct {
	Fields               Fields
	ResponseCode         string
	TransactionStatus    string
	Amount               int64
	CurrencyCode         string
	AcquirerResponseCode string
	AuthorisationID      string
	Interpretation       Interpretation
}

// OfficeQuery asks Office about one transaction.
type OfficeQuery struct {
	BaseURL          string // Office base URL, e.g. https://office-server.sips-services.com
	Account          *Account
	KeyVersion       string
	InterfaceVersion string // e.g. DR_WS_2.58
	Ref              Reference
}

// GetTransactionData calls Office getTransactionData. A transaction Sips
// never saw (responseCode 25) gives Outcome NotFound; platform trouble
// (90, 99, unknown codes) gives Pending with AskLater; a refused request
// (03, 12, 30, 34, 40) is an *APIError whose Message explains it.
func (c *Client) GetTransactionData(ctx context.Context, q OfficeQuery) (*TransactionData, error) {
	op := "getTransactionData " + q.Ref.String()
	msg := map[string]any{
		"merchantId":       q.Account.MerchantID,
		"interfaceVersion": q.InterfaceVersion,
	}
	if err := q.Ref.addTo(msg); err != nil {
		return nil, fmt.Errorf("sips %s: %w", op, err)
	}
	key, ok := q.Account.Keys[q.KeyVersion]
	if !ok {
		return nil, fmt.Errorf("sips %s: merchant %s has no key version %q", op, q.Account.MerchantID, q.KeyVersion)
	}
	body, err := MarshalSealed(msg, jsonAlg(q.Account), q.KeyVersion, key)
	if err != nil {
		return nil, fmt.Errorf("sips %s: %w", op, err)
	}
	raw, err := c.postJSON(ctx, op, strings.TrimRight(q.BaseURL, "/")+PathGetTransactionData, body)
	if err != nil {
		return nil, err
	}
	f, err := verifyJSON(raw, q.Account, q.KeyVersion, "responseCode")
	if err != nil {
		return nil, fmt.Errorf("sips %s: %w", op, err)
	}
	td := &TransactionData{
		Fields:               f,
		ResponseCode:         f["responseCode"],
		TransactionStatus:    f["transactionStatus"],
		CurrencyCode:         f["currencyCode"],
		AcquirerResponseCode: f["acquirerResponseCode"],
		AuthorisationID:      f["authorisationId"],
	}
	if td.ResponseCode == "" {
		return nil, fmt.Errorf("sips %s: %w", op, reject(RejectMissingField, "answer has no responseCode"))
	}
	if !q.Ref.matches(f) {
		return nil, fmt.Errorf("sips %s: %w", op, reject(RejectMalformed, "answer names another transaction"))
	}
	if m := f["merchantId"]; m != "" && m != q.Account.MerchantID {
		return nil, fmt.Errorf("sips %s: %w", op, reject(RejectMalformed, "answer names another merchant"))
	}
	if a := f["amount"]; a != "" {
		if !isDigits(a, 1, 12) {
			return nil, fmt.Errorf("sips %s: %w", op, reject(RejectMalformed, "amount %q is not a number", clip(a, 16)))
		}
		td.Amount, _ = strconv.ParseInt(a, 10, 64)
	}
	switch td.ResponseCode {
	case "00":
		if td.TransactionStatus == "" {
			return nil, fmt.Errorf("sips %s: %w", op, reject(RejectMissingField, "answer has no transactionStatus"))
		}
		td.Interpretation = InterpretStatus(td.TransactionStatus, td.AcquirerResponseCode)
	case "25":
		td.Interpretation = Interpretation{Outcome: sdk.OutcomeNotFound, Explanation: "Office 25: Sips has no such transaction (the customer never paid, or the reference is wrong)"}
	case "03", "12", "30", "34", "40":
		in := Interpret(td.ResponseCode, "")
		return nil, &APIError{Op: op, ResponseCode: td.ResponseCode, Message: in.Explanation}
	default:
		in := Interpret(td.ResponseCode, "")
		td.Interpretation = Interpretation{Outcome: sdk.OutcomePending, AskLater: true, Explanation: "Office " + in.Explanation}
	}
	return td, nil
}

func jsonAlg(acc *Account) SealAlgorithm {
	if acc.Algorithm == SHA256 {
		return SHA256
	}
	return HMACSHA256
}

// Redirection is Paypage JSON's answer to paymentInit.
type Redirection struct {
	URL           string
	Data          string
	Version       string
	StatusCode    string
	StatusMessage string
	Fields        Fields
}

// FormFields returns what the customer's browser posts to URL.
func (r *Redirection) FormFields() map[string]string {
	return map[string]string{"redirectionVersion": r.Version, "redirectionData": r.Data}
}

// PaymentInit calls Paypage JSON paymentInit at url with msg (merchantId,
// keyVersion and seal are added). A redirectionStatusCode other than 00
// is an *APIError.
func (c *Client) PaymentInit(ctx context.Context, url string, acc *Account, keyVersion string, msg map[string]any) (*Redirection, error) {
	op := "paymentInit"
	if ref, ok := msg["transactionReference"].(string); ok {
		op += " " + ref
	}
	key, ok := acc.Keys[keyVersion]
	if !ok {
		return nil, fmt.Errorf("sips %s: merchant %s has no key version %q", op, acc.MerchantID, keyVersion)
	}
	m := make(map[string]any, len(msg)+1)
	for k, v := range msg {
		m[k] = v
	}
	m["merchantId"] = acc.MerchantID
	body, err := MarshalSealed(m, jsonAlg(acc), keyVersion, key)
	if err != nil {
		return nil, fmt.Errorf("sips %s: %w", op, err)
	}
	raw, err := c.postJSON(ctx, op, url, body)
	if err != nil {
		return nil, err
	}
	f, err := verifyJSON(raw, acc, keyVersion, "redirectionStatusCode")
	if err != nil {
		return nil, fmt.Errorf("sips %s: %w", op, err)
	}
	r := &Redirection{
		URL:           f["redirectionUrl"],
		Data:          f["redirectionData"],
		Version:       f["redirectionVersion"],
		StatusCode:    f["redirectionStatusCode"],
		StatusMessage: f["redirectionStatusMessage"],
		Fields:        f,
	}
	if r.StatusCode != "00" {
		in := Interpret(r.StatusCode, "")
		msg := in.Explanation
		if r.StatusMessage != "" {
			msg += ": " + clip(r.StatusMessage, 200)
		}
		return nil, &APIError{Op: op, ResponseCode: r.StatusCode, Message: msg}
	}
	if r.URL == "" || r.Data == "" {
		return nil, fmt.Errorf("sips %s: %w", op, reject(RejectMissingField, "answer has no redirectionUrl or redirectionData"))
	}
	if !strings.HasPrefix(r.URL, "https://") && !strings.HasPrefix(r.URL, "http://") {
		return nil, fmt.Errorf("sips %s: %w", op, reject(RejectMalformed, "redirectionUrl %q is not http(s)", clip(r.URL, 60)))
	}
	return r, nil
}

// IsAPIError reports whether err is an *APIError and returns it.
func IsAPIError(err error) (*APIError, bool) {
	var e *APIError
	ok := errors.As(err, &e)
	return e, ok
}
