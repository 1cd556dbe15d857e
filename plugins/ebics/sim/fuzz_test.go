package sim

import (
	"crypto/rsa"
	"math/big"
	"os"
	"testing"

	"github.com/acquit/acquit/plugins/ebics/keys"
)

// FuzzHandle feeds arbitrary request bodies to the bank: it must answer
// (an EBICS error response) and never panic.
func FuzzHandle(f *testing.F) {
	for _, n := range []string{"php_hpb.xml", "php_ini.xml", "php_hia.xml", "xxe.xml", "bomb.xml"} {
		b, _ := os.ReadFile("../protocol/testdata/" + n)
		f.Add(b)
	}
	f.Add([]byte(`<ebicsHEVRequest xmlns="http://www.ebics.org/H000"><HostID>CRSISOTB</HostID></ebicsHEVRequest>`))
	s := newFuzzSim(f)
	s.AddSubscriber("CRS04285", "CRS04285")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := s.handle(body)
		if err == nil && len(out) == 0 {
			t.Fatal("empty answer")
		}
	})
}

// newFuzzSim builds a simulator whose bank keys are public halves only and
// whose responses are unsigned: RSA private operations (key generation,
// validation, signing) are far too slow under the fuzzer's coverage
// instrumentation, and the fuzz target is about parsing, not signatures.
func newFuzzSim(f *testing.F) *Sim {
	n := new(big.Int).Lsh(big.NewInt(1), 2047)
	n.Add(n, big.NewInt(0x1d))
	priv := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 65537}}
	auth := &keys.Key{Version: "X002", Private: priv}
	enc := &keys.Key{Version: "E002", Private: priv}
	s, err := New(Config{HostID: "CRSISOTB", BankKeys: &keys.Set{Auth: auth, Enc: enc}})
	if err != nil {
		f.Fatal(err)
	}
	s.unsigned = true
	return s
}
