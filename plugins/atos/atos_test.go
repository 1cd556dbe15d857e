package atos_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/acquit/acquit/plugins/atos"
	"github.com/acquit/acquit/plugins/atos/sim"
	"github.com/acquit/acquit/plugins/atos/sips"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/plugintest"
)

const (
	mid    = "002001000000001"
	keyV1  = "002001000000001_KEY1"
	keyV2  = "second-key-for-rotation-2"
	maxNot = 64 << 10
)

// settings returns plugin settings pointing at base, adjusted by mut.
func settings(t testing.TB, base string, mut func(m map[string]any)) []byte {
	t.Helper()
	m := map[string]any{
		"name": "shop", "merchant_id": mid, "environment": "test",
		"paypage_url": base, "office_url": base,
		"keys":          map[string]string{"1": keyV1},
		"payment_means": []string{"CB", "VISA"},
		"capture_day":   0,
	}
	if mut != nil {
		mut(m)
	}
	b, err := json.Marshal(map[string]any{"request_timeout": "5s", "merchants": []any{m}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type received struct {
	channel sdk.Channel
	res     *sdk.PaymentResult
}

// shop is acquit's public listener reduced to what the plugin needs: it
// reads the raw body and hands it to VerifyNotification.
type shop struct {
	p       sdk.PaymentGateway
	srv     *httptest.Server
	mu      sync.Mutex
	got     map[string][]received
	rejects []string
	status  int // answer to automatic responses
}

func newShop(t *testing.T, p sdk.PaymentGateway) *shop {
	s := &shop{p: p, got: map[string][]received{}, status: 200}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ch sdk.Channel
		switch r.URL.Path {
		case "/notify/atos/automatic":
			ch = sdk.ChannelAutomatic
		case "/notify/atos/manual":
			ch = sdk.ChannelManual
		default:
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxNot+1))
		res, err := s.p.VerifyNotification(r.Context(), sdk.Notification{
			Channel: ch, Method: r.Method, Path: r.URL.Path, Headers: r.Header, Body: body, RemoteAddr: r.RemoteAddr, ReceivedAt: time.Now(),
		})
		s.mu.Lock()
		if err != nil {
			s.rejects = append(s.rejects, sips.RejectCode(err))
		} else {
			s.got[res.Reference] = append(s.got[res.Reference], received{ch, res})
		}
		st := s.status
		s.mu.Unlock()
		if ch == sdk.ChannelManual {
			http.Redirect(w, r, "/thanks", http.StatusSeeOther)
			return
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *shop) results(ref string) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got[ref]...)
}

func (s *shop) request(ref string) sdk.PaymentRequest {
	return sdk.PaymentRequest{
		Reference: ref, OrderID: "order-" + ref, Amount: 2500, Currency: "EUR",
		CustomerID: "c1", CustomerEmail: "zoe@example.com", Locale: "fr-FR",
		AutomaticURL: s.srv.URL + "/notify/atos/automatic", ManualURL: s.srv.URL + "/notify/atos/manual",
	}
}

func startSim(t *testing.T, cfg sim.Config) *sim.Sim {
	t.Helper()
	if cfg.Merchants == nil {
		cfg.Merchants = []sim.Merchant{{ID: mid, Keys: map[string]string{"1": keyV1, "2": keyV2}}}
	}
	s := sim.New(cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func configured(t *testing.T, raw []byte, host sdk.Host) *atos.Plugin {
	t.Helper()
	p := atos.New(atos.Silent())
	if err := p.Configure(context.Background(), raw, host); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

func waitSim(t *testing.T, s *sim.Sim) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestEndToEnd drives payments through the simulator in every mode: the
// automatic and manual responses both verify, agree with each other, with
// the simulator's decision and with Office.
func TestEndToEnd(t *testing.T) {
	modes := []struct {
		name string
		mut  func(m map[string]any)
	}{
		{"post", nil},
		{"post-base64", func(m map[string]any) { m["encode"] = "base64" }},
		{"post-base64url", func(m map[string]any) { m["encode"] = "base64url" }},
		{"json", func(m map[string]any) { m["mode"] = "json" }},
		{"post-s10", func(m map[string]any) { m["reference_style"] = "s10" }},
		{"json-s10", func(m map[string]any) { m["mode"] = "json"; m["reference_style"] = "s10" }},
		{"rotation-new-key", func(m map[string]any) {
			m["keys"] = map[string]string{"1": keyV1, "2": keyV2}
			m["key_version"] = "2"
		}},
		{"legacy-sha256", func(m map[string]any) { m["seal_algorithm"] = "SHA-256"; m["encode"] = "base64" }},
	}
	choices := []struct {
		choice   sim.Choice
		outcome  sdk.Outcome
		code     string
		askLater bool
	}{
		{sim.Choice{Outcome: "accepted"}, sdk.OutcomeAccepted, "00", false},
		{sim.Choice{Outcome: "refused"}, sdk.OutcomeRefused, "05", false},
		{sim.Choice{Outcome: "cancelled"}, sdk.OutcomeCancelled, "17", false},
		{sim.Choice{Outcome: "3ds_failure"}, sdk.OutcomeRefused, "05", false},
		{sim.Choice{CardNumber: "4100 0000 0000 0051"}, sdk.OutcomeRefused, "51", false},
		{sim.Choice{Outcome: "pending"}, sdk.OutcomePending, "60", true},
	}
	s := startSim(t, sim.Config{})
	ctx := context.Background()
	host := plugintest.NewMemHost() // one per plugin, as the daemon offers
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			p := configured(t, settings(t, s.URL(), mode.mut), host)
			sh := newShop(t, p)
			b := sim.NewBrowser()
			for i, c := range choices {
				ref := strings.ReplaceAll(mode.name, "-", "") + string(rune('A'+i))
				init, err := p.InitPayment(ctx, sh.request(ref))
				if err != nil {
					t.Fatalf("InitPayment: %v", err)
				}
				if strings.HasSuffix(mode.name, "s10") {
					if !regexp.MustCompile(`^\d{6}$`).MatchString(init.Reference) || len(init.TransactionDate) != 8 {
						t.Fatalf("s10 reference %q date %q", init.Reference, init.TransactionDate)
					}
				} else if init.Reference != ref {
					t.Fatalf("reference %q, want %q", init.Reference, ref)
				}
				m, err := b.Pay(ctx, init.Method, init.RedirectURL, init.Fields, c.choice)
				if err != nil {
					t.Fatalf("%+v: %v", c.choice, err)
				}
				resp, err := b.Return(ctx, m)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("shop answered the manual response with %d", resp.StatusCode)
				}
				waitSim(t, s)
				got := sh.results(init.Reference)
				if len(got) != 2 {
					t.Fatalf("%s: %d verified responses, want automatic + manual (rejects %v)", ref, len(got), sh.rejects)
				}
				for _, g := range got {
					r := g.res
					if r.Outcome != c.outcome || r.ResponseCode != c.code || r.AskLater != c.askLater {
						t.Fatalf("%s %s: outcome %s code %s askLater %v, want %s %s %v", ref, g.channel, r.Outcome, r.ResponseCode, r.AskLater, c.outcome, c.code, c.askLater)
					}
					if r.Amount != 2500 || r.Currency != "EUR" || r.Merchant != "shop" || r.TransactionDate != init.TransactionDate || r.Explanation == "" {
						t.Fatalf("%s %s: result %+v", ref, g.channel, r)
					}
				}
				if got[0].channel == got[1].channel {
					t.Fatalf("%s: both responses on channel %s", ref, got[0].channel)
				}
				if s.Decided()[init.Reference] != c.outcome {
					t.Fatalf("%s: simulator decided %s", ref, s.Decided()[init.Reference])
				}
				q, err := p.QueryTransaction(ctx, sdk.TransactionQuery{Merchant: "shop", Reference: init.Reference, TransactionDate: init.TransactionDate})
				if err != nil {
					t.Fatalf("QueryTransaction: %v", err)
				}
				if q.Outcome != c.outcome || q.Amount != 2500 || q.Currency != "EUR" {
					t.Fatalf("%s: Office says %+v", ref, q)
				}
			}
			if len(sh.rejects) != 0 {
				t.Fatalf("rejects: %v", sh.rejects)
			}
		})
	}
}

