package demo

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrBelowEphemeralRange: the harness's addresses are loopback,
// below the kernel's ephemeral ports, bindable, and never handed out twice.
func TestFreeAddrBelowEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	seen := map[string]bool{}
	for range 50 {
		a, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		if host != "127.0.0.1" || p < 10000 || p >= lo {
			t.Fatalf("address %s: want 127.0.0.1 with a port in [10000, %d)", a, lo)
		}
		if seen[a] {
			t.Fatalf("address %s handed out twice", a)
		}
		seen[a] = true
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("address %s not bindable: %v", a, err)
		}
		l.Close()
	}
}
