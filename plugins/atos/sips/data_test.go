package sips

import (
	"strings"
	"testing"
)

func TestParseData(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
		code string
	}{
		{"simple", "a=1|b=2", map[string]string{"a": "1", "b": "2"}, ""},
		{"value with equals", "returnContext=eyJ9=|x=a=b", map[string]string{"returnContext": "eyJ9=", "x": "a=b"}, ""},
		{"nested and list", "customerContact.email=a@b.c|paymentMeanBrandList=VISA,MASTERCARD", map[string]string{"customerContact.email": "a@b.c", "paymentMeanBrandList": "VISA,MASTERCARD"}, ""},
		{"empty value", "statementReference=|a=1", map[string]string{"statementReference": "", "a": "1"}, ""},
		{"utf8 value", "customerName=Zoë Müller", map[string]string{"customerName": "Zoë Müller"}, ""},
		{"empty", "", nil, RejectMalformed},
		{"empty field", "a=1||b=2", nil, RejectMalformed},
		{"trailing pipe", "a=1|", nil, RejectMalformed},
		{"no equals", "a=1|b", nil, RejectMalformed},
		{"empty key", "=x", nil, RejectMalformed},
		{"key starts with digit", "1a=x", nil, RejectMalformed},
		{"key with space", "a b=x", nil, RejectMalformed},
		{"key with empty part", "a..b=x", nil, RejectMalformed},
		{"key ends with dot", "a.=x", nil, RejectMalformed},
		{"duplicate key", "responseCode=00|responseCode=05", nil, RejectMalformed},
		{"non utf8", "a=\xff\xfe", nil, RejectBadEncoding},
		{"latin1 e-acute", "customerName=Zo\xeb", nil, RejectBadEncoding},
		{"control char", "a=1\nb=2", nil, RejectMalformed},
		{"nul", "a=\x00", nil, RejectMalformed},
		{"too large", "a=" + strings.Repeat("x", MaxDataLen), nil, RejectTooLarge},
		{"too many fields", strings.Repeat("a=1|", MaxFields) + "a=1", nil, RejectTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseData(tt.in)
			if tt.code != "" {
				if RejectCode(err) != tt.code {
					t.Fatalf("ParseData(%q) err = %v, want code %s", clip(tt.in, 40), err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseData: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestEncodeData(t *testing.T) {
	got, err := EncodeData(map[string]string{"b": "2", "a": "x=y", "c.d": "VISA,CB"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a=x=y|b=2|c.d=VISA,CB"; got != want {
		t.Fatalf("EncodeData = %q, want %q", got, want)
	}
	bad := []map[string]string{
		{"a": "x|responseCode=00"},
		{"a": "line\nbreak"},
		{"a": "\xff"},
		{"bad key": "x"},
		{"a=b": "x"},
		{},
	}
	for _, f := range bad {
		if _, err := EncodeData(f); err == nil {
			t.Errorf("EncodeData(%q) accepted", f)
		}
	}
	if _, err := ListValue("VISA", "CB,MASTERCARD"); err == nil {
		t.Error("ListValue accepted an element with a comma")
	}
	if v, err := ListValue("VISA", "CB"); err != nil || v != "VISA,CB" {
		t.Errorf("ListValue = %q, %v", v, err)
	}
	f := Fields{"l": "a,b,c", "e": ""}
	if l := f.List("l"); len(l) != 3 || l[2] != "c" {
		t.Errorf("List = %v", l)
	}
	if l := f.List("e"); l != nil {
		t.Errorf("List(empty) = %v", l)
	}
}

func FuzzParseData(f *testing.F) {
	for _, name := range []string{"accepted.data", "refused.data", "cancelled.data", "s10_accepted.data", "pending.data"} {
		f.Add(readFixture(f, name))
	}
	f.Add("a=1||b")
	f.Add("=|=")
	f.Add("a=\xff")
	f.Fuzz(func(t *testing.T, data string) {
		fields, err := ParseData(data)
		if err != nil {
			if RejectCode(err) == "" {
				t.Fatalf("error without a reject code: %v", err)
			}
			return
		}
		// Anything accepted re-encodes to an equivalent Data.
		enc, err := EncodeData(fields)
		if err != nil {
			t.Fatalf("accepted Data does not re-encode: %v", err)
		}
		again, err := ParseData(enc)
		if err != nil {
			t.Fatalf("re-encoded Data does not parse: %v", err)
		}
		if len(again) != len(fields) {
			t.Fatalf("round trip changed the field count")
		}
		for k, v := range fields {
			if again[k] != v {
				t.Fatalf("round trip changed %s", k)
			}
		}
	})
}