// TestFaults checks what reaches acquit under each simulator fault, and
// that Office always knows the truth.
func TestFaults(t *testing.T) {
	ctx := context.Background()
	type counts struct{ auto, manual int }
	tests := []struct {
		name    string
		faults  sim.Faults
		attempt int
		status  int
		want    counts
	}{
		{"drop automatic", sim.Faults{DropAutomatic: 1}, 1, 200, counts{0, 1}},
		{"never returns", sim.Faults{CustomerNeverReturns: 1}, 1, 200, counts{1, 0}},
		{"twice", sim.Faults{AutomaticTwice: 1}, 1, 200, counts{2, 1}},
		{"late", sim.Faults{AutomaticDelay: 200 * time.Millisecond}, 1, 200, counts{1, 1}},
		{"after manual", sim.Faults{AutomaticAfterManual: true}, 1, 200, counts{1, 1}},
		{"endpoint 500, retried", sim.Faults{}, 3, 500, counts{3, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSim(t, sim.Config{Faults: tt.faults, AutomaticAttempts: tt.attempt, RetryDelay: 10 * time.Millisecond})
			p := configured(t, settings(t, s.URL(), nil), nil)
			sh := newShop(t, p)
			sh.status = tt.status
			init, err := p.InitPayment(ctx, sh.request("F1"))
			if err != nil {
				t.Fatal(err)
			}
			b := sim.NewBrowser()
			m, err := b.Pay(ctx, init.Method, init.RedirectURL, init.Fields, sim.Choice{Outcome: "accepted"})
			if err != nil {
				t.Fatal(err)
			}
			if m.Returns {
				resp, err := b.Return(ctx, m)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			waitSim(t, s)
			var c counts
			var order []sdk.Channel
			for _, g := range sh.results("F1") {
				order = append(order, g.channel)
				if g.channel == sdk.ChannelAutomatic {
					c.auto++
				} else {
					c.manual++
				}
				if g.res.Outcome != sdk.OutcomeAccepted {
					t.Fatalf("outcome %s", g.res.Outcome)
				}
			}
			if c != tt.want {
				t.Fatalf("received %+v, want %+v", c, tt.want)
			}
			if tt.faults.AutomaticAfterManual && order[0] != sdk.ChannelManual {
				t.Fatalf("order %v", order)
			}
			q, err := p.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "F1"})
			if err != nil || q.Outcome != sdk.OutcomeAccepted {
				t.Fatalf("Office: %+v %v", q, err)
			}
		})
	}
	t.Run("abandoned then office", func(t *testing.T) {
		s := startSim(t, sim.Config{})
		p := configured(t, settings(t, s.URL(), nil), nil)
		sh := newShop(t, p)
		init, err := p.InitPayment(ctx, sh.request("AB1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sim.NewBrowser().Open(ctx, init.Method, init.RedirectURL, init.Fields); err != nil {
			t.Fatal(err)
		}
		q, err := p.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "AB1"})
		if err != nil || q.Outcome != sdk.OutcomeNotFound {
			t.Fatalf("abandoned: %+v %v", q, err)
		}
		q, err = p.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "NEVERSENT"})
		if err != nil || q.Outcome != sdk.OutcomeNotFound || q.AskLater {
			t.Fatalf("never sent: %+v %v", q, err)
		}
	})
	t.Run("office down and slow", func(t *testing.T) {
		s := startSim(t, sim.Config{Faults: sim.Faults{OfficeDown: true}})
		p := configured(t, settings(t, s.URL(), nil), nil)
		if _, err := p.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "X1"}); err == nil {
			t.Fatal("office down: no error")
		} else if e, ok := sips.IsAPIError(err); !ok || e.HTTPStatus != 503 {
			t.Fatalf("office down: %v", err)
		}
		s.SetFaults(sim.Faults{OfficeDelay: 3 * time.Second})
		raw, _ := json.Marshal(map[string]any{"request_timeout": "100ms", "merchants": []any{map[string]any{
			"name": "shop", "merchant_id": mid, "environment": "test", "paypage_url": s.URL(), "office_url": s.URL(), "keys": map[string]string{"1": keyV1}}}})
		p = configured(t, raw, nil)
		if _, err := p.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "X1"}); err == nil {
			t.Fatal("slow office: no error")
		}
	})
	t.Run("key the bank does not know gives 34", func(t *testing.T) {
		s := startSim(t, sim.Config{})
		p := configured(t, settings(t, s.URL(), func(m map[string]any) {
			m["keys"] = map[string]string{"3": "a-key-only-we-have"}
		}), nil)
		sh := newShop(t, p)
		init, err := p.InitPayment(ctx, sh.request("K34"))
		if err != nil {
			t.Fatal(err)
		}
		page, err := sim.NewBrowser().Open(ctx, init.Method, init.RedirectURL, init.Fields)
		if err != nil || page.ResponseCode != "34" {
			t.Fatalf("page %+v err %v", page, err)
		}
		_, err = p.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "K34"})
		e, ok := sips.IsAPIError(err)
		if !ok || e.ResponseCode != "34" || !strings.Contains(err.Error(), "keyVersion") {
			t.Fatalf("office with a wrong key: %v", err)
		}
	})
}

