package sim

import (
	"bytes"
	"crypto/sha256"
	"math/rand"
	"testing"

	"github.com/acquit/acquit/plugins/ebics/indep"
)

// The streaming order digest equals the digest of the order without CR,
// LF and Ctrl-Z (left out by the test helpers' indep.StripCRLFEOF), however the data is split into writes and wherever the
// left-out bytes fall (none, at the edges, in runs, everywhere).
func TestStrippedHashMatchesIndependentStrip(t *testing.T) {
	s := &Sim{}
	rnd := rand.New(rand.NewSource(7))
	alphabet := []byte{'a', 'b', '<', '>', ' ', '\r', '\n', 0x1a}
	cases := [][]byte{nil, []byte("\r\n\x1a"), []byte("no line ends at all"), []byte("\n\nx\r\r\x1a\x1ay\n")}
	for _, n := range []int{1, 15, 100, 40 << 10, 300 << 10} {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rnd.Intn(len(alphabet))]
		}
		cases = append(cases, b)
		lines := bytes.Repeat([]byte("<CdtTrfTxInf><Amt>1.00</Amt></CdtTrfTxInf>\r\n"), n/40+1)
		cases = append(cases, lines, bytes.Repeat([]byte("x"), n))
	}
	for i, data := range cases {
		want := sha256.Sum256(indep.StripCRLFEOF(data))
		for _, step := range []int{1, 3, 64, 4096, len(data) + 1} {
			h := s.orderHash()
			for p := data; len(p) > 0; {
				m := min(step, len(p))
				h.Write(p[:m])
				p = p[m:]
			}
			if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
				t.Fatalf("case %d (%d bytes), writes of %d: digest differs", i, len(data), step)
			}
		}
	}
}
