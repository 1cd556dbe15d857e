package direct

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// AuthScheme is the prefix of the Authorization header.
const AuthScheme = "GCS v1HMAC:"

// Credentials are an API key id and its secret.
type Credentials struct {
	KeyID  string
	Secret string
}

// canonicalValue unfolds a header value: line breaks with the white space
// around them become one space, and the value is trimmed.
func canonicalValue(v string) string {
	v = strings.ReplaceAll(v, "\r\n", "\n")
	lines := strings.Split(v, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.TrimSpace(strings.Join(lines, " "))
}

// StringToSign builds the v1HMAC string to sign. resource is the request
// path with its query, decoded as the platform decodes it (see Resource).
func StringToSign(method, contentType, date string, headers http.Header, resource string) string {
	var b strings.Builder
	b.WriteString(method)
	b.WriteByte('\n')
	b.WriteString(contentType)
	b.WriteByte('\n')
	b.WriteString(date)
	b.WriteByte('\n')
	type kv struct{ k, v string }
	var gcs []kv
	for name, vals := range headers {
		ln := strings.ToLower(name)
		if !strings.HasPrefix(ln, "x-gcs-") {
			continue
		}
		for _, v := range vals {
			gcs = append(gcs, kv{ln, canonicalValue(v)})
		}
	}
	sort.SliceStable(gcs, func(i, j int) bool { return gcs[i].k < gcs[j].k })
	for _, h := range gcs {
		b.WriteString(h.k)
		b.WriteByte(':')
		b.WriteString(h.v)
		b.WriteByte('\n')
	}
	b.WriteString(resource)
	b.WriteByte('\n')
	return b.String()
}

// Resource is the path and query of u as they enter the string to sign:
// percent-decoded, the query after "?" when there is one.
func Resource(u *url.URL) string {
	r := u.Path
	if u.RawQuery != "" {
		q, err := url.PathUnescape(u.RawQuery)
		if err != nil {
			q = u.RawQuery
		}
		r += "?" + q
	}
	return r
}

// Sign returns base64(HMAC-SHA256(secret, data)).
func Sign(secret, data string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignRequest sets the Date header (now, GMT) and the Authorization header
// of req. X-GCS-* headers must be set before.
func SignRequest(req *http.Request, c Credentials, now time.Time) {
	date := now.UTC().Format(http.TimeFormat)
	req.Header.Set("Date", date)
	sts := StringToSign(req.Method, req.Header.Get("Content-Type"), date, req.Header, Resource(req.URL))
	req.Header.Set("Authorization", AuthScheme+c.KeyID+":"+Sign(c.Secret, sts))
}

// AuthError says why a request's signature was refused (the platform
// answers 401 with MISSING_OR_INVALID_AUTHORIZATION).
type AuthError struct{ Reason string }

// Error implements error.
func (e *AuthError) Error() string { return "authorization refused: " + e.Reason }

// VerifyRequest checks a signed request as the platform does: one
// Authorization header of the v1HMAC scheme, a known key id, a Date within
// maxSkew of now, and the signature over the request as received. It
// returns the key id.
func VerifyRequest(req *http.Request, secret func(keyID string) (string, bool), now time.Time, maxSkew time.Duration) (string, error) {
	auths := req.Header.Values("Authorization")
	if len(auths) != 1 {
		return "", &AuthError{fmt.Sprintf("%d Authorization headers", len(auths))}
	}
	rest, ok := strings.CutPrefix(auths[0], AuthScheme)
	if !ok {
		return "", &AuthError{"not a GCS v1HMAC authorization"}
	}
	keyID, sig, ok := strings.Cut(rest, ":")
	if !ok || keyID == "" || sig == "" {
		return "", &AuthError{"malformed GCS v1HMAC authorization"}
	}
	key, ok := secret(keyID)
	if !ok {
		return keyID, &AuthError{"unknown API key id"}
	}
	dates := req.Header.Values("Date")
	if len(dates) != 1 {
		return keyID, &AuthError{"Date header missing or repeated"}
	}
	d, err := http.ParseTime(dates[0])
	if err != nil {
		return keyID, &AuthError{"Date header is not an HTTP date"}
	}
	if skew := now.Sub(d); skew > maxSkew || skew < -maxSkew {
		return keyID, &AuthError{fmt.Sprintf("Date %s is %s away from the server's clock", dates[0], skew.Round(time.Second))}
	}
	want := Sign(key, StringToSign(req.Method, req.Header.Get("Content-Type"), dates[0], req.Header, Resource(req.URL)))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return keyID, &AuthError{"signature does not match"}
	}
	return keyID, nil
}