// TestHostileNotifications feeds the plugin what an attacker would post.
func TestHostileNotifications(t *testing.T) {
	s := startSim(t, sim.Config{Merchants: []sim.Merchant{
		{ID: mid, Keys: map[string]string{"1": keyV1, "2": keyV2}},
		{ID: "999000000000001", Keys: map[string]string{"1": "attacker-own-account-key"}},
	}})
	ctx := context.Background()
	p := configured(t, settings(t, s.URL(), nil), nil)
	sh := newShop(t, p)
	b := sim.NewBrowser()
	// A genuine response to take apart.
	init, err := p.InitPayment(ctx, sh.request("H1"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Pay(ctx, init.Method, init.RedirectURL, init.Fields, sim.Choice{Outcome: "refused"})
	if err != nil {
		t.Fatal(err)
	}
	genuine := m.Fields
	notify := func(body string, method string) error {
		_, err := p.VerifyNotification(ctx, sdk.Notification{Channel: sdk.ChannelAutomatic, Method: method, Body: []byte(body)})
		return err
	}
	if err := notify(genuine.Encode(), "POST"); err != nil {
		t.Fatalf("genuine: %v", err)
	}
	// The attacker's own Sips account (another merchant) pays 1 cent and
	// replays its genuinely sealed response to us.
	attacker := &sips.Account{MerchantID: "999000000000001", Keys: map[string]string{"1": "attacker-own-account-key"}}
	own, _ := sips.BuildPost(attacker, "1", map[string]string{"amount": "1", "currencyCode": "978", "responseCode": "00", "transactionReference": "H1"}, "", "HP_3.4")
	forgedKey := &sips.Account{MerchantID: mid, Keys: map[string]string{"1": "guessed-key-000"}}
	forged, _ := sips.BuildPost(forgedKey, "1", map[string]string{"amount": "2500", "currencyCode": "978", "responseCode": "00", "transactionReference": "H1"}, "", "HP_3.4")
	unknownKV := &sips.Account{MerchantID: mid, Keys: map[string]string{"9": keyV1}}
	kv9, _ := sips.BuildPost(unknownKV, "9", map[string]string{"amount": "2500", "currencyCode": "978", "responseCode": "00", "transactionReference": "H1"}, "", "HP_3.4")
	flipped := strings.Replace(genuine.Get("Data"), "responseCode=05", "responseCode=00", 1)
	tests := []struct {
		name, body, method, code string
	}{
		{"GET", genuine.Encode(), "GET", sips.RejectMalformed},
		{"other merchant's sealed response", own.Values().Encode(), "POST", sips.RejectUnknownMerchant},
		{"forged seal", forged.Values().Encode(), "POST", sips.RejectBadSeal},
		{"unknown key version", kv9.Values().Encode(), "POST", sips.RejectUnknownKeyVersion},
		{"refusal flipped to acceptance", "Data=" + urlq(flipped) + "&Seal=" + genuine.Get("Seal"), "POST", sips.RejectBadSeal},
		{"oversized", "Data=" + strings.Repeat("A", sips.MaxPostBody) + "&Seal=00", "POST", sips.RejectTooLarge},
		{"non-UTF-8", "Data=amount%3D1%7CcustomerName%3DZo%EB&Seal=00", "POST", sips.RejectBadEncoding},
		{"empty", "", "POST", sips.RejectMissingField},
		{"no seal", "Data=" + urlq(genuine.Get("Data")), "POST", sips.RejectMissingField},
		{"duplicate key in Data", "Data=" + urlq(genuine.Get("Data")+"|responseCode=00") + "&Seal=" + genuine.Get("Seal"), "POST", sips.RejectMalformed},
		{"Data twice", genuine.Encode() + "&Data=x", "POST", sips.RejectMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := notify(tt.body, tt.method)
			var rej *sdk.RejectError
			if !errors.As(err, &rej) || rej.Code != tt.code {
				t.Fatalf("err = %v, want reject %s", err, tt.code)
			}
		})
	}
}

func urlq(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "=", "%3D", "|", "%7C", "+", "%2B", " ", "+", "#", "%23")
	return r.Replace(s)
}

