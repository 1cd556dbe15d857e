package acks

import (
	"regexp"
	"strings"
	"testing"
)

func TestReasonTable(t *testing.T) {
	code := regexp.MustCompile(`^[A-Z0-9]{4}$`)
	seen := map[string]bool{}
	for _, r := range ReasonCodes() {
		if !code.MatchString(r.Code) || seen[r.Code] {
			t.Errorf("bad or duplicate code %q", r.Code)
		}
		seen[r.Code] = true
		if r.Name == "" || r.English == "" || r.French == "" {
			t.Errorf("%s: missing text", r.Code)
		}
	}
	// Common SEPA status reason codes and those the samples under testdata/ carry.
	for _, c := range []string{"AC01", "AC04", "AC06", "AG01", "AG02", "AM01", "AM04", "AM05", "AM23", "BE01", "BE05",
		"DT01", "DU01", "DU05", "FF01", "MD01", "MS02", "MS03", "NARR", "RC01", "RR01", "RR04", "TM01", "TS01", "DS01", "DS0A", "DS19", "TD03"} {
		if !seen[c] {
			t.Errorf("code %s missing", c)
		}
	}
	if len(seen) < 200 {
		t.Errorf("only %d codes", len(seen))
	}
}

func TestReasonDescribe(t *testing.T) {
	cases := []struct {
		r    Reason
		lang string
		want string
	}{
		{Reason{Code: "AM04"}, "en", "AM04 Amount of funds available to cover specified message amount is insufficient."},
		{Reason{Code: "am04"}, "fr", "am04 Provision insuffisante."},
		{Reason{Code: "DU01", AddtlInf: []string{"ISO Duplicate Message ID"}}, "fr-FR", "DU01 Identifiant de message (MsgId) non unique : doublon. — ISO Duplicate Message ID"},
		{Reason{Proprietary: "F042", AddtlInf: []string{"Montant", "trop élevé"}}, "fr", "F042 — Montant trop élevé"},
		{Reason{Code: "ZZ99"}, "en", "ZZ99"},
		{Reason{AddtlInf: []string{"only text"}}, "en", "only text"},
	}
	for _, c := range cases {
		if got := c.r.Describe(c.lang); got != c.want {
			t.Errorf("Describe(%+v, %s) = %q, want %q", c.r, c.lang, got, c.want)
		}
	}
	if _, ok := LookupReason("NOPE"); ok {
		t.Error("unknown code found")
	}
	if info, ok := LookupReason(" ac01 "); !ok || !strings.Contains(info.French, "IBAN") {
		t.Errorf("LookupReason trims and folds case: %+v", info)
	}
}
