package protocol

import (
	"bytes"
	"io"
	"math/rand"
	"os/exec"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/acquit/acquit/plugins/ebics/indep"
)

// TestOrderDataDecoderIndependentInput feeds the streaming download decoder
// order data made entirely outside acquit: zlib by python3's zlib, E002 by
// openssl enc -aes-128-cbc (zero IV, via indep.EncryptE002), base64 by
// openssl base64 (64-column lines), then cut into segments and streamed in
// segment by segment (and one byte at a time). The output must be
// byte-equal to the original.
func TestOrderDataDecoderIndependentInput(t *testing.T) {
	requireIndep(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 (independent zlib) not found")
	}
	rnd := rand.New(rand.NewSource(7))
	random := make([]byte, 70000)
	rnd.Read(random)
	key := []byte("0123456789abcdef")
	for _, tc := range []struct {
		name   string
		data   []byte
		segLen int
	}{
		{"one byte, one segment", []byte("x"), 1 << 20},
		{"text, 7-char segments", bytes.Repeat([]byte("<Document>camt.053</Document>\n"), 500), 7},
		{"random 70000, 1000-char segments", random, 1000},
		{"block multiple 4096, 3-char segments", bytes.Repeat([]byte{0xA5}, 4096), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("python3", "-c", "import sys,zlib;sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read(),9))")
			cmd.Stdin = bytes.NewReader(tc.data)
			z, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			ct, err := indep.EncryptE002(key, z)
			if err != nil {
				t.Fatal(err)
			}
			cmd = exec.Command("openssl", "base64")
			cmd.Stdin = bytes.NewReader(ct)
			b64, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			var segs []string
			for s := string(b64); len(s) > 0; {
				n := min(tc.segLen, len(s))
				segs = append(segs, s[:n])
				s = s[n:]
			}
			for _, mode := range []string{"segments", "bytes"} {
				rs := make([]io.Reader, len(segs))
				for i, s := range segs {
					rs[i] = strings.NewReader(s)
				}
				var r io.Reader = io.MultiReader(rs...)
				if mode == "bytes" {
					r = iotest.OneByteReader(r)
				}
				d, err := NewOrderDataDecoder(r, key, 1<<24)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(d)
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if !bytes.Equal(got, tc.data) {
					t.Fatalf("%s: decoded %d bytes, not equal to the %d original", mode, len(got), len(tc.data))
				}
			}
			got, err := DecodeOrderData(segs, key, 1<<24)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("DecodeOrderData: %v (%d bytes)", err, len(got))
			}
		})
	}
}
