package sim

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAdminEndpoints(t *testing.T) {
	s := newTestSim(t)
	s.cfg.Admin = true
	s.cfg.ManualActivation = true
	url, err := s.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := strings.TrimSuffix(url, "/ebics")
	s.AddSubscriber("P", "U")
	resp, err := http.Post(base+"/admin/activate?partner=P&user=U", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("activating a new subscriber: %d", resp.StatusCode)
	}
	s.subs["P/U"].state = StateInitialised
	resp, _ = http.Post(base+"/admin/activate?partner=P&user=U", "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || s.State("P", "U") != StateReady {
		t.Fatalf("activate: %d %s", resp.StatusCode, s.State("P", "U"))
	}
	s.orders = append(s.orders, Order{OrderID: "A001", PartnerID: "P", Data: []byte("xyz")})
	resp, _ = http.Get(base + "/admin/orders")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"OrderID":"A001"`) || !strings.Contains(string(b), `"Bytes":3`) {
		t.Fatalf("orders: %s", b)
	}
	resp, _ = http.Get(url) // EBICS endpoint: POST only
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /ebics: %d", resp.StatusCode)
	}
}
