// Package direct is the Worldline Direct protocol as acquit uses it, with no
// daemon dependency: the GCS v1HMAC request signature, the webhook
// signature (X-GCS-Signature over the raw body, X-GCS-KeyId naming the
// key), the JSON messages of the hosted checkout and payment endpoints, the
// status code table, and an HTTP client for CreateHostedCheckout,
// GetHostedCheckout and GetPaymentDetails.
//
// Facts taken from Worldline's public API reference and SDK test suites:
//
//   - Authorization: "GCS v1HMAC:<apiKeyId>:<base64(HMAC-SHA256(secret,
//     stringToSign))>", the string to sign being the method, the
//     Content-Type (empty for a GET), the Date header (RFC 1123, GMT), the
//     X-GCS-* headers lower-cased with their values unfolded and trimmed,
//     sorted by name, one "name:value" per line, then the path with its
//     query; every line ends with "\n".
//   - Webhooks: X-GCS-Signature is base64(HMAC-SHA256(webhook secret, raw
//     body)); X-GCS-KeyId names the secret. Each event has a unique id.
//   - A payment id is "<paymentid>_<operationid>"; maintenance operations
//     (capture, refund, cancel) get their own operation id.
package direct