func TestSettings(t *testing.T) {
	good := func(mut func(m map[string]any)) []byte { return settings(t, "https://pay.example", mut) }
	bad := map[string][]byte{
		"not json":              []byte(`{`),
		"unknown field":         []byte(`{"merchants":[],"surprise":1}`),
		"no merchants":          []byte(`{"merchants":[]}`),
		"bad brand":             good(func(m map[string]any) { delete(m, "paypage_url"); m["brand"] = "atos-1999" }),
		"bad environment":       good(func(m map[string]any) { m["environment"] = "staging" }),
		"no keys":               good(func(m map[string]any) { m["keys"] = map[string]string{} }),
		"short key":             good(func(m map[string]any) { m["keys"] = map[string]string{"1": "short"} }),
		"key_version w/o key":   good(func(m map[string]any) { m["key_version"] = "7" }),
		"bad seal algorithm":    good(func(m map[string]any) { m["seal_algorithm"] = "MD5" }),
		"post with IR_WS":       good(func(m map[string]any) { m["interface_version"] = "IR_WS_2.58" }),
		"json with HP":          good(func(m map[string]any) { m["mode"] = "json"; m["interface_version"] = "HP_3.4" }),
		"json with encode":      good(func(m map[string]any) { m["mode"] = "json"; m["encode"] = "base64" }),
		"bad office version":    good(func(m map[string]any) { m["office_interface_version"] = "IR_WS_2.1" }),
		"bad capture mode":      good(func(m map[string]any) { m["capture_mode"] = "LATER" }),
		"bad capture day":       good(func(m map[string]any) { m["capture_day"] = 120 }),
		"bad reference style":   good(func(m map[string]any) { m["reference_style"] = "uuid" }),
		"bad paypage url":       good(func(m map[string]any) { m["paypage_url"] = "ftp://x" }),
		"bad merchant id":       good(func(m map[string]any) { m["merchant_id"] = "12 34" }),
		"bad payment mean":      good(func(m map[string]any) { m["payment_means"] = []string{"visa|cb"} }),
		"bad timeout":           []byte(`{"request_timeout":"forever","merchants":[]}`),
		"unknown default":       []byte(`{"default_merchant":"nope","merchants":[{"name":"a","merchant_id":"1","environment":"test","keys":{"1":"0123456789"}}]}`),
		"duplicate merchant id": []byte(`{"merchants":[{"name":"a","merchant_id":"1","environment":"test","keys":{"1":"0123456789"}},{"name":"b","merchant_id":"1","environment":"test","keys":{"1":"0123456789"}}]}`),
	}
	for name, raw := range bad {
		p := atos.New(atos.Silent())
		if err := p.Configure(context.Background(), raw, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A failed reload keeps the previous settings.
	p := configured(t, good(nil), nil)
	if err := p.Configure(context.Background(), bad["short key"], nil); err == nil {
		t.Fatal("bad reload accepted")
	}
	if err := p.Health(context.Background()); err != nil {
		t.Fatalf("Health after a failed reload: %v", err)
	}
	if err := atos.New().Health(context.Background()); !errors.Is(err, atos.ErrNotConfigured) {
		t.Fatalf("Health unconfigured: %v", err)
	}
	// Brand defaults: no URL given.
	for _, brand := range []string{"worldline", "mercanet", "sogenactif", "sherlocks", "scellius"} {
		for _, env := range []string{"simulation", "test", "production"} {
			raw := good(func(m map[string]any) {
				delete(m, "paypage_url")
				delete(m, "office_url")
				m["brand"], m["environment"] = brand, env
			})
			p := atos.New(atos.Silent())
			if err := p.Configure(context.Background(), raw, nil); err != nil {
				t.Fatalf("%s/%s: %v", brand, env, err)
			}
			init, err := p.InitPayment(context.Background(), sdk.PaymentRequest{Reference: "R1", Amount: 1, Currency: "EUR", AutomaticURL: "https://a/x", ManualURL: "https://a/y"})
			if err != nil || !strings.HasPrefix(init.RedirectURL, "https://") || strings.Contains(init.RedirectURL, "sips-atos.com") {
				t.Fatalf("%s/%s: %v %+v", brand, env, err, init)
			}
		}
	}
}

func TestSampleConfigAndSchema(t *testing.T) {
	var y map[string]any
	text := os.Expand(atos.SampleConfig(), func(k string) string { return "secret-value-for-" + k })
	if err := yaml.Unmarshal([]byte(text), &y); err != nil {
		t.Fatalf("sample.yaml: %v", err)
	}
	raw, err := json.Marshal(y)
	if err != nil {
		t.Fatal(err)
	}
	if err := atos.New(atos.Silent()).Configure(context.Background(), raw, nil); err != nil {
		t.Fatalf("sample config does not configure: %v", err)
	}
	var schema map[string]any
	if err := json.Unmarshal([]byte(atos.ConfigSchema()), &schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	info, err := atos.New().Describe(context.Background())
	if err != nil || info.Name != "atos" || info.Kind != sdk.KindPaymentGateway || info.ConfigSchema != atos.ConfigSchema() {
		t.Fatalf("Describe: %+v %v", info, err)
	}
}

func TestInitPaymentRequest(t *testing.T) {
	ctx := context.Background()
	p := configured(t, settings(t, "https://pay.example", func(m map[string]any) { m["encode"] = "base64" }), nil)
	req := sdk.PaymentRequest{Reference: "ACQ1", OrderID: "o-1", Amount: 1999, Currency: "EUR", CustomerEmail: "a@b.c", Locale: "de_DE",
		AutomaticURL: "https://acquit.example/notify/atos/automatic", ManualURL: "https://acquit.example/notify/atos/manual",
		Extra: map[string]string{"returnContext": "cart=12", "evil": "x"}}
	init, err := p.InitPayment(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	f, err := sips.ParseData(init.Raw["Data"])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"amount": "1999", "currencyCode": "978", "merchantId": mid, "keyVersion": "1", "transactionReference": "ACQ1",
		"automaticResponseUrl": req.AutomaticURL, "normalReturnUrl": req.ManualURL, "orderId": "o-1",
		"customerContact.email": "a@b.c", "customerLanguage": "de", "paymentMeanBrandList": "CB,VISA", "captureDay": "0",
		"captureMode": "AUTHOR_CAPTURE", "orderChannel": "INTERNET", "responseEncoding": "base64", "returnContext": "cart=12",
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s = %q, want %q", k, f[k], v)
		}
	}
	if _, ok := f["evil"]; ok {
		t.Error("unknown Extra key passed to Sips")
	}
	if init.RedirectURL != "https://pay.example/paymentInit" || init.Fields["Encode"] != "base64" || init.Fields["SealAlgorithm"] != "HMAC-SHA-256" || init.Fields["InterfaceVersion"] != "HP_3.4" {
		t.Fatalf("init %+v", init)
	}
	for name, r := range map[string]sdk.PaymentRequest{
		"currency":        {Reference: "R", Amount: 1, Currency: "ZZZ", AutomaticURL: "https://a", ManualURL: "https://a"},
		"amount":          {Reference: "R", Amount: 0, Currency: "EUR", AutomaticURL: "https://a", ManualURL: "https://a"},
		"reference":       {Reference: "R-1|x", Amount: 1, Currency: "EUR", AutomaticURL: "https://a", ManualURL: "https://a"},
		"urls":            {Reference: "R", Amount: 1, Currency: "EUR"},
		"merchant":        {Merchant: "other", Reference: "R", Amount: 1, Currency: "EUR", AutomaticURL: "https://a", ManualURL: "https://a"},
		"pipe in orderId": {Reference: "R", OrderID: "a|responseCode=00", Amount: 1, Currency: "EUR", AutomaticURL: "https://a", ManualURL: "https://a"},
	} {
		if _, err := p.InitPayment(ctx, r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestS10UsesHostSequencePerParisDay(t *testing.T) {
	ctx := context.Background()
	host := plugintest.NewMemHost()
	// 23:30 UTC on 22 Nov is 00:30 on 23 Nov in Paris.
	now := time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC)
	p := atos.New(atos.Silent(), atos.WithClock(func() time.Time { return now }))
	if err := p.Configure(ctx, settings(t, "https://pay.example", func(m map[string]any) { m["reference_style"] = "s10" }), host); err != nil {
		t.Fatal(err)
	}
	req := sdk.PaymentRequest{Reference: "R1", Amount: 1, Currency: "EUR", AutomaticURL: "https://a", ManualURL: "https://a"}
	a, err := p.InitPayment(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.InitPayment(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if a.Reference != "000001" || b.Reference != "000002" || a.TransactionDate != "20261123" {
		t.Fatalf("s10 ids %s %s date %s", a.Reference, b.Reference, a.TransactionDate)
	}
	// Without a host there is no durable counter: refused, never a
	// made-up id.
	p2 := atos.New(atos.Silent(), atos.WithClock(func() time.Time { return now }))
	if err := p2.Configure(ctx, settings(t, "https://pay.example", func(m map[string]any) { m["reference_style"] = "s10" }), nil); err != nil {
		t.Fatal(err)
	}
	if c, err := p2.InitPayment(ctx, req); err == nil {
		t.Fatalf("without host: %+v accepted", c)
	}
	// The 900000th id of a day is refused (ids are 6 digits, 1..899999).
	p3 := atos.New(atos.Silent(), atos.WithClock(func() time.Time { return now }))
	if err := p3.Configure(ctx, settings(t, "https://pay.example", func(m map[string]any) { m["reference_style"] = "s10" }), exhausted{plugintest.NewMemHost()}); err != nil {
		t.Fatal(err)
	}
	if _, err := p3.InitPayment(ctx, req); err == nil {
		t.Fatal("sequence 900000 accepted")
	}
}

// exhausted is a Host whose counters are at 900000.
type exhausted struct{ *plugintest.MemHost }

func (exhausted) NextSequence(context.Context, string) (int64, error) { return 900000, nil }

func TestConformance(t *testing.T) {
	s := startSim(t, sim.Config{})
	raw := settings(t, s.URL(), nil)
	p := configured(t, raw, nil)
	sh := newShop(t, p)
	init, err := p.InitPayment(context.Background(), sh.request("CONF1"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sim.NewBrowser().Pay(context.Background(), init.Method, init.RedirectURL, init.Fields, sim.Choice{Outcome: "accepted"})
	if err != nil {
		t.Fatal(err)
	}
	valid := sdk.Notification{Channel: sdk.ChannelManual, Method: "POST", Body: []byte(m.Fields.Encode())}
	plugintest.RunGateway(t, func() sdk.PaymentGateway { return atos.New(atos.Silent()) }, plugintest.GatewayOptions{
		Name:     "atos",
		Settings: raw,
		Forged: []sdk.Notification{
			{Channel: sdk.ChannelAutomatic, Method: "POST", Body: []byte("Data=amount%3D1&Seal=00")},
			{Channel: sdk.ChannelAutomatic, Method: "POST", Body: []byte("garbage")},
		},
		Valid:           &valid,
		HangingSettings: func(url string) []byte { return settings(t, url, nil) },
	})
}

func BenchmarkVerifyNotification(b *testing.B) {
	acc := &sips.Account{MerchantID: mid, Keys: map[string]string{"1": keyV1}, Algorithm: sips.HMACSHA256}
	form, err := sips.BuildPost(acc, "1", map[string]string{"amount": "2500", "currencyCode": "978", "responseCode": "00",
		"acquirerResponseCode": "00", "transactionReference": "ACQ1", "authorisationId": "123456", "maskedPan": "4100##########00",
		"paymentMeanBrand": "VISA", "transactionDateTime": "2026-11-23T12:31:05+01:00", "captureMode": "AUTHOR_CAPTURE"}, "base64", "HP_3.4")
	if err != nil {
		b.Fatal(err)
	}
	p := atos.New(atos.Silent())
	if err := p.Configure(context.Background(), settings(b, "https://pay.example", nil), nil); err != nil {
		b.Fatal(err)
	}
	n := sdk.Notification{Channel: sdk.ChannelAutomatic, Method: "POST", Body: []byte(form.Values().Encode())}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.VerifyNotification(context.Background(), n); err != nil {
			b.Fatal(err)
		}
	}
}

// TestREADMEResponseCodes keeps the README's table in step with the code.
func TestREADMEResponseCodes(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range sips.SortedResponseCodes() {
		row := "| " + c.Code + " | " + c.Description + " | " + string(c.Outcome) + " |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README has no row %q", row)
		}
	}
	for _, code := range []string{sips.RejectBadSeal, sips.RejectUnknownKeyVersion, sips.RejectUnknownMerchant, sips.RejectMissingField, sips.RejectTooLarge, sips.RejectBadEncoding, sips.RejectMalformed} {
		if !strings.Contains(string(readme), "`"+code+"`") {
			t.Errorf("README does not mention reject code %s", code)
		}
	}
}

// TestManyPaymentsWithFaults runs 200 payments concurrently with 30% of
// automatic responses dropped and 30% of customers never returning: every
// payment's outcome, from the first verified final response or else from
// Office, is what the simulator decided.
func TestManyPaymentsWithFaults(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 40
	}
	s := startSim(t, sim.Config{Seed: 7, Faults: sim.Faults{DropAutomatic: 0.3, CustomerNeverReturns: 0.3, AutomaticTwice: 0.1}})
	p := configured(t, settings(t, s.URL(), func(m map[string]any) { m["encode"] = "base64" }), nil)
	sh := newShop(t, p)
	ctx := context.Background()
	outcomes := []string{"accepted", "accepted", "accepted", "refused", "cancelled", "3ds_failure"}
	refs := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := 0; i < n; i++ {
		refs[i] = "MANY" + strings.Repeat("0", 4-len(itoa(i))) + itoa(i)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			init, err := p.InitPayment(ctx, sh.request(refs[i]))
			if err != nil {
				errs <- err
				return
			}
			b := sim.NewBrowser()
			if i%10 == 9 { // abandoned on the payment page
				_, err := b.Open(ctx, init.Method, init.RedirectURL, init.Fields)
				if err != nil {
					errs <- err
				}
				return
			}
			m, err := b.Pay(ctx, init.Method, init.RedirectURL, init.Fields, sim.Choice{Outcome: outcomes[i%len(outcomes)]})
			if err != nil {
				errs <- err
				return
			}
			if m.Returns {
				resp, err := b.Return(ctx, m)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitSim(t, s)
	decided := s.Decided()
	byChannel := map[string]int{}
	for _, ref := range refs {
		var got sdk.Outcome
		for _, r := range sh.results(ref) {
			if r.res.Outcome.Final() {
				if got != "" && got != r.res.Outcome {
					t.Fatalf("%s: responses disagree: %s then %s", ref, got, r.res.Outcome)
				}
				if got == "" {
					byChannel[string(r.channel)]++
				}
				got = r.res.Outcome
			}
		}
		if got == "" {
			q, err := p.QueryTransaction(ctx, sdk.TransactionQuery{Reference: ref})
			if err != nil {
				t.Fatal(err)
			}
			got = q.Outcome
			if got == sdk.OutcomeNotFound {
				got = sdk.OutcomeExpired // what the daemon does with 25
			}
			byChannel["reconciliation"]++
		}
		if got != decided[ref] {
			t.Fatalf("%s: acquit would record %s, the simulator decided %s", ref, got, decided[ref])
		}
	}
	if len(sh.rejects) != 0 {
		t.Fatalf("rejects: %v", sh.rejects)
	}
	st := s.Stats()
	if st.AutomaticDropped == 0 || st.ManualNone == 0 || byChannel["reconciliation"] == 0 {
		t.Fatalf("faults did not bite: %+v by channel %v", st, byChannel)
	}
	t.Logf("%d payments, decided by channel %v, sim stats %+v", n, byChannel, st)
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestREADMEEvents (issue 9, item 9) keeps the README's events table and
// Office status list complete: an event row for every final outcome a
// response code or an Office status can give (payment.<outcome>; not_found
// becomes payment.expired in the daemon), for the daemon's own
// payment.unknown, payment.conflict and payment.mismatch, and every
// transactionStatus of sips.TransactionStatuses named.
func TestREADMEEvents(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	_, events, ok := strings.Cut(readme, "## Events")
	if !ok {
		t.Fatal("README has no Events section")
	}
	events, _, _ = strings.Cut(events, "\n## ")
	want := map[string]bool{"payment.unknown": true, "payment.conflict": true, "payment.mismatch": true}
	add := func(o sdk.Outcome) {
		switch {
		case o == sdk.OutcomeNotFound:
			want["payment.expired"] = true
		case o.Final():
			want["payment."+string(o)] = true
		}
	}
	for _, c := range sips.SortedResponseCodes() {
		add(c.Outcome)
	}
	for name, st := range sips.TransactionStatuses {
		add(st.Outcome)
		if !strings.Contains(readme, "`"+name+"`") {
			t.Errorf("README does not name Office status %s", name)
		}
	}
	for ev := range want {
		if !strings.Contains(events, "| `"+ev+"` |") {
			t.Errorf("README events table has no row for %s", ev)
		}
	}
}
