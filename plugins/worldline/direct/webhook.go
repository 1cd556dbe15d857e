package direct

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Webhook header names.
const (
	HeaderSignature = "X-GCS-Signature"
	HeaderKeyID     = "X-GCS-KeyId"
)

// WebhookSignature returns base64(HMAC-SHA256(secret, body)), the value of
// X-GCS-Signature.
func WebhookSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// WebhookError says why a webhook's signature was refused; Code is stable
// (for metrics): missing_signature, unknown_key_id, bad_signature.
type WebhookError struct {
	Code    string
	Message string
}

// Error implements error.
func (e *WebhookError) Error() string { return e.Code + ": " + e.Message }

// header returns the values of name in h, whatever the case of its keys.
func header(h map[string][]string, name string) []string {
	var out []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			out = append(out, v...)
		}
	}
	return out
}

// VerifyWebhook checks X-GCS-Signature over the raw body with the secret
// X-GCS-KeyId names (each exactly once). It returns the key id.
func VerifyWebhook(h map[string][]string, body []byte, secret func(keyID string) (string, bool)) (string, error) {
	sigs, ids := header(h, HeaderSignature), header(h, HeaderKeyID)
	if len(sigs) != 1 || len(ids) != 1 || sigs[0] == "" || ids[0] == "" {
		return "", &WebhookError{"missing_signature", fmt.Sprintf("want one %s and one %s header, got %d and %d", HeaderSignature, HeaderKeyID, len(sigs), len(ids))}
	}
	keyID := ids[0]
	key, ok := secret(keyID)
	if !ok {
		return keyID, &WebhookError{"unknown_key_id", fmt.Sprintf("no webhook secret for key id %q", clip(keyID, 64))}
	}
	want := WebhookSignature(key, body)
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(sigs[0]))) {
		return keyID, &WebhookError{"bad_signature", "X-GCS-Signature does not match the body"}
	}
	return keyID, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
