// Package adminclient is the CLI's client for the running daemon's admin API
// (TCP on loopback or a unix socket, bearer token).
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client talks to the admin API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New builds a client for addr ("host:port", "http://host:port" or
// "unix:/path").
func New(addr, token string) *Client {
	tr := &http.Transport{}
	base := addr
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		base = "http://acquit"
	} else if !strings.HasPrefix(addr, "http://") && !strings.HasPrefix(addr, "https://") {
		base = "http://" + addr
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Transport: tr, Timeout: DefaultTimeout}}
}

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 60 * time.Second

// Error is a non-2xx answer.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("admin API: %d: %s", e.Status, e.Msg) }

// Do sends a request with an optional JSON body and decodes the JSON answer
// into out (when non-nil). It returns the raw answer too.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	return c.DoWithHeaders(ctx, method, path, nil, body, out)
}

// DoWithHeaders is Do with extra request headers (empty values are not
// sent). A call whose ctx has a deadline is bounded by that deadline alone
// (long operations such as fetch-acks of a large document set their own);
// otherwise by DefaultTimeout.
func (c *Client) DoWithHeaders(ctx context.Context, method, path string, headers map[string]string, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.http
	if _, ok := ctx.Deadline(); ok {
		bounded := *c.http
		bounded.Timeout = 0 // the caller's deadline
		hc = &bounded
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API %s %s: %w (is the daemon running?)", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return raw, &Error{Status: resp.StatusCode, Msg: msg}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, fmt.Errorf("admin API %s %s: decode: %w", method, path, err)
		}
	}
	return raw, nil
}

// Stream sends body with contentType and returns the response unread, for
// answers that arrive progressively (NDJSON progress lines). A non-2xx
// answer is returned as *Error.
func (c *Client) Stream(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", contentType)
	hc := *c.http
	hc.Timeout = 0 // bounded by ctx
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API %s %s: %w (is the daemon running?)", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, &Error{Status: resp.StatusCode, Msg: msg}
	}
	return resp, nil
}
