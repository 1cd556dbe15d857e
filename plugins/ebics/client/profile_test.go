package client_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/acquit/acquit/plugins/ebics/client"
)

// client_order_id and es_strip_crlf: defaults, overrides as a bank's
// settings give them (JSON), and the combinations refused.
func TestClientOrderIDProfile(t *testing.T) {
	cases := []struct {
		name, base, over string
		sends, strip     bool
		err              string
	}{
		{"de default", "de", `{}`, true, true, ""},
		{"fr default", "fr", `{}`, true, true, ""},
		{"v3 default", "v3", `{}`, false, true, ""},
		{"de bank assigns", "de", `{"client_order_id": false}`, false, true, ""},
		{"de raw digest", "de", `{"es_strip_crlf": false}`, true, false, ""},
		{"v3 explicit false", "v3", `{"client_order_id": false}`, false, true, ""},
		{"v3 client order id", "v3", `{"client_order_id": true}`, false, true, "EBICS 3.0 has no client-assigned OrderID"},
		{"de as H005", "fr", `{"version": "H005", "client_order_id": true}`, false, true, "no client-assigned OrderID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var over client.Profile
			if err := json.Unmarshal([]byte(c.over), &over); err != nil {
				t.Fatal(err)
			}
			p, err := client.Resolve(c.base, over)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.SendsOrderID() != c.sends || p.StripCRLF() != c.strip {
				t.Fatalf("sends order id %v, strip %v", p.SendsOrderID(), p.StripCRLF())
			}
		})
	}
}
