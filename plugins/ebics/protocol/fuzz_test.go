package protocol

import (
	"os"
	"strings"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	for _, n := range []string{"php_hpb.xml", "php_ini.xml", "php_hia.xml", "xxe.xml", "bomb.xml"} {
		b, _ := os.ReadFile("testdata/" + n)
		f.Add(b)
	}
	for _, b := range sampleMessages(f, H004) {
		f.Add(b)
	}
	k1, _, _ := testKey(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, doc, err := ParseRequest(data, 1<<20)
		if err != nil {
			if !IsXMLError(err) {
				t.Fatalf("untyped error %T %v", err, err)
			}
			return
		}
		_ = VerifyAuth(doc, &k1.PublicKey, "DataEncryptionInfo", "SignatureData")
		_ = r
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, b := range sampleMessages(f, H005) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _, err := ParseResponse(data, 1<<20)
		if err == nil {
			_ = r.Err("fuzz")
		}
	})
}

// FuzzSegments drives the download decoding path: join segments, base64,
// E002, inflate.
func FuzzSegments(f *testing.F) {
	key := make([]byte, 16)
	ct, _ := EncryptE002(key, Deflate([]byte("<Document>hello</Document>")))
	enc := strings.Join(SplitSegments(b64(ct), 7), "")
	f.Add(enc, 7)
	f.Add("QUJD", 1)
	f.Add("", 3)
	f.Fuzz(func(t *testing.T, s string, size int) {
		if size <= 0 || size > 1<<16 {
			size = 5
		}
		joined := strings.Join(SplitSegments(s, size), "")
		if joined != s {
			t.Fatal("split/join changed the data")
		}
		raw, err := DecodeBase64(joined)
		if err != nil {
			return
		}
		pt, err := DecryptE002(key, raw)
		if err != nil {
			return
		}
		_, _ = Inflate(pt, 1<<20)
		_, _ = ParseKeyOrderData(pt)
		_, _ = ParseUserSignatureData(pt)
	})
}
