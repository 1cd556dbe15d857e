package direct

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Published vectors of Worldline's SDK test suite (testdata/SOURCES.md).
func TestPublishedSignatureVectors(t *testing.T) {
	cases := []struct{ secret, data, want string }{
		{"secretApiKey", "DELETE\napplication/json\nFri, 06 Jun 2014 13:39:43 GMT\nx-gcs-clientmetainfo:processed header value\n" +
			"x-gcs-customerheader:processed header value\nx-gcs-servermetainfo:processed header value\n/v2/1/tokens/2\n",
			"jXG/ESTtRWawO4OOyxOrtWcQA8XkrZKeoHeGGIj4jws="},
		{"6Kj5HT0MQKC6D8eb7W3lTg71kVKVDSt1", "GET\n\nFri, 06 Jun 2014 13:39:43 GMT\n/v2/1/tokens/2\n",
			"vCos01y77soPNJOW6kDCm4Bu5b2darAZ09PP7Wa+jRA="},
	}
	for _, c := range cases {
		if got := Sign(c.secret, c.data); got != c.want {
			t.Errorf("Sign(%q) = %s, want %s", c.secret, got, c.want)
		}
	}
}

// The string to sign of the SDK suite's testToDataToSign: X-GCS headers
// lower-cased and sorted, others left out, path and query decoded.
func TestStringToSignShape(t *testing.T) {
	h := http.Header{}
	h.Set("X-GCS-ServerMetaInfo", `{"platformIdentifier":"Windows 7/6.1 Java/1.7","sdkIdentifier":"1.0"}`)
	h.Set("Content-Type", "application/json")
	h.Set("X-GCS-ClientMetaInfo", `{"aap","noot"}`)
	h.Set("User-Agent", "Apache-HttpClient/4.3.4 (java 1.5)")
	u, _ := url.Parse("http://localhost:8080/v2/services%20bla/testconnection?aap=noot&mies=geen%20noot")
	got := StringToSign("POST", "application/json", "Mon, 07 Jul 2014 12:12:40 GMT", h, Resource(u))
	want := "POST\napplication/json\nMon, 07 Jul 2014 12:12:40 GMT\n" +
		"x-gcs-clientmetainfo:{\"aap\",\"noot\"}\n" +
		"x-gcs-servermetainfo:{\"platformIdentifier\":\"Windows 7/6.1 Java/1.7\",\"sdkIdentifier\":\"1.0\"}\n" +
		"/v2/services bla/testconnection?aap=noot&mies=geen noot\n"
	if got != want {
		t.Fatalf("string to sign\n%q\nwant\n%q", got, want)
	}
	if v := canonicalValue(" aap\r\n  noot"); v != "aap noot" {
		t.Fatalf("unfolded %q", v)
	}
}

func opensslHMAC(t *testing.T, key string, data []byte) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (tools/test.sh installs it)")
	}
	cmd := exec.Command("sh", "-c", `openssl dgst -sha256 -hmac "$K" -binary | base64`)
	cmd.Env = append(os.Environ(), "K="+key)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// What acquit sends is checked by openssl over the string to sign written
