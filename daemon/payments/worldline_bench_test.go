package payments

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/worldline"
	"github.com/acquit/acquit/plugins/worldline/direct"
	"github.com/acquit/acquit/plugins/worldline/sim"
	"github.com/acquit/acquit/sdk"
)

// BenchmarkWebhook measures one Worldline webhook end to end, as
// BenchmarkAutomaticResponse does for Sips: HTTP on loopback -> raw input
// committed -> X-GCS-Signature checked and the event id recorded (plugin
// state, one more commit) -> payment decided, capture recorded, history
// and events committed in one transaction -> 200.
func BenchmarkWebhook(b *testing.B) {
	for _, d := range drivers {
		b.Run(d, func(b *testing.B) { benchWebhook(b, d, 1) })
	}
}

// BenchmarkWebhookParallel is the same with 8 concurrent senders.
func BenchmarkWebhookParallel(b *testing.B) {
	for _, d := range drivers {
		b.Run(d, func(b *testing.B) { benchWebhook(b, d, 8) })
	}
}

func benchWebhook(b *testing.B, driver string, senders int) {
	e := newEnvOn(b, driver, nil)
	runSenders(b, e, "worldline", worldlineWebhooks(b, e, b.N), senders)
}

// worldlineWebhooks starts n payments through the real Worldline plugin
// (hosted checkouts on the simulator) and returns for each a signed
// payment.captured webhook as the platform sends it.
func worldlineWebhooks(b *testing.B, e *env, n int) []benchRequest {
	withWorldline(b, e, sim.Config{Seed: 9})
	out := make([]benchRequest, n)
	for i := range out {
		st := e.startWL(b, 1000+int64(i))
		out[i] = signedWebhook(fmt.Sprintf("b0000000-0000-4000-8000-%012d", i), st.Reference, fmt.Sprintf("%d_0", 4000000000+i), 1000+int64(i))
	}
	return out
}

func signedWebhook(eventID, ref, paymentID string, amount int64) benchRequest {
	body, _ := json.Marshal(direct.WebhookEvent{APIVersion: "v1", ID: eventID, Created: "2026-12-04T07:00:00.000+0100",
		MerchantID: wlMID, Type: "payment.captured", Payment: &direct.Payment{ID: paymentID, Status: "CAPTURED",
			StatusOutput:  &direct.StatusOutput{StatusCode: 9, StatusCategory: "COMPLETED", IsAuthorized: true},
			PaymentOutput: &direct.PaymentOutput{AmountOfMoney: &direct.AmountOfMoney{Amount: amount, CurrencyCode: "EUR"}, References: &direct.References{MerchantReference: ref}}}})
	return benchRequest{body: string(body), ctype: "application/json",
		header: map[string]string{direct.HeaderSignature: direct.WebhookSignature(wlHookKey, body), direct.HeaderKeyID: wlHookID}}
}

// BenchmarkBareWebhookHandler is the floor: a net/http handler on loopback
// that only reads the body and has the Worldline plugin check its
// signature and decode it (no store: no event id recorded).
func BenchmarkBareWebhookHandler(b *testing.B) {
	raw, _ := json.Marshal(worldline.Settings{Merchants: []worldline.MerchantSettings{{Name: "shop", MerchantID: wlMID,
		Environment: "test", APIURL: "http://127.0.0.1:1", APIKeyID: wlKeyID, APISecret: wlSecret,
		WebhookKeys: map[string]string{wlHookID: wlHookKey}}}})
	p := worldline.New(worldline.Silent())
	if err := p.Configure(context.Background(), raw, nil); err != nil {
		b.Fatal(err)
	}
	req := signedWebhook("b0000000-0000-4000-8000-000000000000", "REF1", "4000000000_0", 1000)
	srv := loopbackServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "read", 400)
			return
		}
		if _, err := p.VerifyNotification(r.Context(), sdk.Notification{Channel: sdk.ChannelAutomatic, Method: r.Method,
			Path: r.URL.Path, Headers: r.Header, Body: body, ReceivedAt: time.Now()}); err != nil {
			http.Error(w, "signature", 400)
			return
		}
		w.WriteHeader(200)
	}))
	c := &http.Client{}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if code := req.post(b, c, srv.URL); code != 200 {
			b.Fatalf("HTTP %d", code)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resp/s")
	reportLatency(b, lat)
}
