package hooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// defaultHTTPClient verifies TLS (system roots, TLS 1.2+), follows at most
// 5 redirects, times out, and lets g check every address it connects to
// (no proxy from the environment: the guard must see the real peer).
func defaultHTTPClient(g *dialGuard) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.Proxy = nil
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if g != nil {
		d.Control = g.control
	}
	tr.DialContext = d.DialContext
	return &http.Client{
		Transport: tr,
		Timeout:   60 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return fmt.Errorf("stopped after %d redirects", len(via))
			}
			if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
				return fmt.Errorf("redirect to %s refused", req.URL.Scheme)
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect from https to %s refused", req.URL.Scheme)
			}
			return nil
		},
	}
}

// http.get(url [, opts]) -> response | nil, err
func (s *vm) httpGet(L *lua.LState) int {
	opts := L.OptTable(2, nil)
	return s.doHTTP(L, "GET", L.CheckString(1), lua.LNil, opts)
}

// http.post(url, body [, opts]) -> response | nil, err
func (s *vm) httpPost(L *lua.LState) int {
	opts := L.OptTable(3, nil)
	return s.doHTTP(L, "POST", L.CheckString(1), L.Get(2), opts)
}

// http.request{method=, url=, headers=, body=, timeout=} -> response | nil, err
func (s *vm) httpRequest(L *lua.LState) int {
	t := L.CheckTable(1)
	method := strings.ToUpper(lua.LVAsString(t.RawGetString("method")))
	if method == "" {
		method = "GET"
	}
	u, ok := t.RawGetString("url").(lua.LString)
	if !ok {
		L.ArgError(1, "url missing")
	}
	return s.doHTTP(L, method, string(u), t.RawGetString("body"), t)
}

var methods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "HEAD": true, "OPTIONS": true}

func redactHeader(k, v string) string {
	if secretKey(k) || strings.EqualFold(k, "x-api-key") || strings.EqualFold(k, "proxy-authorization") {
		return "[redacted]"
	}
	return v
}

func (s *vm) doHTTP(L *lua.LState, method, rawURL string, body lua.LValue, opts *lua.LTable) int {
	c := s.cur
	if !methods[method] {
		L.ArgError(1, fmt.Sprintf("http method %q not allowed", method))
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.fail(L, ErrForbidden, "http: %q is not an http(s) URL", truncate(rawURL, 200))
	}
	if u.User != nil {
		c.fail(L, ErrForbidden, "http: credentials in the URL are refused (use an Authorization header)")
	}
	headers := http.Header{}
	var payload []byte
	switch b := body.(type) {
	case *lua.LNilType:
	case lua.LString:
		payload = []byte(b)
	case *lua.LTable:
		v, err := s.fromLua(b, 0)
		if err != nil {
			L.RaiseError("http: body: %v", err)
		}
		payload, err = jsonMarshal(v)
		if err != nil {
			L.RaiseError("http: body: %v", err)
		}
		headers.Set("Content-Type", "application/json")
	default:
		L.RaiseError("http: body must be a string or a table, got %s", body.Type())
	}
	if len(payload) > s.e.opts.MaxString {
		c.fail(L, ErrLimit, "http: request body of %d bytes exceeds %d", len(payload), s.e.opts.MaxString)
	}
	timeout := DefaultHTTPTimeout
	if opts != nil {
		if h, ok := opts.RawGetString("headers").(*lua.LTable); ok {
			h.ForEach(func(k, v lua.LValue) {
				ks, kok := k.(lua.LString)
				if !kok {
					return
				}
				headers.Set(string(ks), v.String())
			})
		}
		if t, ok := opts.RawGetString("timeout").(lua.LNumber); ok && t > 0 && !math.IsNaN(float64(t)) {
			timeout = time.Duration(math.Min(float64(t), 3600) * float64(time.Second))
		}
	}
	for k, vs := range headers {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") || strings.ContainsAny(k, "\r\n\x00 :") {
				c.fail(L, ErrForbidden, "http: invalid header %q", truncate(k, 64))
			}
		}
	}
	if headers.Get("User-Agent") == "" {
		headers.Set("User-Agent", "acquit-hooks/1")
	}
	rec := HTTPCall{Method: method, URL: redactURL(u), BodySize: len(payload), Headers: map[string]string{}}
	for k := range headers {
		rec.Headers[k] = redactHeader(k, headers.Get(k))
	}
	start := time.Now()
	record := func() {
		rec.Duration = time.Since(start)
		if c.trace != nil {
			c.trace.HTTPCalls = append(c.trace.HTTPCalls, rec)
		}
	}
	if c.dry && c.offline {
		rec.Status = 200
		record()
		resp := L.CreateTable(0, 4)
		resp.RawSetString("status", lua.LNumber(200))
		resp.RawSetString("headers", L.NewTable())
		resp.RawSetString("body", lua.LString(""))
		resp.RawSetString("dry_run", lua.LTrue)
		L.Push(resp)
		return 1
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(payload))
	if err != nil {
		L.RaiseError("http: %v", err)
	}
	req.Header = headers
	res, err := s.e.http.Do(req)
	if err != nil {
		rec.Error = err.Error()
		record()
		var refused *addrRefusedError
		if errors.As(err, &refused) {
			s.e.log.Warn().Str("script", c.script).Str("hook", c.function).Str("event_id", c.eventID).Str("url", rec.URL).
				Str("address", refused.addr.String()).Str("reason", refused.reason).Msg("hook http request refused")
			c.fail(L, ErrForbidden, "http %s %s: %s", method, rec.URL, refused.Error())
		}
		if c.ctx.Err() != nil {
			L.RaiseError("http %s %s: %v", method, rec.URL, c.ctx.Err())
		}
		L.Push(lua.LNil)
		L.Push(lua.LString(fmt.Sprintf("http %s %s: %v", method, rec.URL, err)))
		return 2
	}
	defer res.Body.Close()
	rec.Sent, rec.Status = true, res.StatusCode
	max := s.e.opts.MaxHTTPResponse
	data, err := io.ReadAll(io.LimitReader(res.Body, max+1))
	if err == nil && int64(len(data)) > max {
		err = fmt.Errorf("response body larger than %d bytes", max)
	}
	if err != nil {
		rec.Error = err.Error()
		record()
		L.Push(lua.LNil)
		L.Push(lua.LString(fmt.Sprintf("http %s %s: %v", method, rec.URL, err)))
		return 2
	}
	record()
	resp := L.CreateTable(0, 3)
	resp.RawSetString("status", lua.LNumber(res.StatusCode))
	h := L.CreateTable(0, len(res.Header))
	n := 0
	for k, vs := range res.Header {
		if n++; n > 100 {
			break
		}
		h.RawSetString(strings.ToLower(k), lua.LString(strings.Join(vs, ", ")))
	}
	resp.RawSetString("headers", h)
	resp.RawSetString("body", lua.LString(data))
	L.Push(resp)
	return 1
}

func redactURL(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			if secretKey(k) || strings.EqualFold(k, "key") || strings.EqualFold(k, "sig") {
				q.Set(k, "redacted")
			}
		}
		c.RawQuery = q.Encode()
	}
	return c.String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// http.escape(s) -> s escaped for one URL path segment
func (s *vm) httpEscape(L *lua.LState) int {
	L.Push(lua.LString(url.PathEscape(L.CheckString(1))))
	return 1
}

// http.query_escape(s) -> s escaped for a query parameter
func (s *vm) httpQueryEscape(L *lua.LState) int {
	L.Push(lua.LString(url.QueryEscape(L.CheckString(1))))
	return 1
}
