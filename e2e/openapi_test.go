package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/acquit/acquit/docs"
	"github.com/acquit/acquit/plugins/atos/sim"
)

// validateAgainstDoc checks a real exchange against the operation of doc:
// the status is documented and the body matches its schema.
func validateAgainstDoc(t *testing.T, ctx context.Context, doc *openapi3.T, method, path string, req *http.Request, reqBody []byte, resp *http.Response, body []byte) {
	t.Helper()
	item := doc.Paths.Find(path)
	if item == nil || item.GetOperation(method) == nil {
		t.Fatalf("%s %s is not in docs/openapi.yaml", method, path)
	}
	if reqBody != nil {
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	in := &openapi3filter.RequestValidationInput{Request: req,
		Route:   &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: item.GetOperation(method)},
		Options: &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{RequestValidationInput: in,
		Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)), Options: in.Options})
	if err != nil {
		t.Errorf("%s %s answered %d %s: does not match docs/openapi.yaml: %v", method, path, resp.StatusCode, firstBytes(body), err)
	}
}

func firstBytes(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// TestOpenAPIAgainstDaemon runs a real daemon (Atos plugin, simulator) and
// checks docs/openapi.yaml against it: the served copy is the file, a real
// POST /v1/payments answer (new, then the same order again) validates
// against the documented schema, and every documented operation reaches a
// handler (no mux 404/405) and answers a documented status and body.
func TestOpenAPIAgainstDaemon(t *testing.T) {
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{}, nil)
	e.start(c)
	doc, err := openapi3.NewLoader().LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path string, body []byte, hdr map[string]string) (*http.Request, *http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(c, method, "http://"+e.h.AdminAddr+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.h.Token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return req, resp, b
	}

	_, resp, b := do("GET", "/v1/openapi.yaml", nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, docs.OpenAPI) {
		t.Errorf("GET /v1/openapi.yaml: %d, %d bytes; want 200 and docs/openapi.yaml (%d bytes)", resp.StatusCode, len(b), len(docs.OpenAPI))
	}

	start := []byte(`{"order_id":"OAPI-1","amount":1234,"currency":"EUR","success_url":"` + paySuccessURL + `","failure_url":"` + payFailureURL + `"}`)
	for i, want := range []int{201, 0} {
		req, resp, b := do("POST", "/v1/payments", start, nil)
		if want != 0 && resp.StatusCode != want {
			t.Fatalf("POST /v1/payments #%d: %d %s, want %d", i+1, resp.StatusCode, b, want)
		}
		t.Logf("POST /v1/payments #%d: %d", i+1, resp.StatusCode)
		validateAgainstDoc(t, c, doc, "POST", "/v1/payments", req, start, resp, b)
	}
	req, resp, b := do("POST", "/v1/payments", []byte(`{"order_id":"OAPI-2","amount":-5,"currency":"EUR"}`), nil)
	if resp.StatusCode != 400 {
		t.Errorf("POST /v1/payments with a negative amount: %d %s", resp.StatusCode, b)
	}
	validateAgainstDoc(t, c, doc, "POST", "/v1/payments", req, nil, resp, b)

	param := regexp.MustCompile(`\{[^}]+\}`)
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			concrete := param.ReplaceAllString(path, "x")
			var body []byte
			if method == "POST" {
				body = []byte(`{}`)
			}
			req, resp, b := do(method, concrete, body, nil)
			ct := resp.Header.Get("Content-Type")
			if resp.StatusCode == http.StatusMethodNotAllowed || (resp.StatusCode == 404 && !strings.HasPrefix(ct, "application/json")) {
				t.Errorf("%s %s (documented as %s): %d %s: not served", method, concrete, path, resp.StatusCode, firstBytes(b))
				continue
			}
			if path == "/v1/openapi.yaml" {
				continue // compared byte for byte above (the validator decodes YAML bodies)
			}
			validateAgainstDoc(t, c, doc, method, path, req, body, resp, b)
		}
	}
}
