package protocol

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
)

func encodeSegments(t testing.TB, key, plain []byte, seg int) []string {
	ct, err := EncryptE002(key, Deflate(plain))
	if err != nil {
		t.Fatal(err)
	}
	return SplitSegments(base64.StdEncoding.EncodeToString(ct), seg)
}

// oneShot is the reference path: join, decode, decrypt, inflate.
func oneShot(segs []string, key []byte, max int64) ([]byte, error) {
	var joined string
	for _, s := range segs {
		joined += s
	}
	raw, err := DecodeBase64(joined)
	if err != nil {
		return nil, err
	}
	pt, err := DecryptE002(key, raw)
	if err != nil {
		return nil, err
	}
	return Inflate(pt, max)
}

func TestDecodeOrderData(t *testing.T) {
	key := NewTransactionKey()
	rnd := make([]byte, 300000)
	rand.Read(rnd)
	for _, n := range []int{0, 1, 15, 16, 17, 4096, 300000} {
		for _, seg := range []int{1, 7, 1000, 1 << 20} {
			plain := rnd[:n]
			segs := encodeSegments(t, key, plain, seg)
			got, err := DecodeOrderData(segs, key, 1<<20)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("n=%d seg=%d: %v", n, seg, err)
			}
		}
	}
	plain := bytes.Repeat([]byte("<Tx/>"), 1000)
	segs := encodeSegments(t, key, plain, 101)
	var ce *CryptoError
	cases := map[string]struct {
		segs []string
		key  []byte
		max  int64
	}{
		"truncated base64":     {segs[:len(segs)-1], key, 1 << 20},
		"missing first":        {segs[1:], key, 1 << 20},
		"wrong key":            {segs, NewTransactionKey(), 1 << 20},
		"inflate cap":          {segs, key, 100},
		"garbage":              {[]string{"!!!!"}, key, 1 << 20},
		"whitespace only":      {[]string{" \n "}, key, 1 << 20},
		"block misaligned b64": {[]string{base64.StdEncoding.EncodeToString(make([]byte, 17))}, key, 1 << 20},
	}
	for name, c := range cases {
		_, err := DecodeOrderData(c.segs, c.key, c.max)
		if !errors.As(err, &ce) {
			t.Errorf("%s: %T %v, want *CryptoError", name, err, err)
		}
	}
	// Whitespace inside segments is ignored, as by DecodeBase64.
	spaced := append([]string(nil), segs...)
	spaced[0] = spaced[0][:3] + "\n " + spaced[0][3:]
	if got, err := DecodeOrderData(spaced, key, 1<<20); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("spaced: %v", err)
	}
}

// Differential fuzzing: the streaming decoder agrees with the one-shot path.
func FuzzDecodeOrderData(f *testing.F) {
	key := make([]byte, 16)
	segs := encodeSegments(f, key, []byte("<Document>hello</Document>"), 9)
	f.Add(segs[0], segs[len(segs)-1], 3)
	f.Add("QUJD", "", 1)
	f.Fuzz(func(t *testing.T, a, b string, cut int) {
		in := []string{a, b}
		want, err1 := oneShot(in, key, 1<<16)
		got, err2 := DecodeOrderData(in, key, 1<<16)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("one-shot err %v, streaming err %v", err1, err2)
		}
		if err1 == nil && !bytes.Equal(want, got) {
			t.Fatal("different output")
		}
	})
}
