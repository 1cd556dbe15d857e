package testplugin_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/acquit/acquit/plugins/testplugin"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/plugintest"
)

const settings = `{"secret":"0123456789abcdef-test-secret","merchant":"shop1"}`

func fixture(t *testing.T, name string) sdk.Notification {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Notification{Channel: sdk.ChannelAutomatic, Method: "POST", Path: "/notify/test", Body: b,
		Headers: map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}}}
}

// ignoresCtx is the gateway broken on purpose for plugintest.CheckBroken:
// its queries outlive a cancelled call.
type ignoresCtx struct{ sdk.PaymentGateway }

func (g ignoresCtx) QueryTransaction(ctx context.Context, q sdk.TransactionQuery) (*sdk.PaymentResult, error) {
	return g.PaymentGateway.QueryTransaction(context.WithoutCancel(ctx), q)
}

// TestConformance runs every check of the kit, none skipped; each one a
// configuration enables (ContextCancellation through provider_url) is
// shown to fail on a variant broken on purpose.
func TestConformance(t *testing.T) {
	valid := fixture(t, "accepted.form")
	factory := func() sdk.PaymentGateway { return testplugin.New(testplugin.Misbehaviour{}) }
	if plugintest.BrokenVariant() == "ignores-ctx" {
		factory = func() sdk.PaymentGateway { return ignoresCtx{testplugin.New(testplugin.Misbehaviour{})} }
	}
	plugintest.RunGateway(t, factory, plugintest.GatewayOptions{
		Name:     testplugin.Name,
		Settings: []byte(settings),
		BadSettings: append(plugintest.DefaultBadSettings,
			[]byte(`{"secret":"short","merchant":"shop1"}`),
			[]byte(`{"secret":"0123456789abcdef-test-secret"}`),
			[]byte(`{"secret":"0123456789abcdef-test-secret","merchant":"shop1","unknown":true}`),
			[]byte(`{"secret":"0123456789abcdef-test-secret","merchant":"shop1","provider_url":"file:///etc/passwd"}`),
			[]byte(settings+` {}`),
		),
		Forged: []sdk.Notification{fixture(t, "forged_seal.form"), fixture(t, "tampered_amount.form")},
		Valid:  &valid,
		HangingSettings: func(url string) []byte {
			return []byte(`{"secret":"0123456789abcdef-test-secret","merchant":"shop1","provider_url":` + strconv.Quote(url) + `}`)
		},
	})
	if plugintest.BrokenVariant() != "" {
		return
	}
	plugintest.CheckBroken(t, map[string]string{"ignores-ctx": "ContextCancellation"})
}

func configured(t *testing.T, m testplugin.Misbehaviour) (sdk.PaymentGateway, *plugintest.MemHost) {
	t.Helper()
	g := plugintest.ServeGateway(t, testplugin.New(m))
	h := plugintest.NewMemHost()
	if err := g.Configure(context.Background(), []byte(settings), h); err != nil {
		t.Fatal(err)
	}
	return g, h
}

