package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// parseForm parses an application/x-www-form-urlencoded body.
func parseForm(body []byte) (url.Values, error) {
	return url.ParseQuery(string(body))
}

// Browser drives the simulator like a customer's browser, without
// JavaScript: it posts the shop's form to Paypage, chooses on the payment
// page, and posts the manual response back to the shop.
type Browser struct {
	// Client is the HTTP client; redirects are not followed by Return
	// (the test sees the shop's 303).
	Client *http.Client
}

// NewBrowser returns a Browser with a default client.
func NewBrowser() *Browser { return &Browser{Client: &http.Client{}} }

// Page is the payment page the browser landed on.
type Page struct {
	URL           string // absolute URL of the payment page
	TransactionID string
	// ResponseCode is set when Paypage refused the request (no page).
	ResponseCode string
	Status       int
	Body         []byte
}

// Refused reports whether Paypage refused the request.
func (p *Page) Refused() bool { return p.ResponseCode != "" }

// Manual is the manual response the payment's result page carries.
type Manual struct {
	TransactionID string
	ResponseCode  string
	// Returns is false when the customer never returns (fault): Action and
	// Fields are then empty.
	Returns bool
	Action  string     // normalReturnUrl
	Fields  url.Values // Data, Seal, InterfaceVersion, Encode, SealAlgorithm
	// returned is the simulator URL told when the form was posted.
	returned string
}

// Open posts fields to url (the shop's PaymentInit.RedirectURL and
// Fields: Paypage POST or a JSON redirection) and returns the page.
func (b *Browser) Open(ctx context.Context, method, target string, fields map[string]string) (*Page, error) {
	v := url.Values{}
	for k, x := range fields {
		v.Set(k, x)
	}
	if method == "" {
		method = http.MethodPost
	}
	var req *http.Request
	var err error
	if strings.EqualFold(method, http.MethodGet) {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, target+"?"+v.Encode(), nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(v.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("browser open: %w", err)
	}
	resp, err := b.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("browser open %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("browser open %s: %w", target, err)
	}
	p := &Page{Status: resp.StatusCode, Body: body, ResponseCode: resp.Header.Get("X-Sips-Response-Code")}
	if resp.StatusCode == http.StatusOK {
		p.ResponseCode = ""
		p.TransactionID = resp.Header.Get("X-Sim-Transaction")
		p.URL = resp.Header.Get("X-Sim-Payment-Page")
		if p.URL == "" || p.TransactionID == "" {
			return nil, fmt.Errorf("browser open %s: not a simulator payment page", target)
		}
		return p, nil
	}
	if p.ResponseCode == "" {
		return nil, fmt.Errorf("browser open %s: HTTP %d: %s", target, resp.StatusCode, clip(string(body), 200))
	}
	return p, nil
}

// Choose submits a choice on the payment page and returns the manual
// response the result page carries.
func (b *Browser) Choose(ctx context.Context, p *Page, c Choice) (*Manual, error) {
	if p == nil || p.Refused() {
		return nil, errors.New("browser choose: no payment page")
	}
	v := url.Values{}
	if c.Outcome != "" {
		v.Set("outcome", c.Outcome)
	}
	if c.CardNumber != "" {
		v.Set("cardNumber", c.CardNumber)
	}
	if c.ResponseCode != "" {
		v.Set("responseCode", c.ResponseCode)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, strings.NewReader(v.Encode()))
	if err != nil {
		return nil, fmt.Errorf("browser choose: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("browser choose: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("browser choose: HTTP %d: %s", resp.StatusCode, clip(string(body), 200))
	}
	m := &Manual{TransactionID: resp.Header.Get("X-Sim-Transaction"), ResponseCode: resp.Header.Get("X-Sips-Response-Code")}
	if resp.Header.Get("X-Sim-Manual") == "none" {
		return m, nil
	}
	action, fields, err := ParseManualForm(body)
	if err != nil {
		return nil, fmt.Errorf("browser choose: %w", err)
	}
	m.Returns, m.Action, m.Fields = true, action, fields
	u, _ := url.Parse(p.URL)
	m.returned = u.Scheme + "://" + u.Host + "/sim/returned/" + m.TransactionID
	return m, nil
}

// Return posts the manual response to the shop like the browser's
// auto-submitting form, tells the simulator it did (for the
// AutomaticAfterManual fault), and returns the shop's answer without
// following redirects. The caller closes the body.
func (b *Browser) Return(ctx context.Context, m *Manual) (*http.Response, error) {
	if m == nil || !m.Returns {
		return nil, errors.New("browser return: the customer does not return")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Action, strings.NewReader(m.Fields.Encode()))
	if err != nil {
		return nil, fmt.Errorf("browser return: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c := *b.client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if m.returned != "" {
		if sreq, e := http.NewRequestWithContext(ctx, http.MethodPost, m.returned, nil); e == nil {
			if sresp, e := b.client().Do(sreq); e == nil {
				sresp.Body.Close()
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("browser return to %s: %w", m.Action, err)
	}
	return resp, nil
}

// Pay opens the payment and makes the choice in one go.
func (b *Browser) Pay(ctx context.Context, method, target string, fields map[string]string, c Choice) (*Manual, error) {
	p, err := b.Open(ctx, method, target, fields)
	if err != nil {
		return nil, err
	}
	if p.Refused() {
		return nil, fmt.Errorf("browser pay: Paypage refused the request with responseCode %s", p.ResponseCode)
	}
	return b.Choose(ctx, p, c)
}

func (b *Browser) client() *http.Client {
	if b.Client != nil {
		return b.Client
	}
	return http.DefaultClient
}

// ParseManualForm finds the form with id "manual" in a result page and
// returns its action and hidden fields.
func ParseManualForm(page []byte) (string, url.Values, error) {
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return "", nil, fmt.Errorf("manual form: %w", err)
	}
	var form *html.Node
	var find func(n *html.Node)
	find = func(n *html.Node) {
		if form != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "form" && attr(n, "id") == "manual" {
			form = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if form == nil {
		return "", nil, errors.New("manual form: no form#manual in the page")
	}
	fields := url.Values{}
	var collect func(n *html.Node)
	collect = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "type") == "hidden" {
			fields.Add(attr(n, "name"), attr(n, "value"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			collect(c)
		}
	}
	collect(form)
	return attr(form, "action"), fields, nil
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
