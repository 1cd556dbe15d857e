package acks

import (
	"strings"
	"sync"
)

// ReasonInfo describes one ISO 20022 external status reason code.
type ReasonInfo struct {
	Code    string // e.g. "AC01"
	Name    string // ISO name, e.g. "IncorrectAccountNumber"
	English string // ISO definition (English)
	French  string // French translation
}

var (
	reasonOnce  sync.Once
	reasonIndex map[string]ReasonInfo
)

// LookupReason returns the description of an ISO external status reason
// code (case-insensitive). ok is false for unknown and proprietary codes.
func LookupReason(code string) (ReasonInfo, bool) {
	reasonOnce.Do(func() {
		reasonIndex = make(map[string]ReasonInfo, len(reasonTable))
		for _, r := range reasonTable {
			reasonIndex[r.Code] = r
		}
	})
	r, ok := reasonIndex[strings.ToUpper(strings.TrimSpace(code))]
	return r, ok
}

// ReasonCodes returns every code of the table, in table order.
func ReasonCodes() []ReasonInfo { return append([]ReasonInfo(nil), reasonTable...) }

// Describe renders a reason for people in lang ("fr" or anything else for
// English): "AC01 Numéro de compte (IBAN) invalide ou absent. — text". An
// unknown or proprietary code is shown as is, with the bank's text.
func (r Reason) Describe(lang string) string {
	var b strings.Builder
	key := r.Key()
	b.WriteString(key)
	if info, ok := LookupReason(r.Code); ok && r.Code != "" {
		b.WriteString(" ")
		if strings.HasPrefix(strings.ToLower(lang), "fr") {
			b.WriteString(info.French)
		} else {
			b.WriteString(info.English)
		}
	}
	if t := r.Text(); t != "" {
		if b.Len() > 0 {
			b.WriteString(" — ")
		}
		b.WriteString(t)
	}
	return b.String()
}
