package worldline

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/worldline/direct"
	"github.com/acquit/acquit/plugins/worldline/sim"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/plugintest"
)

const (
	tMerchant   = "acquitshop"
	tAPIKey     = "KEY1"
	tAPISecret  = "test-api-secret-0123456789"
	tWebhookID  = "whk-1"
	tWebhookKey = "test-webhook-secret-0123"
	tOldID      = "whk-0"
	tOldKey     = "old-webhook-secret-0123"
)

func settingsJSON(t testing.TB, apiURL string) []byte {
	t.Helper()
	b, err := json.Marshal(Settings{Merchants: []MerchantSettings{{Name: "shop", MerchantID: tMerchant, Environment: "test",
		APIURL: apiURL, APIKeyID: tAPIKey, APISecret: tAPISecret,
		WebhookKeys: map[string]string{tWebhookID: tWebhookKey, tOldID: tOldKey}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signed(body []byte, keyID, key string) sdk.Notification {
	return sdk.Notification{Channel: sdk.ChannelAutomatic, Method: "POST", Body: body,
		Headers: map[string][]string{"X-Gcs-Signature": {direct.WebhookSignature(key, body)}, "X-Gcs-Keyid": {keyID}}}
}

// ignoresCtx is the plugin broken on purpose for plugintest.CheckBroken:
// its queries to Worldline outlive a cancelled call.
type ignoresCtx struct{ sdk.PaymentGateway }

func (g ignoresCtx) QueryTransaction(ctx context.Context, q sdk.TransactionQuery) (*sdk.PaymentResult, error) {
	return g.PaymentGateway.QueryTransaction(context.WithoutCancel(ctx), q)
}

// TestConformance runs every check of the kit, none skipped.
// ContextCancellation queries a hosted checkout recorded in the Host
// beforehand (the plugin asks Worldline only about checkouts it created)
// against an API that never answers; it is shown to fail on a variant that
// ignores its context.
func TestConformance(t *testing.T) {
	body, _ := os.ReadFile("testdata/webhooks/captured.json")
	host := plugintest.NewMemHost()
	if err := putCheckout(context.Background(), host, checkout{ID: "hc-cancel-1", Reference: "CANCEL1", Merchant: "shop",
		ReturnMAC: "mac", Amount: 1000, Currency: "EUR", Created: time.Now().UnixMilli(), Timeout: 180}); err != nil {
		t.Fatal(err)
	}
	factory := func() sdk.PaymentGateway { return New(Silent()) }
	if plugintest.BrokenVariant() == "ignores-ctx" {
		factory = func() sdk.PaymentGateway { return ignoresCtx{New(Silent())} }
	}
	plugintest.RunGateway(t, factory, plugintest.GatewayOptions{
		Name:     Name,
		Settings: settingsJSON(t, "http://127.0.0.1:1"),
		Host:     host,
		BadSettings: append(plugintest.DefaultBadSettings,
			[]byte(`{"merchants":[{"name":"shop","merchant_id":"m","environment":"test","api_key_id":"k","api_secret":"short","webhook_keys":{"a":"0123456789"}}]}`),
			[]byte(`{"merchants":[{"name":"shop","merchant_id":"m","environment":"moon","api_key_id":"k","api_secret":"0123456789","webhook_keys":{"a":"0123456789"}}]}`),
			[]byte(`{"merchants":[{"name":"shop","merchant_id":"m","environment":"test","api_key_id":"k","api_secret":"0123456789","webhook_keys":{}}]}`)),
		Forged: []sdk.Notification{
			signed(body, tWebhookID, "not-the-secret"),
			signed(body, "whk-unknown", tWebhookKey),
			{Channel: sdk.ChannelManual, Method: "GET", Query: "hostedCheckoutId=1&RETURNMAC=x"},
		},
		Valid:           func() *sdk.Notification { n := signed(body, tWebhookID, tWebhookKey); return &n }(),
		HangingSettings: func(url string) []byte { return settingsJSON(t, url) },
		HangingQuery:    sdk.TransactionQuery{Reference: "CANCEL1"},
	})
	if plugintest.BrokenVariant() != "" {
		return
	}
	plugintest.CheckBroken(t, map[string]string{"ignores-ctx": "ContextCancellation"})
}

// golden is one case of testdata/webhooks/cases.json.
type golden struct {
	File      string `json:"file"`
	Outcome   string `json:"outcome"`
	AskLater  bool   `json:"ask_later"`
	Reference string `json:"reference"`
	Amount    int64  `json:"amount"`
	Operation string `json:"operation"` // kind/status
	Reject    string `json:"reject"`
}

func TestGoldenWebhooks(t *testing.T) {
	b, err := os.ReadFile("testdata/webhooks/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []golden
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	p := New(Silent())
	if err := p.Configure(context.Background(), settingsJSON(t, "http://127.0.0.1:1"), plugintest.NewMemHost()); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			body, err := os.ReadFile("testdata/webhooks/" + c.File)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.VerifyNotification(context.Background(), signed(body, tWebhookID, tWebhookKey))
			if c.Reject != "" {
				var rej *sdk.RejectError
				if !errors.As(err, &rej) || rej.Code != c.Reject {
					t.Fatalf("got (%+v, %v), want reject %s", res, err, c.Reject)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			op := ""
			if res.Operation != nil {
				op = res.Operation.Kind + "/" + res.Operation.Status
			}
			if string(res.Outcome) != c.Outcome || res.AskLater != c.AskLater || res.Reference != c.Reference ||
				res.Amount != c.Amount || op != c.Operation || res.Merchant != "shop" {
				t.Fatalf("got %+v (operation %q), want %+v", res, op, c)
			}
		})
	}
}

// The old webhook key still verifies during a rotation.
func TestWebhookKeyRotation(t *testing.T) {
	p := New(Silent())
	if err := p.Configure(context.Background(), settingsJSON(t, "http://127.0.0.1:1"), plugintest.NewMemHost()); err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile("testdata/webhooks/rejected.json")
	for _, k := range [][2]string{{tWebhookID, tWebhookKey}, {tOldID, tOldKey}} {
		if _, err := p.VerifyNotification(context.Background(), signed(body, k[0], k[1])); err != nil {
			t.Fatalf("key %s: %v", k[0], err)
		}
	}
	// A key id of the rotation with the other key's secret is refused.
	_, err := p.VerifyNotification(context.Background(), signed(body, tOldID, tWebhookKey))
	var rej *sdk.RejectError
	if !errors.As(err, &rej) || rej.Code != RejectBadSignature {
		t.Fatalf("crossed keys: %v", err)
	}
}

// A full payment with the simulator: hosted checkout, webhooks, the
// customer's return (RETURNMAC, then GetHostedCheckout) and a query.
func TestFlowWithSimulator(t *testing.T) {
	ctx := context.Background()
	var got []*sdk.PaymentResult
	p := New(Silent())
	host := plugintest.NewMemHost()
	hook := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body [65536]byte
		n, _ := r.Body.Read(body[:])
		res, err := p.VerifyNotification(ctx, sdk.Notification{Channel: sdk.ChannelAutomatic, Method: r.Method,
			Headers: r.Header, Body: body[:n]})
		if err != nil {
			t.Errorf("webhook: %v", err)
			w.WriteHeader(400)
			return
		}
		got = append(got, res)
	})
	srv := &http.Server{Handler: hook}
	s := sim.New(sim.Config{Merchants: []sim.Merchant{{ID: tMerchant, APIKeys: map[string]string{tAPIKey: tAPISecret},
		WebhookKeyID: tWebhookID, WebhookSecret: tWebhookKey}}, Seed: 1})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln := listen(t)
	go srv.Serve(ln)
	defer srv.Close()
	s.SetWebhookURL(tMerchant, "http://"+ln.Addr().String()+"/")
	if err := p.Configure(ctx, settingsJSON(t, s.URL()), host); err != nil {
		t.Fatal(err)
	}
	init, err := p.InitPayment(ctx, sdk.PaymentRequest{Reference: "REF1", Amount: 1234, Currency: "EUR",
		ManualURL: "http://shop.example/notify/worldline/manual", AutomaticURL: "http://shop.example/a", Locale: "fr-FR"})
	if err != nil {
		t.Fatal(err)
	}
	if init.Reference != "REF1" || init.Method != "GET" || !strings.HasPrefix(init.RedirectURL, s.URL()) {
		t.Fatalf("init %+v", init)
	}
	// Before paying, the checkout is in progress: not final.
	q, err := p.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "REF1"})
	if err != nil || q.Outcome != sdk.OutcomePending || !q.AskLater {
		t.Fatalf("query before paying: %+v %v", q, err)
	}
	back, err := (&sim.Browser{}).Pay(ctx, init.RedirectURL, "accepted")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Outcome != sdk.OutcomePending || got[1].Outcome != sdk.OutcomeAccepted ||
		got[1].Operation == nil || got[1].Operation.Kind != sdk.OperationCapture {
		t.Fatalf("webhook results %+v", got)
	}
	u, _ := url.Parse(back)
	ret := sdk.Notification{Channel: sdk.ChannelManual, Method: "GET", Query: u.RawQuery}
	res, err := p.VerifyNotification(ctx, ret)
	if err != nil || res.Outcome != sdk.OutcomeAccepted || res.Reference != "REF1" || res.Amount != 1234 {
		t.Fatalf("return: %+v %v", res, err)
	}
	// A tampered RETURNMAC is refused before Worldline is asked.
	qv := u.Query()
	qv.Set("RETURNMAC", qv.Get("RETURNMAC")+"0")
	_, err = p.VerifyNotification(ctx, sdk.Notification{Channel: sdk.ChannelManual, Method: "GET", Query: qv.Encode()})
	var rej *sdk.RejectError
	if !errors.As(err, &rej) || rej.Code != RejectBadReturnMAC {
		t.Fatalf("tampered RETURNMAC: %v", err)
	}
	q, err = p.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "REF1"})
	if err != nil || q.Outcome != sdk.OutcomeAccepted || q.Operation == nil {
		t.Fatalf("query after paying: %+v %v", q, err)
	}
	// Requests signed with a wrong secret are refused by the simulator as
	// by the platform (401).
	bad := New(Silent())
	wrong := strings.Replace(string(settingsJSON(t, s.URL())), tAPISecret, "wrong-api-secret-000", 1)
	if err := bad.Configure(ctx, []byte(wrong), host); err != nil {
		t.Fatal(err)
	}
	_, err = bad.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "REF1"})
	var se *direct.StatusError
	if !errors.As(err, &se) || se.Status != 401 {
		t.Fatalf("wrong secret: %v", err)
	}
	// A clock 10 minutes off is refused too.
	skewed := New(Silent(), WithClock(func() time.Time { return time.Now().Add(-10 * time.Minute) }))
	if err := skewed.Configure(ctx, settingsJSON(t, s.URL()), host); err != nil {
		t.Fatal(err)
	}
	if _, err = skewed.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "REF1"}); !errors.As(err, &se) || se.Status != 401 {
		t.Fatalf("skewed clock: %v", err)
	}
	if st := s.Stats(); st.AuthRefused != 2 {
		t.Fatalf("simulator refused %d requests, want 2", st.AuthRefused)
	}
}
