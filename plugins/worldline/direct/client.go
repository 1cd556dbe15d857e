package direct

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// ErrNotFound is returned when the platform answers 404 (unknown hosted
// checkout or payment).
var ErrNotFound = errors.New("not found at Worldline")

// ErrTooLarge is returned when an answer exceeds Client.MaxResponse.
var ErrTooLarge = errors.New("answer too large")

// StatusError is an error answer of the platform.
type StatusError struct {
	Status int
	Body   ErrorResponse
}

// Error implements error.
func (e *StatusError) Error() string {
	msg := ""
	if len(e.Body.Errors) > 0 {
		er := e.Body.Errors[0]
		msg = fmt.Sprintf(": %s %s %s", er.Code, er.ID, clip(er.Message, 200))
	}
	return fmt.Sprintf("worldline answered HTTP %d%s", e.Status, msg)
}

// Client calls the Worldline Direct API.
type Client struct {
	HTTP        *http.Client  // nil: http.DefaultClient
	Timeout     time.Duration // per call (0: 20s)
	MaxResponse int64         // bytes (0: 256 KiB)
	Now         func() time.Time
}

// Endpoint is one merchant's API access.
type Endpoint struct {
	BaseURL    string // e.g. https://payment.preprod.direct.worldline-solutions.com
	MerchantID string // PSPID
	Creds      Credentials
}

func (c *Client) do(ctx context.Context, ep Endpoint, method, path string, body any, headers map[string]string, out any) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	u := ep.BaseURL + "/v2/" + url.PathEscape(ep.MerchantID) + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	SignRequest(req, ep.Creds, now())
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	max := c.MaxResponse
	if max <= 0 {
		max = 256 << 10
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if int64(len(b)) > max {
		return fmt.Errorf("%s %s: %w (more than %d bytes)", method, path, ErrTooLarge, max)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &StatusError{Status: resp.StatusCode}
		_ = json.Unmarshal(b, &se.Body)
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s %s: %w: %w", method, path, ErrNotFound, se)
		}
		return fmt.Errorf("%s %s: %w", method, path, se)
	}
	if err := strictUnmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// strictUnmarshal decodes one JSON value and refuses trailing data.
func strictUnmarshal(b []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// CreateHostedCheckout creates a hosted checkout session
// (POST /v2/{merchantId}/hostedcheckouts). idempotenceKey, when set, is
// sent as X-GCS-Idempotence-Key so that a retried call does not create a
// second session.
func (c *Client) CreateHostedCheckout(ctx context.Context, ep Endpoint, req *CreateHostedCheckoutRequest, idempotenceKey string) (*CreateHostedCheckoutResponse, error) {
	h := map[string]string{}
	if idempotenceKey != "" {
		h["X-GCS-Idempotence-Key"] = idempotenceKey
	}
	var out CreateHostedCheckoutResponse
	if err := c.do(ctx, ep, http.MethodPost, "/hostedcheckouts", req, h, &out); err != nil {
		return nil, err
	}
	if !ValidCheckoutID(out.HostedCheckoutID) || out.RETURNMAC == "" || out.RedirectURL == "" {
		return nil, fmt.Errorf("create hosted checkout: answer lacks hostedCheckoutId, RETURNMAC or redirectUrl")
	}
	return &out, nil
}

// GetHostedCheckout reads a hosted checkout's status
// (GET /v2/{merchantId}/hostedcheckouts/{id}).
func (c *Client) GetHostedCheckout(ctx context.Context, ep Endpoint, id string) (*GetHostedCheckoutResponse, error) {
	if !ValidCheckoutID(id) {
		return nil, fmt.Errorf("get hosted checkout: bad id %q", clip(id, 40))
	}
	var out GetHostedCheckoutResponse
	if err := c.do(ctx, ep, http.MethodGet, "/hostedcheckouts/"+id, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetPaymentDetails reads a payment and its operations
// (GET /v2/{merchantId}/payments/{paymentId}/details).
func (c *Client) GetPaymentDetails(ctx context.Context, ep Endpoint, paymentID string) (*PaymentDetails, error) {
	if _, _, err := SplitPaymentID(paymentID); err != nil {
		return nil, fmt.Errorf("get payment details: %w", err)
	}
	var out PaymentDetails
	if err := c.do(ctx, ep, http.MethodGet, "/payments/"+paymentID+"/details", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RefundPayment asks for a refund of amount (minor units)
// (POST /v2/{merchantId}/payments/{paymentId}/refund). acquit itself never
// refunds; tests and the demo use it to make the platform report a later
// operation.
func (c *Client) RefundPayment(ctx context.Context, ep Endpoint, paymentID string, amount AmountOfMoney) (*Payment, error) {
	if _, _, err := SplitPaymentID(paymentID); err != nil {
		return nil, fmt.Errorf("refund: %w", err)
	}
	var out struct {
		ID           string        `json:"id"`
		Status       string        `json:"status"`
		StatusOutput *StatusOutput `json:"statusOutput"`
	}
	body := map[string]any{"amountOfMoney": amount}
	if err := c.do(ctx, ep, http.MethodPost, "/payments/"+paymentID+"/refund", body, nil, &out); err != nil {
		return nil, err
	}
	return &Payment{ID: out.ID, Status: out.Status, StatusOutput: out.StatusOutput}, nil
}
