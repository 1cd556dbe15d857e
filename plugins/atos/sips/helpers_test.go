package sips

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const simKey = "002001000000001_KEY1"

func readFixture(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

type knownSeal struct{ file, alg, encode, seal string }

func knownSeals(tb testing.TB) []knownSeal {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "seals.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []knownSeal
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		p := strings.Fields(line)
		out = append(out, knownSeal{p[0], p[1], p[2], p[3]})
	}
	return out
}

func simAccount() *Account {
	return &Account{MerchantID: "002001000000001", Keys: map[string]string{"1": simKey}, Algorithm: HMACSHA256}
}

func lookupOf(accs ...*Account) AccountLookup {
	return func(id string) (*Account, bool) {
		for _, a := range accs {
			if a.MerchantID == id {
				return a, true
			}
		}
		return nil, false
	}
}
