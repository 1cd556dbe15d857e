package sim

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/worldline/direct"
)

// receiver records the webhooks it gets, verified with the webhook key.
type receiver struct {
	mu   sync.Mutex
	evs  []direct.WebhookEvent
	bad  int
	url  string
	stop func()
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, err := direct.VerifyWebhook(req.Header, body, func(k string) (string, bool) { return "hook-secret-0123", k == "whk" }); err != nil {
			r.bad++
			w.WriteHeader(400)
			return
		}
		var ev direct.WebhookEvent
		_ = json.Unmarshal(body, &ev)
		r.evs = append(r.evs, ev)
	})}
	go srv.Serve(ln)
	r.url, r.stop = "http://"+ln.Addr().String()+"/", func() { srv.Close() }
	t.Cleanup(r.stop)
	return r
}

func newSim(t *testing.T, f Faults, hook string, expire time.Duration) (*Sim, direct.Endpoint) {
	s := New(Config{Seed: 1, Faults: f, ExpireAfter: expire, Merchants: []Merchant{{ID: "m1", APIKeys: map[string]string{"K": "api-secret-0123"},
		WebhookKeyID: "whk", WebhookSecret: "hook-secret-0123", WebhookURL: hook}}})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, direct.Endpoint{BaseURL: s.URL(), MerchantID: "m1", Creds: direct.Credentials{KeyID: "K", Secret: "api-secret-0123"}}
}

func newCheckout(t *testing.T, ep direct.Endpoint, ref string) *direct.CreateHostedCheckoutResponse {
	t.Helper()
	r, err := (&direct.Client{}).CreateHostedCheckout(context.Background(), ep, &direct.CreateHostedCheckoutRequest{
		Order:                       direct.Order{AmountOfMoney: direct.AmountOfMoney{Amount: 500, CurrencyCode: "EUR"}, References: direct.References{MerchantReference: ref}},
		HostedCheckoutSpecificInput: direct.HostedCheckoutSpecificInput{ReturnURL: "http://shop.example/back?x=1"}}, ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Signed webhooks arrive with the faults asked for: all twice, each
// payment's in reverse order; the return carries hostedCheckoutId and
// RETURNMAC; idempotence keys give the same checkout.
func TestWebhooksWithFaults(t *testing.T) {
	rcv := newReceiver(t)
	s, ep := newSim(t, Faults{Duplicate: 1, Reorder: 1}, rcv.url, 0)
	ctx := context.Background()
	co := newCheckout(t, ep, "R1")
	if again := newCheckout(t, ep, "R1"); again.HostedCheckoutID != co.HostedCheckoutID {
		t.Fatalf("idempotence key ignored: %s then %s", co.HostedCheckoutID, again.HostedCheckoutID)
	}
	back, err := (&Browser{}).Pay(ctx, co.RedirectURL, "accepted")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(back, "http://shop.example/back?x=1&hostedCheckoutId="+co.HostedCheckoutID+"&RETURNMAC=") {
		t.Fatalf("return URL %s", back)
	}
	if err := s.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.bad != 0 || len(rcv.evs) != 4 {
		t.Fatalf("%d webhooks (%d badly signed), want 4", len(rcv.evs), rcv.bad)
	}
	// Reversed: captured (9) first, then capture requested (91); each twice.
	if rcv.evs[0].Type != "payment.captured" || rcv.evs[1].ID != rcv.evs[0].ID || rcv.evs[2].Payment.StatusOutput.StatusCode != 91 {
		t.Fatalf("order %s %s %s", rcv.evs[0].Type, rcv.evs[1].Type, rcv.evs[2].Type)
	}
	if s.Decided()["R1"] != "accepted" || s.Stats().Duplicated != 2 || s.Stats().Reordered != 1 {
		t.Fatalf("decided %v, stats %+v", s.Decided(), s.Stats())
	}
}

// Dropped webhooks are never sent; an unpaid checkout is unknown (404)
// once expired; requests signed wrongly are refused with 401.
func TestDropsExpiryAndAuth(t *testing.T) {
	rcv := newReceiver(t)
	s, ep := newSim(t, Faults{Drop: 1}, rcv.url, time.Second)
	ctx := context.Background()
	co := newCheckout(t, ep, "R2")
	if _, err := (&Browser{}).Pay(ctx, co.RedirectURL, "refused"); err != nil {
		t.Fatal(err)
	}
	unpaid := newCheckout(t, ep, "R3")
	if err := s.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	n := len(rcv.evs)
	rcv.mu.Unlock()
	if n != 0 || s.Stats().Dropped != 1 {
		t.Fatalf("%d webhooks sent, stats %+v", n, s.Stats())
	}
	time.Sleep(1200 * time.Millisecond)
	cl := &direct.Client{}
	if _, err := cl.GetHostedCheckout(ctx, ep, unpaid.HostedCheckoutID); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("expired checkout: %v", err)
	}
	hc, err := cl.GetHostedCheckout(ctx, ep, co.HostedCheckoutID)
	if err != nil || hc.Status != direct.CheckoutPaymentCreated || hc.CreatedPaymentOutput.Payment.StatusOutput.StatusCode != 2 {
		t.Fatalf("paid checkout: %+v %v", hc, err)
	}
	bad := ep
	bad.Creds.Secret = "wrong"
	if _, err := cl.GetHostedCheckout(ctx, bad, co.HostedCheckoutID); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
	late := &direct.Client{Now: func() time.Time { return time.Now().Add(-6 * time.Minute) }}
	if _, err := late.GetHostedCheckout(ctx, ep, co.HostedCheckoutID); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("old Date: %v", err)
	}
}
