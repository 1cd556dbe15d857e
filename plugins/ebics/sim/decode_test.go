package sim

import (
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// The bank decodes upload segments as they arrive (decode.go), but a
// damaged order is still answered as the whole-order decoding answered it:
// every segment before the last is accepted, the last one carries the
// refusal with the same return code (each case gave these codes before
// the change too), nothing is recorded and nothing is
// left in the spool folder. Checked in memory and with a spool folder.
func TestIncrementalDecodingRefusals(t *testing.T) {
	flip := func(at func(n int) int) func([]byte) []byte {
		return func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[at(len(b))] ^= 0x55
			return b
		}
	}
	for _, tc := range []struct {
		name      string
		damage    func([]byte) []byte
		damageKey func([]byte) []byte
		want      string
	}{
		// The first segment's ciphertext: the zlib header is garbage.
		{"damaged first segment", flip(func(int) int { return 3 }), nil, protocol.CodeInvalidOrderData},
		// The middle of the order: inflate fails while segments still come.
		{"damaged middle", flip(func(n int) int { return n / 2 }), nil, protocol.CodeInvalidOrderData},
		// A truncated ciphertext (not a multiple of 16 bytes).
		{"truncated", func(b []byte) []byte { return b[:len(b)-5] }, nil, protocol.CodeInvalidRequestContnt},
		// A wrapped transaction key altered: it unwraps to another key
		// (PKCS#1 v1.5 session key decryption), so the order data does not
		// inflate.
		{"altered key", nil, flip(func(n int) int { return n / 2 }), protocol.CodeInvalidOrderData},
		// A wrapped transaction key of the wrong length: the same.
		{"short key", nil, func(b []byte) []byte { return b[:len(b)-1] }, protocol.CodeInvalidOrderData},
	} {
		for _, spool := range []bool{false, true} {
			name := tc.name + map[bool]string{false: " in memory", true: " spooled"}[spool]
			t.Run(name, func(t *testing.T) {
				cfg := Config{MaxSegmentSize: 4096}
				if spool {
					cfg.SpoolDir = t.TempDir()
				}
				c := newThirdParty(t, protocol.H004, "A006", StateReady, cfg)
				c.damage, c.damageKey = tc.damage, tc.damageKey
				r := c.upload(painWithNewlines(), 4, "")
				if got := code(r); got != tc.want {
					t.Fatalf("last segment answered %s (%s), want %s", got, r.ReportText, tc.want)
				}
				if want := []string{"000000", "000000", "000000", tc.want}; !slices.Equal(c.segmentCodes, want) {
					t.Fatalf("segments answered %v, want %v", c.segmentCodes, want)
				}
				if n := len(c.s.Orders()); n != 0 {
					t.Fatalf("%d orders recorded", n)
				}
				if spool {
					if ents, _ := os.ReadDir(cfg.SpoolDir); len(ents) != 0 {
						t.Fatalf("spool folder holds %d files", len(ents))
					}
				}
				// The same subscriber's next, intact upload is recorded.
				c.damage, c.damageKey = nil, nil
				if r := c.upload(painWithNewlines(), 4, ""); code(r) != protocol.CodeOK {
					t.Fatalf("intact upload after the refusal: %s %s", code(r), r.ReportText)
				}
				if n := len(c.s.Orders()); n != 1 {
					t.Fatalf("intact upload after the refusal: %d orders recorded, want 1", n)
				}
			})
		}
	}
}

// An upload abandoned half way (the bank's transaction timeout) stops its
// decoder: its goroutine ends and its spooled order data is removed.
func TestAbandonedUploadDecoderStops(t *testing.T) {
	dir := t.TempDir()
	c := newThirdParty(t, protocol.H004, "A006", StateReady, Config{MaxSegmentSize: 4096, SpoolDir: dir, TxTimeout: time.Minute})
	// Send the init and the first two of four segments only.
	c.stopAfter = 2
	c.upload(painWithNewlines(), 4, "")
	if n := decoders(); n != 1 {
		t.Fatalf("%d decoder goroutines during the upload, want 1", n)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("spool folder holds %d files during the upload, want the order data file", len(ents))
	}
	c.s.mu.Lock()
	c.s.expireLocked(time.Now().Add(2 * time.Minute))
	c.s.mu.Unlock()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("spool folder holds %d files after expiry", len(ents))
	}
	deadline := time.Now().Add(5 * time.Second)
	for decoders() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := decoders(); n > 0 {
		t.Fatalf("%d decoder goroutines still running after expiry", n)
	}
}

// decoders counts the running upload decoder goroutines.
func decoders() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "created by github.com/acquit/acquit/plugins/ebics/sim.(*Sim).startDecoder")
}