// out by hand from the platform's rules.
func TestSignRequestAgainstOpenSSL(t *testing.T) {
	req, _ := http.NewRequest("POST", "https://payment.preprod.direct.worldline-solutions.com/v2/acquitshop/hostedcheckouts", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GCS-Idempotence-Key", "01JABCDEF")
	now := time.Date(2026, 12, 4, 6, 30, 0, 0, time.UTC)
	SignRequest(req, Credentials{KeyID: "KEY1", Secret: "s3cr3t-api-key"}, now)
	sts := "POST\napplication/json\nFri, 04 Dec 2026 06:30:00 GMT\nx-gcs-idempotence-key:01JABCDEF\n/v2/acquitshop/hostedcheckouts\n"
	want := "GCS v1HMAC:KEY1:" + opensslHMAC(t, "s3cr3t-api-key", []byte(sts))
	if got := req.Header.Get("Authorization"); got != want {
		t.Fatalf("Authorization %q, want %q", got, want)
	}
	if req.Header.Get("Date") != "Fri, 04 Dec 2026 06:30:00 GMT" {
		t.Fatalf("Date %q", req.Header.Get("Date"))
	}
}

func TestVerifyRequest(t *testing.T) {
	now := time.Date(2026, 12, 4, 6, 30, 0, 0, time.UTC)
	keys := func(k string) (string, bool) { return map[string]string{"KEY1": "s3cr3t-api-key"}[k], k == "KEY1" }
	signed := func(mod func(*http.Request)) *http.Request {
		req, _ := http.NewRequest("GET", "http://127.0.0.1/v2/m/hostedcheckouts/123", nil)
		SignRequest(req, Credentials{KeyID: "KEY1", Secret: "s3cr3t-api-key"}, now)
		if mod != nil {
			mod(req)
		}
		return req
	}
	if _, err := VerifyRequest(signed(nil), keys, now, 5*time.Minute); err != nil {
		t.Fatalf("good request refused: %v", err)
	}
	bad := map[string]func(*http.Request){
		"no authorization":  func(r *http.Request) { r.Header.Del("Authorization") },
		"two authorization": func(r *http.Request) { r.Header.Add("Authorization", r.Header.Get("Authorization")) },
		"other scheme":      func(r *http.Request) { r.Header.Set("Authorization", "Bearer x") },
		"unknown key": func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "KEY1", "KEY2", 1))
		},
		"old date": func(r *http.Request) {
			d := now.Add(-6 * time.Minute).Format(http.TimeFormat)
			r.Header.Set("Date", d)
			SignRequest(r, Credentials{KeyID: "KEY1", Secret: "s3cr3t-api-key"}, now.Add(-6*time.Minute))
		},
		"date changed":    func(r *http.Request) { r.Header.Set("Date", now.Add(time.Second).Format(http.TimeFormat)) },
		"path changed":    func(r *http.Request) { r.URL.Path = "/v2/m/hostedcheckouts/124" },
		"header added":    func(r *http.Request) { r.Header.Set("X-GCS-Idempotence-Key", "x") },
		"wrong signature": func(r *http.Request) { r.Header.Set("Authorization", "GCS v1HMAC:KEY1:AAAA") },
	}
	for name, mod := range bad {
		if _, err := VerifyRequest(signed(mod), keys, now, 5*time.Minute); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWebhookPublishedVector(t *testing.T) {
	body, err := os.ReadFile("../testdata/vectors/webhook_valid_body.json")
	if err != nil {
		t.Fatal(err)
	}
	invalid, err := os.ReadFile("../testdata/vectors/webhook_invalid_body.json")
	if err != nil {
		t.Fatal(err)
	}
	keys := func(k string) (string, bool) { return "hello+world", k == "dummy-key-id" }
	h := map[string][]string{"X-Gcs-Signature": {"6sFZob2yfSpd25MiutFRgBdx8dfbgxs+ZFp5kza1QR8="}, "X-Gcs-Keyid": {"dummy-key-id"}}
	if _, err := VerifyWebhook(h, body, keys); err != nil {
		t.Fatalf("published vector refused: %v", err)
	}
	if _, err := VerifyWebhook(h, invalid, keys); err == nil {
		t.Fatal("invalid body accepted")
	}
	if got := WebhookSignature("hello+world", body); got != opensslHMAC(t, "hello+world", body) {
		t.Fatalf("signature %s differs from openssl", got)
	}
	for name, hh := range map[string]map[string][]string{
		"no headers":       {},
		"two signatures":   {"X-Gcs-Signature": {h["X-Gcs-Signature"][0], "x"}, "X-Gcs-Keyid": {"dummy-key-id"}},
		"unknown key id":   {"X-Gcs-Signature": h["X-Gcs-Signature"], "X-Gcs-Keyid": {"other"}},
		"signature of one": {"X-Gcs-Signature": {"1" + h["X-Gcs-Signature"][0]}, "X-Gcs-Keyid": {"dummy-key-id"}},
	} {
		if _, err := VerifyWebhook(hh, body, keys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
