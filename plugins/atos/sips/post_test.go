package sips

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/acquit/acquit/sdk"
)

// postBody builds a response form body the way Sips posts it.
func postBody(data, seal, extra string) []byte {
	v := url.Values{}
	v.Set("Data", data)
	v.Set("Seal", seal)
	v.Set("InterfaceVersion", "HP_3.4")
	s := v.Encode()
	if extra != "" {
		s += "&" + extra
	}
	return []byte(s)
}

func TestVerifyPostFixtures(t *testing.T) {
	acc := simAccount()
	lookup := lookupOf(acc)
	tests := []struct {
		file     string
		encode   string
		ref      string
		date     string
		amount   int64
		outcome  sdk.Outcome
		askLater bool
	}{
		{"accepted.data", "", "ACQ20261123A0001", "", 2500, sdk.OutcomeAccepted, false},
		{"accepted.data", "base64", "ACQ20261123A0001", "", 2500, sdk.OutcomeAccepted, false},
		{"refused.data", "", "ACQ20261123A0002", "", 12990, sdk.OutcomeRefused, false},
		{"cancelled.data", "base64", "ACQ20261123A0003", "", 4200, sdk.OutcomeCancelled, false},
		{"s10_accepted.data", "", "000123", "20261123", 990, sdk.OutcomeAccepted, false},
		{"pending.data", "", "ACQ20261123A0004", "", 1500, sdk.OutcomePending, true},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.encode, func(t *testing.T) {
			data := readFixture(t, tt.file)
			extra := ""
			if tt.encode != "" {
				data = base64.StdEncoding.EncodeToString([]byte(data))
				extra = "Encode=" + tt.encode
			}
			form, err := ParsePostForm(postBody(data, ComputeSeal(HMACSHA256, data, simKey), extra))
			if err != nil {
				t.Fatal(err)
			}
			r, err := VerifyPost(form, lookup)
			if err != nil {
				t.Fatalf("VerifyPost: %v", err)
			}
			ref, date := r.Reference()
			if ref != tt.ref || date != tt.date || r.Amount != tt.amount || r.CurrencyCode != "978" {
				t.Fatalf("got ref %q date %q amount %d currency %s", ref, date, r.Amount, r.CurrencyCode)
			}
			if r.Interpretation.Outcome != tt.outcome || r.Interpretation.AskLater != tt.askLater {
				t.Fatalf("outcome %s askLater %v, want %s %v", r.Interpretation.Outcome, r.Interpretation.AskLater, tt.outcome, tt.askLater)
			}
			if r.InterfaceVersion != "HP_3.4" {
				t.Fatalf("InterfaceVersion = %q", r.InterfaceVersion)
			}
		})
	}
}

func TestVerifyPostHostile(t *testing.T) {
	acc := simAccount()
	rotated := &Account{MerchantID: "002001000000002", Keys: map[string]string{"1": "old-key-0000000000", "2": "new-key-1111111111"}, Algorithm: HMACSHA256}
	legacy := &Account{MerchantID: "002001000000003", Keys: map[string]string{"1": "legacy-key"}, Algorithm: SHA256}
	lookup := lookupOf(acc, rotated, legacy)
	good := readFixture(t, "accepted.data")
	seal := func(d string) string { return ComputeSeal(HMACSHA256, d, simKey) }
	without := func(field string) string {
		var keep []string
		for _, p := range strings.Split(good, "|") {
			if !strings.HasPrefix(p, field+"=") {
				keep = append(keep, p)
			}
		}
		return strings.Join(keep, "|")
	}
	forRotated := func(kv, key string) string {
		d := strings.Replace(strings.Replace(good, "merchantId=002001000000001", "merchantId=002001000000002", 1), "keyVersion=1", "keyVersion="+kv, 1)
		return string(postBody(d, ComputeSeal(HMACSHA256, d, key), ""))
	}
	legacyData := strings.Replace(good, "merchantId=002001000000001", "merchantId=002001000000003", 1)
	b64 := base64.StdEncoding.EncodeToString([]byte(good))
	tests := []struct {
		name string
		body string
		code string // "" = accepted
	}{
		{"good", string(postBody(good, seal(good), "")), ""},
		{"forged seal", string(postBody(good, strings.Repeat("ab", 32), "")), RejectBadSeal},
		{"seal of other data", string(postBody(good, seal(strings.Replace(good, "amount=2500", "amount=1", 1)), "")), RejectBadSeal},
		{"amount changed after sealing", string(postBody(strings.Replace(good, "amount=2500", "amount=1", 1), seal(good), "")), RejectBadSeal},
		{"seal not hex", string(postBody(good, "not-a-seal", "")), RejectBadSeal},
		{"unknown keyVersion", string(postBody(strings.Replace(good, "keyVersion=1", "keyVersion=7", 1), seal(good), "")), RejectUnknownKeyVersion},
		{"unknown merchantId", string(postBody(strings.Replace(good, "merchantId=002001000000001", "merchantId=999999999999999", 1), seal(good), "")), RejectUnknownMerchant},
		{"rotation old key", forRotated("1", "old-key-0000000000"), ""},
		{"rotation new key", forRotated("2", "new-key-1111111111"), ""},
		{"rotation key of other version", forRotated("2", "old-key-0000000000"), RejectBadSeal},
		{"legacy SHA-256 account", string(postBody(legacyData, ComputeSeal(SHA256, legacyData, "legacy-key"), "")), ""},
		{"legacy account sent HMAC", string(postBody(legacyData, ComputeSeal(HMACSHA256, legacyData, "legacy-key"), "")), RejectBadSeal},
		{"seal algorithm downgrade claimed", string(postBody(good, ComputeSeal(SHA256, good, simKey), "SealAlgorithm=SHA-256")), RejectBadSeal},
		{"missing Data", "Seal=" + seal(good), RejectMissingField},
		{"missing Seal", "Data=" + url.QueryEscape(good), RejectMissingField},
		{"missing merchantId", string(postBody(without("merchantId"), seal(without("merchantId")), "")), RejectMissingField},
		{"missing keyVersion", string(postBody(without("keyVersion"), seal(without("keyVersion")), "")), RejectMissingField},
		{"missing responseCode", string(postBody(without("responseCode"), seal(without("responseCode")), "")), RejectMissingField},
		{"missing amount", string(postBody(without("amount"), seal(without("amount")), "")), RejectMissingField},
		{"missing reference", string(postBody(without("transactionReference"), seal(without("transactionReference")), "")), RejectMissingField},
		{"missing currency", string(postBody(without("currencyCode"), seal(without("currencyCode")), "")), RejectMissingField},
		{"amount not a number", string(postBody(strings.Replace(good, "amount=2500", "amount=25.00", 1), seal(strings.Replace(good, "amount=2500", "amount=25.00", 1)), "")), RejectMalformed},
		{"oversized body", "Data=" + strings.Repeat("a", MaxPostBody) + "&Seal=x", RejectTooLarge},
		{"non-UTF-8 Data", "Data=" + url.QueryEscape(good+"|customerName=Zo\xeb") + "&Seal=" + seal(good+"|customerName=Zo\xeb"), RejectBadEncoding},
		{"duplicate key in Data", string(postBody(good+"|responseCode=05", seal(good+"|responseCode=05"), "")), RejectMalformed},
		{"duplicate Data field", string(postBody(good, seal(good), "Data=x")), RejectMalformed},
		{"bad form encoding", "Data=%zz&Seal=x", RejectMalformed},
		{"bad base64", string(postBody("!!notbase64", seal("!!notbase64"), "Encode=base64")), RejectBadEncoding},
		{"unknown Encode", string(postBody(b64, seal(b64), "Encode=rot13")), RejectBadEncoding},
		{"base64 good", string(postBody(b64, seal(b64), "Encode=base64")), ""},
		{"base64 seal over decoded data", string(postBody(b64, seal(good), "Encode=base64")), RejectBadSeal},
		{"malformed Data", string(postBody("garbage", seal("garbage"), "")), RejectMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form, err := ParsePostForm([]byte(tt.body))
			if err == nil {
				_, err = VerifyPost(form, lookup)
			}
			if tt.code == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if got := RejectCode(err); got != tt.code {
				t.Fatalf("err = %v (code %q), want code %s", err, got, tt.code)
			}
		})
	}
}

