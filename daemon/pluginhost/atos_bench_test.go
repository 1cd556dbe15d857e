package pluginhost

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/acquit/acquit/plugins/atos/sips"
	"github.com/acquit/acquit/sdk"
)

// BenchmarkPluginRPCAtos measures what the daemon pays per automatic
// response in production: one VerifyNotification round trip to the real
// Atos plugin process (HMAC-SHA256 seal, Data decoding, merchant and
// fields checked; no Host call back to the daemon, unlike the test
// plugin of BenchmarkPluginRPC, which reads and writes its state over
// two Host calls inside the same call).
func BenchmarkPluginRPCAtos(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "acquit-plugin-atos")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/acquit/acquit/plugins/atos/cmd/acquit-plugin-atos").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	const mid, key = "002001000000001", "002001000000001_KEY1"
	settings, _ := json.Marshal(map[string]any{"request_timeout": "5s", "merchants": []any{map[string]any{
		"name": "shop", "merchant_id": mid, "environment": "test",
		"paypage_url": "https://paypage.invalid", "office_url": "https://office.invalid",
		"keys": map[string]string{"1": key}, "payment_means": []string{"CB", "VISA"},
	}}})
	form, err := sips.BuildPost(&sips.Account{MerchantID: mid, Keys: map[string]string{"1": key}, Algorithm: sips.HMACSHA256}, "1",
		map[string]string{"amount": "2500", "currencyCode": "978", "responseCode": "00", "acquirerResponseCode": "00",
			"transactionReference": "ACQ1", "authorisationId": "123456", "maskedPan": "4100##########00", "paymentMeanBrand": "VISA",
			"transactionDateTime": "2026-11-23T12:31:05+01:00", "captureMode": "AUTHOR_CAPTURE"}, "base64", "HP_3.4")
	if err != nil {
		b.Fatal(err)
	}
	n := sdk.Notification{Channel: sdk.ChannelAutomatic, Method: "POST", Path: "/notify/atos", Body: []byte(form.Values().Encode())}
	benchRPCSpec(b, Spec{Name: "atos", Path: bin, Kind: sdk.KindPaymentGateway, Settings: settings}, func(ctx context.Context, g sdk.PaymentGateway) error {
		r, err := g.VerifyNotification(ctx, n)
		if err == nil && r.Outcome != sdk.OutcomeAccepted {
			b.Fatalf("outcome %s", r.Outcome)
		}
		return err
	})
}