func TestVerifyNotification(t *testing.T) {
	g, _ := configured(t, testplugin.Misbehaviour{})
	tests := []struct {
		fixture    string
		body       []byte // overrides fixture
		wantReject string
		wantOut    sdk.Outcome
	}{
		{fixture: "accepted.form", wantOut: sdk.OutcomeAccepted},
		{fixture: "refused.form", wantOut: sdk.OutcomeRefused},
		{fixture: "forged_seal.form", wantReject: "bad_seal"},
		{fixture: "tampered_amount.form", wantReject: "bad_seal"},
		{fixture: "unknown_merchant.form", wantReject: "unknown_merchant"},
		{fixture: "missing_seal.form", wantReject: "malformed"},
		{fixture: "malformed_percent.form", wantReject: "malformed"},
		{fixture: "malformed_data.form", wantReject: "malformed"},
		{fixture: "duplicate_field.form", wantReject: "malformed"},
		{fixture: "oversized", body: bytes.Repeat([]byte("A"), testplugin.MaxNotificationBody+1), wantReject: "oversized"},
		{fixture: "empty", body: []byte{}, wantReject: "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			n := sdk.Notification{Channel: sdk.ChannelAutomatic, Body: tc.body}
			if tc.body == nil {
				n = fixture(t, tc.fixture)
			}
			res, err := g.VerifyNotification(context.Background(), n)
			if tc.wantReject != "" {
				var rej *sdk.RejectError
				if !errors.As(err, &rej) || rej.Code != tc.wantReject {
					t.Fatalf("got (%+v, %v), want reject %q", res, err, tc.wantReject)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tc.wantOut || res.Merchant != "shop1" || res.Currency != "EUR" {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

// TestPaymentFlow: InitPayment seals a request and records it in the Host
// state; a sealed notification updates it; QueryTransaction reads it back.
func TestPaymentFlow(t *testing.T) {
	ctx := context.Background()
	g, h := configured(t, testplugin.Misbehaviour{})
	init, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "ORDER42", Amount: 990, Currency: "EUR", AutomaticURL: "https://acquit.example/n"})
	if err != nil {
		t.Fatal(err)
	}
	if init.Fields["Seal"] != testplugin.Seal("0123456789abcdef-test-secret", init.Fields["Data"]) || init.Raw["transaction"] != "1" {
		t.Fatalf("init %+v", init)
	}
	if _, ver, _ := h.StateGet(ctx, "payment/ORDER42"); ver != 1 {
		t.Fatalf("state version %d after init, want 1", ver)
	}
	// The same reference twice is a conflict in the Host state.
	if _, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "ORDER42", Amount: 990, Currency: "EUR"}); !errors.Is(err, sdk.ErrConflict) {
		t.Fatalf("duplicate reference: %v, want ErrConflict", err)
	}
	q, err := g.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "ORDER42"})
	if err != nil || q.Outcome != sdk.OutcomePending || !q.AskLater {
		t.Fatalf("query before notification: %+v %v", q, err)
	}
	data := strings.Replace(init.Fields["Data"], "|reference=", "|responseCode=00|reference=", 1)
	body := url.Values{"Data": {data}, "Seal": {testplugin.Seal("0123456789abcdef-test-secret", data)}}.Encode()
	if _, err := g.VerifyNotification(ctx, sdk.Notification{Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	q, err = g.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "ORDER42"})
	if err != nil || q.Outcome != sdk.OutcomeAccepted || q.Amount != 990 {
		t.Fatalf("query after notification: %+v %v", q, err)
	}
	q, err = g.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "NEVER"})
	if err != nil || q.Outcome != sdk.OutcomeNotFound {
		t.Fatalf("query unknown: %+v %v", q, err)
	}
	sum, err := g.(sdk.JobRunner).RunJob(ctx, "reconcile", nil)
	if err != nil || sum != "reconcile run 1" {
		t.Fatalf("RunJob: %q %v", sum, err)
	}
	if _, err := g.(sdk.JobRunner).RunJob(ctx, "nope", nil); err == nil {
		t.Fatal("unknown job accepted")
	}
}

func TestUnconfigured(t *testing.T) {
	g := plugintest.ServeGateway(t, testplugin.New(testplugin.Misbehaviour{}))
	if err := g.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("Health before Configure: %v", err)
	}
}

// TestPanicIsContained: a panic inside a call becomes an error for that
// call; the plugin keeps serving.
func TestPanicIsContained(t *testing.T) {
	g, _ := configured(t, testplugin.Misbehaviour{PanicOn: "QueryTransaction"})
	_, err := g.QueryTransaction(context.Background(), sdk.TransactionQuery{Reference: "X"})
	if err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("got %v, want a panic error", err)
	}
	if err := g.Health(context.Background()); err != nil {
		t.Fatalf("Health after panic: %v", err)
	}
}