func TestBuildPostRoundTrip(t *testing.T) {
	acc := simAccount()
	for _, enc := range []string{"", "base64", "base64url"} {
		p, err := BuildPost(acc, "1", map[string]string{
			"amount": "100", "currencyCode": "978", "responseCode": "00", "transactionReference": "R" + enc,
			"returnContext": "a=b|c"[:3],
		}, enc, "HP_3.4")
		if err != nil {
			t.Fatal(err)
		}
		body := p.Values().Encode()
		form, err := ParsePostForm([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		r, err := VerifyPost(form, lookupOf(acc))
		if err != nil {
			t.Fatalf("encode %q: %v", enc, err)
		}
		if r.TransactionReference != "R"+enc || r.Fields["returnContext"] != "a=b" {
			t.Fatalf("fields = %v", r.Fields)
		}
	}
	if _, err := BuildPost(acc, "9", map[string]string{"a": "1"}, "", ""); err == nil {
		t.Fatal("BuildPost with an unknown key version succeeded")
	}
	if _, err := BuildPost(acc, "1", map[string]string{"a": "x|responseCode=00"}, "", ""); err == nil {
		t.Fatal("BuildPost let a '|' forge a field")
	}
}

func BenchmarkVerifyAutomaticResponse(b *testing.B) {
	acc := simAccount()
	lookup := lookupOf(acc)
	data := readFixture(b, "accepted.data")
	body := postBody(data, ComputeSeal(HMACSHA256, data, simKey), "")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		form, err := ParsePostForm(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := VerifyPost(form, lookup); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzVerifyPost feeds arbitrary form bodies: nothing panics, every
// refusal carries a reject code, and nothing is accepted without the
// account's seal.
func FuzzVerifyPost(f *testing.F) {
	for _, name := range []string{"accepted.data", "refused.data", "s10_accepted.data"} {
		d := readFixture(f, name)
		f.Add(string(postBody(d, ComputeSeal(HMACSHA256, d, simKey), "")))
		b := base64.StdEncoding.EncodeToString([]byte(d))
		f.Add(string(postBody(b, ComputeSeal(HMACSHA256, b, simKey), "Encode=base64")))
	}
	f.Add("Data=&Seal=")
	f.Add("Data=a%3D1%7Ca%3D2&Seal=00&Data=x")
	lookup := lookupOf(simAccount())
	f.Fuzz(func(t *testing.T, body string) {
		form, err := ParsePostForm([]byte(body))
		if err != nil {
			if RejectCode(err) == "" {
				t.Fatalf("form error without a reject code: %v", err)
			}
			return
		}
		r, err := VerifyPost(form, lookup)
		if err != nil {
			if RejectCode(err) == "" {
				t.Fatalf("verify error without a reject code: %v", err)
			}
			return
		}
		if !CheckSeal(HMACSHA256, form.Data, simKey, form.Seal) || r.MerchantID != simAccount().MerchantID {
			t.Fatalf("accepted without the account's seal")
		}
	})
}
