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
	resp, _ = http.Post(base+"/admin/documents?partner=P&kind=PSR&format=pain.002.001.03", "application/xml", strings.NewReader("<Document/>"))
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	id := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK || len(s.Docs()) != 1 || s.Docs()[0].ID != id || string(s.Docs()[0].Content) != "<Document/>" {
		t.Fatalf("offer a document: %d %q %+v", resp.StatusCode, b, s.Docs())
	}
	resp, _ = http.Get(base + "/admin/documents")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"ID":"`+id+`"`) || !strings.Contains(string(b), `"Bytes":11,"Delivered":false`) {
		t.Fatalf("documents: %s", b)
	}
	resp, _ = http.Post(base+"/admin/documents?kind=PSR", "application/xml", strings.NewReader("<Document/>"))
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a document for no partner: %d", resp.StatusCode)
	}
	resp, _ = http.Get(url) // EBICS endpoint: POST only
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /ebics: %d", resp.StatusCode)
	}
}
