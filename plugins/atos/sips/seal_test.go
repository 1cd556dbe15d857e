package sips

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestSealKnownAnswers(t *testing.T) {
	ks := knownSeals(t)
	if len(ks) < 10 {
		t.Fatalf("only %d known seals", len(ks))
	}
	for _, k := range ks {
		data := readFixture(t, k.file)
		if k.encode == "base64" {
			data = base64.StdEncoding.EncodeToString([]byte(data))
		}
		alg, err := ParseSealAlgorithm(k.alg)
		if err != nil {
			t.Fatal(err)
		}
		if got := ComputeSeal(alg, data, simKey); got != k.seal {
			t.Errorf("%s %s %s: seal %s, want %s", k.file, k.alg, k.encode, got, k.seal)
		}
		if !CheckSeal(alg, data, simKey, strings.ToUpper(k.seal)) {
			t.Errorf("%s: upper-case hex seal refused", k.file)
		}
		if CheckSeal(alg, data, simKey+"x", k.seal) {
			t.Errorf("%s: seal accepted under another key", k.file)
		}
		if CheckSeal(alg, data+" ", simKey, k.seal) {
			t.Errorf("%s: seal accepted for other data", k.file)
		}
		if CheckSeal(alg, data, simKey, k.seal[:63]) || CheckSeal(alg, data, simKey, k.seal+"00") {
			t.Errorf("%s: truncated or extended seal accepted", k.file)
		}
	}
	if _, err := ParseSealAlgorithm("MD5"); err == nil {
		t.Error("MD5 accepted as a seal algorithm")
	}
}

func TestFlattenJSON(t *testing.T) {
	raw := readFixture(t, "paymentinit_request.json")
	flat, fields, err := FlattenJSON([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if want := readFixture(t, "paymentinit_request.flat"); flat != want {
		t.Fatalf("flatten = %q, want %q", flat, want)
	}
	seal, err := SealJSON(HMACSHA256, []byte(raw), simKey)
	if err != nil {
		t.Fatal(err)
	}
	if want := readFixture(t, "paymentinit_request.seal"); seal != want {
		t.Fatalf("seal = %s, want %s (python)", seal, want)
	}
	if fields["customerContact.email"] != "a@example.com" || fields["paymentMeanBrandList"] != "VISA,MASTERCARD" {
		t.Fatalf("fields = %v", fields)
	}
	bad := []struct{ name, in string }{
		{"duplicate member", `{"amount":"1","amount":"2"}`},
		{"nested duplicate", `{"a":{"b":"1","b":"2"}}`},
		{"not an object", `["a"]`},
		{"trailing", `{"a":"1"} {"b":"2"}`},
		{"truncated", `{"a":"1"`},
		{"too deep", strings.Repeat(`{"a":`, MaxJSONDepth+2) + `"x"` + strings.Repeat(`}`, MaxJSONDepth+2)},
	}
	for _, b := range bad {
		if _, _, err := FlattenJSON([]byte(b.in)); RejectCode(err) != RejectMalformed {
			t.Errorf("%s: err = %v, want malformed", b.name, err)
		}
	}
	// Numbers keep their literal text, booleans and null have a fixed text.
	flat, _, err = FlattenJSON([]byte(`{"b":1.50,"a":true,"c":null,"d":false,"seal":"x","keyVersion":"9"}`))
	if err != nil || flat != "true1.50false" {
		t.Fatalf("flatten = %q, %v", flat, err)
	}
}

func TestMarshalSealedVerifies(t *testing.T) {
	acc := simAccount()
	raw, err := MarshalSealed(map[string]any{"transactionReference": "R1", "amount": 12, "list": []string{"a", "b"}}, HMACSHA256, "1", simKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyJSON(raw, acc, "1", "responseCode"); err != nil {
		t.Fatalf("own sealed message does not verify: %v", err)
	}
	tampered := strings.Replace(string(raw), `"R1"`, `"R2"`, 1)
	if _, err := verifyJSON([]byte(tampered), acc, "1", "responseCode"); RejectCode(err) != RejectBadSeal {
		t.Fatalf("tampered message: err = %v, want bad_seal", err)
	}
}
