package client

import (
	"bytes"
	"compress/flate"
	"math/rand"
	"os/exec"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/acquit/acquit/plugins/ebics/indep"
)

// pythonInflate decompresses a zlib stream with python3's zlib module (the
// C zlib, which acquit did not write).
func pythonInflate(t *testing.T, z []byte) []byte {
	t.Helper()
	out, err := indep.Inflate(z)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The parallel deflate's output is one zlib stream that an implementation
// acquit did not write (python3's zlib) inflates back into the input: empty
// input, less than a block, exactly one block, a block and a byte, many
// blocks, random (stored blocks) and highly repetitive (long matches across
// the block boundaries, through the dictionary) data, 1 to 3 workers, and
// input read in odd pieces.
func TestParallelZlibIndependentInflate(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 (independent zlib) not found; .ci/run installs it")
	}
	rnd := rand.New(rand.NewSource(12))
	random := func(n int) []byte { b := make([]byte, n); rnd.Read(b); return b }
	repetitive := func(n int) []byte {
		return []byte(strings.Repeat("<CdtTrfTxInf><Amt Ccy=\"EUR\">12.50</Amt></CdtTrfTxInf>\n", n/54+1)[:n])
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte("x")},
		{"under a block, text", repetitive(300 << 10)},
		{"exactly one block, random", random(pzBlock)},
		{"one block and a byte, text", repetitive(pzBlock + 1)},
		{"many blocks, random", random(5*pzBlock + 12345)},
		{"many blocks, one byte repeated", bytes.Repeat([]byte{'A'}, 7*pzBlock)},
		{"many blocks, text", repetitive(6*pzBlock + 777)},
	}
	for _, c := range cases {
		for _, workers := range []int{1, 2, 3} {
			t.Run(c.name+"/"+string(rune('0'+workers)), func(t *testing.T) {
				var out bytes.Buffer
				z, err := newParallelZlib(&out, flate.DefaultCompression, workers)
				if err != nil {
					t.Fatal(err)
				}
				n, err := z.ReadFrom(iotest.HalfReader(bytes.NewReader(c.data)))
				if err != nil || n != int64(len(c.data)) {
					t.Fatalf("read %d of %d: %v", n, len(c.data), err)
				}
				if err := z.Close(); err != nil {
					t.Fatal(err)
				}
				if got := pythonInflate(t, out.Bytes()); !bytes.Equal(got, c.data) {
					t.Fatalf("python3 inflates %d bytes, want the %d written", len(got), len(c.data))
				}
			})
		}
	}
	// Matches reach across block boundaries (the dictionary): 20 KB of
	// random bytes repeated compress to about 20 KB in one stream; without
	// the dictionary each block would carry them again.
	var one, par bytes.Buffer
	text := bytes.Repeat(random(20000), 4*pzBlock/20000)
	z, _ := newParallelZlib(&par, flate.DefaultCompression, 2)
	z.ReadFrom(bytes.NewReader(text))
	z.Close()
	fw, _ := flate.NewWriter(&one, flate.DefaultCompression)
	fw.Write(text)
	fw.Close()
	if par.Len() > one.Len()+one.Len()/10 {
		t.Fatalf("blocks compress to %d bytes, one stream to %d: the dictionary is not used", par.Len(), one.Len())
	}
}

// A corrupted Adler-32 trailer is refused by python3's zlib (indep.Inflate,
// the check of the test above): that check can fail.
func TestParallelZlibTrailerChecked(t *testing.T) {
	var out bytes.Buffer
	z, _ := newParallelZlib(&out, flate.DefaultCompression, 2)
	z.ReadFrom(bytes.NewReader(bytes.Repeat([]byte("abc"), pzBlock)))
	z.Close()
	b := out.Bytes()
	if _, err := indep.Inflate(b); err != nil {
		t.Fatalf("the intact stream is refused: %v", err)
	}
	b[len(b)-1] ^= 1
	if _, err := indep.Inflate(b); err == nil {
		t.Fatal("python3 accepted a wrong Adler-32")
	}
}
