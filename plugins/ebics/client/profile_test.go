package client_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
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

// With client_order_id: false an EBICS 2.5 upload initialisation carries
// no OrderID (seen on the wire through a recording proxy), the bank
// assigns one, and the upload's result is the bank's.
func TestClientOrderIDBankAssigned(t *testing.T) {
	no := false
	e := newEnv(t, protocol.H004, "de", sim.Config{}, false)
	var rec recorder
	e.bank.URL = rec.start(t, e.url)
	e.bank.Profile.ClientOrderID = &no
	e.cl = e.newClient(t)
	e.onboard(t)
	ctx := context.Background()
	rec.take()
	path := writePain(t, e.tmp, "MSG-OID", 20)
	res, err := e.cl.Upload(ctx, client.UploadSpec{ID: "OID1", Function: "sct", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var inits int
	for _, x := range rec.take() {
		if reSigData.Match(x.req) {
			inits++
			if reOrderID.Match(x.req) {
				t.Fatalf("upload initialisation carries an OrderID:\n%s", x.req)
			}
		}
	}
	orders := e.sim.Orders()
	if inits != 1 || len(orders) != 1 || res.OrderID == "" || res.OrderID != orders[0].OrderID {
		t.Fatalf("%d inits, result %+v, bank orders %+v", inits, res, orders)
	}
}
