package sips

import (
	"strings"
	"testing"

	"github.com/acquit/acquit/sdk"
)

func TestInterpret(t *testing.T) {
	tests := []struct {
		code, acq string
		outcome   sdk.Outcome
		askLater  bool
		mention   string
	}{
		{"00", "00", sdk.OutcomeAccepted, false, "accepted"},
		{"02", "02", sdk.OutcomeRefused, false, "telephone"},
		{"03", "", sdk.OutcomeFailed, false, "merchant contract"},
		{"05", "51", sdk.OutcomeRefused, false, "insufficient funds"},
		{"05", "43", sdk.OutcomeRefused, false, "do not let the customer retry"},
		{"11", "", sdk.OutcomeRefused, false, "blocked"},
		{"12", "", sdk.OutcomeFailed, false, "invalid"},
		{"14", "14", sdk.OutcomeRefused, false, "PAN"},
		{"17", "", sdk.OutcomeCancelled, false, "customer"},
		{"24", "", sdk.OutcomePending, true, "Office"},
		{"25", "", sdk.OutcomeNotFound, false, "never saw"},
		{"30", "", sdk.OutcomeFailed, false, "Format"},
		{"34", "", sdk.OutcomeFailed, false, "keyVersion"},
		{"40", "", sdk.OutcomeFailed, false, "contract"},
		{"51", "", sdk.OutcomeRefused, false, "too high"},
		{"54", "54", sdk.OutcomeRefused, false, "expiry"},
		{"60", "", sdk.OutcomePending, true, "pending"},
		{"63", "", sdk.OutcomeRefused, false, "3-D Secure"},
		{"75", "", sdk.OutcomeRefused, false, "attempts"},
		{"90", "", sdk.OutcomePending, true, "Office later"},
		{"94", "", sdk.OutcomePending, true, "first attempt"},
		{"97", "", sdk.OutcomeExpired, false, "left the payment page"},
		{"99", "", sdk.OutcomePending, true, "Office later"},
		{"42", "", sdk.OutcomePending, true, "not in acquit's table"},
		{"05", "ZZ", sdk.OutcomeRefused, false, "unknown"},
	}
	for _, tt := range tests {
		in := Interpret(tt.code, tt.acq)
		if in.Outcome != tt.outcome || in.AskLater != tt.askLater {
			t.Errorf("%s/%s: %s askLater=%v, want %s %v", tt.code, tt.acq, in.Outcome, in.AskLater, tt.outcome, tt.askLater)
		}
		if !strings.Contains(in.Explanation, tt.mention) {
			t.Errorf("%s/%s: explanation %q does not mention %q", tt.code, tt.acq, in.Explanation, tt.mention)
		}
	}
	// Every code with AskLater is not final, and the other way round.
	for _, c := range SortedResponseCodes() {
		if c.Outcome != sdk.OutcomeNotFound && c.AskLater == c.Outcome.Final() {
			t.Errorf("code %s: AskLater %v but outcome %s final=%v", c.Code, c.AskLater, c.Outcome, c.Outcome.Final())
		}
	}
}

func TestInterpretStatus(t *testing.T) {
	tests := []struct {
		status  string
		outcome sdk.Outcome
		ask     bool
	}{
		{"CAPTURED", sdk.OutcomeAccepted, false},
		{"TO_CAPTURE", sdk.OutcomeAccepted, false},
		{"TO_VALIDATE", sdk.OutcomeAccepted, false},
		{"REFUSED", sdk.OutcomeRefused, false},
		{"ABORTED", sdk.OutcomeCancelled, false},
		{"EXPIRED", sdk.OutcomeExpired, false},
		{"PENDING", sdk.OutcomePending, true},
		{"TO_AUTHORIZE", sdk.OutcomePending, true},
		{"BRAND_NEW_STATUS", sdk.OutcomePending, true},
	}
	for _, tt := range tests {
		in := InterpretStatus(tt.status, "")
		if in.Outcome != tt.outcome || in.AskLater != tt.ask {
			t.Errorf("%s: %s/%v, want %s/%v", tt.status, in.Outcome, in.AskLater, tt.outcome, tt.ask)
		}
	}
}

func TestCurrency(t *testing.T) {
	if n, ok := CurrencyNumeric("EUR"); !ok || n != "978" {
		t.Fatalf("EUR = %q", n)
	}
	if a, ok := CurrencyAlpha("840"); !ok || a != "USD" {
		t.Fatalf("840 = %q", a)
	}
	if _, ok := CurrencyNumeric("XYZ"); ok {
		t.Fatal("XYZ known")
	}
}
