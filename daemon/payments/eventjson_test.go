package payments

import (
	"bytes"
	"testing"
	"time"

	"github.com/acquit/acquit/sdk"
)

// TestEventJSONSameEncoded: an event written with the provider's fields
// encoded before the transaction (eventPayload) is byte for byte the one
// EventPayload gives, for every kind of result the daemon emits.
func TestEventJSONSameEncoded(t *testing.T) {
	now := time.Date(2026, 12, 4, 13, 0, 0, 0, time.UTC)
	p := &Payment{Reference: "REF1", Gateway: "atos", Merchant: "shop1", Amount: 1250, Currency: "EUR", State: StateAccepted,
		CreatedAt: now, UpdatedAt: now, DecidedAt: now, Version: 2}
	full := &sdk.PaymentResult{Reference: "REF1", Outcome: sdk.OutcomeAccepted, ResponseCode: "00", AcquirerResponseCode: "00",
		AuthorisationID: "A1", Explanation: "ok <&> \"quoted\"", Fields: map[string]string{"b": "2", "a": "1", "html": "<x>&"},
		Operation: &sdk.Operation{ID: "op1", Kind: sdk.OperationCapture, Status: "done", Amount: 1250, Currency: "EUR"}}
	for _, tc := range []struct {
		name   string
		typ    string
		pr     *sdk.PaymentResult
		reason string
	}{
		{"decision with every field", "payment.accepted", full, ""},
		{"operation event", "payment.operation_refused", full, ""},
		{"no fields", "payment.refused", &sdk.PaymentResult{Reference: "REF1", Outcome: sdk.OutcomeRefused, ResponseCode: "05"}, ""},
		{"with a reason", "payment.mismatch", full, "amount differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, err := eventJSON(tc.typ, p, sdk.ChannelAutomatic, 7, tc.pr, tc.reason, nil)
			if err != nil {
				t.Fatal(err)
			}
			enc := encodeResult(tc.pr)
			if enc == nil {
				t.Fatal("encodeResult gave nothing")
			}
			pre, err := eventJSON(tc.typ, p, sdk.ChannelAutomatic, 7, tc.pr, tc.reason, enc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(plain, pre) {
				t.Fatalf("encoded beforehand:\n%s\nEventPayload:\n%s", pre, plain)
			}
			if !bytes.Contains(plain, []byte(`"raw_id":7`)) {
				t.Fatalf("payload lacks the raw id: %s", plain)
			}
		})
	}
}
