package sim

import (
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// The xmllint session answers every request as an xmllint run of its own
// does (valid, or the same refusal text), across session ends (3 requests
// per session here), and a session whose xmllint is killed is replaced:
// a dead session does not answer (validate then runs xmllint for the
// request alone: runOwn, which the loop compares with the session), and
// the next request gets a new session.
func TestSchemaSessionSameAsOwnRun(t *testing.T) {
	defer func(n int) { sessionDocs = n }(sessionDocs)
	sessionDocs = 3
	c := newThirdParty(t, protocol.H004, "A006", StateReady, Config{})
	v := c.s.schema
	r := c.base(protocol.KindRequest, "CCT")
	r.OrderAttrib, r.OrderID = "OZHNN", "A001"
	r.BankAuthHash, r.BankEncHash = c.s.BankKeyHashes(protocol.H004)
	r.EncKeyHash, r.NumSegments, r.TransactionKey, r.SignatureData = r.BankEncHash, 1, []byte("wrapped"), []byte("sig")
	docs := map[string][]byte{
		"valid":           c.signed(r, nil),
		"unknown element": c.signed(r, func(s string) string { return strings.Replace(s, "</static>", "<Surprise>1</Surprise></static>", 1) }),
		"nonce not hex":   c.signed(r, func(s string) string { return strings.Replace(s, "<Nonce>", "<Nonce>ZZ", 1) }),
		"not well-formed": []byte(`<?xml version="1.0"?><ebicsRequest xmlns="urn:org:ebics:H004"><header>`),
		"empty":           {},
		"other root":      []byte(`<x xmlns="urn:org:ebics:H004"/>`),
	}
	var names []string
	for n := range docs {
		names = append(names, n)
	}
	sort.Strings(names)
	const schema = "H004/ebics_H004.xsd"
	valid := 0
	for round := 0; round < 3; round++ {
		for _, name := range names {
			body := docs[name]
			ok, report, used := v.sessionCheck(schema, body, time.Now().Add(30*time.Second))
			if !used {
				t.Fatalf("%s: not validated by the session", name)
			}
			own := v.runOwn(schema, body)
			var se *errSchema
			switch {
			case ok && own == nil:
				valid++
			case !ok && errors.As(own, &se) && se.detail == firstLines(report, 3):
			default:
				t.Fatalf("%s: session ok=%v %q; own run: %v", name, ok, firstLines(report, 3), own)
			}
		}
	}
	if valid != 3 {
		t.Fatalf("%d valid answers, want 3", valid)
	}
	// xmllint killed under the session: it does not answer the next
	// request (the caller falls back to runOwn), the one after goes to a
	// new session.
	if _, _, used := v.sessionCheck(schema, docs["valid"], time.Now().Add(30*time.Second)); !used { // a new session, 1 of 3 used
		t.Fatal("no session")
	}
	v.sessions[schema].s.cmd.Process.Kill()
	if _, _, used := v.sessionCheck(schema, docs["valid"], time.Now().Add(5*time.Second)); used {
		t.Fatal("a dead session answered")
	}
	if ok, _, used := v.sessionCheck(schema, docs["valid"], time.Now().Add(30*time.Second)); !used || !ok {
		t.Fatalf("new session: ok=%v used=%v", ok, used)
	}
	root, _ := parseTree(docs["valid"])
	if err := v.validate(docs["valid"], root); err != nil {
		t.Fatal(err)
	}
}
